"""Options whose defaults follow others, as a new user meets them on the command line."""

from __future__ import annotations

import pytest

from tests.support import run_exporter

CREDENTIALS = {"CRYPTOMUS_USER_ID": "u", "CRYPTOMUS_API_KEY": "key-value-1234"}


def test_an_idle_timeout_alone_is_a_valid_configuration():
    result = run_exporter(["check-config"], env={**CREDENTIALS, "CRYPTOMUS_IDLE_TIMEOUT": "3"})
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout


@pytest.mark.parametrize(("args", "env", "line"), [
    (["--websocket.pong-timeout", "10"], {"CRYPTOMUS_IDLE_TIMEOUT": "3"},
     "CRYPTOMUS_PONG_TIMEOUT (--websocket.pong-timeout) = 10 must be shorter than "
     "CRYPTOMUS_IDLE_TIMEOUT (--websocket.idle-timeout) = 3 (leave CRYPTOMUS_PONG_TIMEOUT "
     "unset to get min(10, IDLE_TIMEOUT / 2))"),
    (["--websocket.backoff-min", "10", "--websocket.backoff-max", "5"], {},
     "CRYPTOMUS_BACKOFF_MIN (--websocket.backoff-min) = 10 must not exceed "
     "CRYPTOMUS_BACKOFF_MAX (--websocket.backoff-max) = 5 (leave CRYPTOMUS_BACKOFF_MIN "
     "unset to get min(1, BACKOFF_MAX))"),
], ids=["pong-vs-idle", "backoff-min-vs-max"])
def test_two_values_the_user_set_that_contradict_each_other_are_named_in_one_line(
        args, env, line):
    result = run_exporter(["check-config", *args], env={**CREDENTIALS, **env})
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"cryptomus-exporter: error: invalid configuration: {line}"]
