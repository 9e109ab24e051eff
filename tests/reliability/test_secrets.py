"""Secret hygiene: the API key, its signature (md5 of base64("") + key, i.e. md5 of the
key) and every one-time token the exchange issued never appear in anything the
exporter writes or serves: logs at debug level (text, JSON and logfmt), /metrics, /readyz and
/healthz bodies, error messages (failed token calls, refused and 401 upgrades whose
responses echo the token-bearing URL, REST errors with a wrong key) and crash output.

The exporter runs as a real child process (its own logging set-up, as in production)
against the in-process simulator; every token the simulator issues is recorded.
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

import gevent
import pytest

from exporter.simulator import Simulator, SimulatorConfig
from tests.reliability.child import FAST_FLAGS, simulator_env
from tests.reliability.hostile import HostileWsServer
from tests.support import ExporterProcess, wait_for

CRASHING_EXPORTER = Path(__file__).with_name("crashing_exporter.py")
PROBES = ("/metrics", "/readyz", "/healthz")


def sign_of(api_key: str) -> str:
    return hashlib.md5(api_key.encode(), usedforsecurity=False).hexdigest()


class RecordingSimulator:
    """The simulator with a distinctive key, remembering every token it issues."""

    def __init__(self, api_key: str) -> None:
        self.sim = Simulator(SimulatorConfig(host="127.0.0.1", port=0, seed=3, rate=50.0,
                                             markets=["BTC_USDT", "ETH_USDT"],
                                             api_key=api_key, user_id="secret-test-user"))
        self.issued: list[str] = []
        issue = self.sim.rest.tokens.issue

        def recording_issue() -> str:
            self.issued.append(issue())
            return self.issued[-1]

        self.sim.rest.tokens.issue = recording_issue

    def __enter__(self) -> RecordingSimulator:
        self.sim.start()
        return self

    def __exit__(self, *exc) -> None:
        self.sim.stop()


@pytest.fixture
def api_key() -> str:
    return f"KEY-{secrets.token_hex(20)}-KEY"


def assert_no_secrets(text: str, secret_values: list[str], where: str) -> None:
    assert secret_values
    for value in secret_values:
        for probe in (value, value[:16]):  # also a truncated copy
            position = text.find(probe)
            assert position < 0, (f"a secret ({value[:4]}...) leaked into {where} at "
                                  f"{position}: ...{text[max(0, position - 80):position]}")


def probe_bodies(child: ExporterProcess) -> str:
    return "".join(f"\n== {path}\n" + child.get(path).text for path in PROBES)


@pytest.mark.parametrize("log_format", ["text", "json", "logfmt"])
def test_secrets_never_leak_through_faults_at_debug_level(tmp_path, api_key, log_format):
    with RecordingSimulator(api_key) as recording:
        sim = recording.sim
        env = simulator_env(sim, api_key)
        with ExporterProcess("--log.level", "debug", "--log.format", log_format, *FAST_FLAGS,
                             env=env, output=tmp_path / "exporter.log") as child:
            served = probe_bodies(child)
            wait_for(lambda: sim.connections == 1, what="connected")
            sim.faults.drop_connections()  # reconnect: a second token
            wait_for(lambda: len(sim.tokens_seen) == 2, what="reconnected")
            for failures, status in enumerate((500, 401, 404, 429), start=1):
                sim.faults.fail_token(1, status=status)  # failed token calls
                sim.faults.drop_connections()
                wait_for(lambda failures=failures: sim.connections == 1
                         and sim.stats.token_failures == failures, what=f"token {status}")
                served += probe_bodies(child)
            sim.rest.tokens.ttl = 1e-9  # every token expires at once: 401 on the upgrade
            sim.faults.drop_connections()
            wait_for(lambda: sim.stats.connections_rejected >= 2, what="expired tokens")
            sim.rest.tokens.ttl = 300.0
            wait_for(lambda: sim.connections == 1, what="reconnected")
            rejected = sim.stats.connections_rejected
            sim.faults.refuse_connections(0.5, mode="status")  # HTML 503 on the upgrade
            sim.faults.drop_connections()
            wait_for(lambda: sim.stats.connections_rejected > rejected, what="a refused upgrade")
            wait_for(lambda: sim.connections == 1, timeout=15, what="reconnected at last")
            served += probe_bodies(child)
            assert child.stop() == 0
        output = child.output()
    assert "DEBUG" in output.upper() and "token request failed: 401" in output
    assert "connecting to" in output  # the debug line that carries the redacted URL
    assert len(recording.issued) >= 6
    everything = [api_key, sign_of(api_key), *recording.issued]
    assert_no_secrets(output, everything, f"the {log_format} log")
    assert_no_secrets(served, everything, "/metrics, /readyz or /healthz")


def test_a_wrong_key_fails_every_signed_call_without_leaking_it(tmp_path, api_key):
    wrong_key = f"WRONG-{secrets.token_hex(20)}"
    with RecordingSimulator(api_key) as recording:
        env = simulator_env(recording.sim, wrong_key)
        with ExporterProcess("--log.level", "debug", *FAST_FLAGS,
                             env=env, output=tmp_path / "exporter.log") as child:
            wait_for(lambda: recording.sim.stats.auth_failures >= 4, what="rejected calls")
            served = probe_bodies(child)
            assert child.stop() == 0
        output = child.output()
    assert "token request failed: 401" in output
    assert recording.issued == []
    assert_no_secrets(output + served, [wrong_key, sign_of(wrong_key), api_key,
                                        sign_of(api_key)], "the log or the probes")


@pytest.mark.parametrize("mode", ["echo_401", "bad_status"])
def test_handshake_failures_echoing_the_token_do_not_leak_it(tmp_path, api_key, mode):
    with RecordingSimulator(api_key) as recording, HostileWsServer(mode) as hostile:
        env = simulator_env(recording.sim, api_key, ws_url=hostile.url)
        with ExporterProcess("--log.level", "debug", "--log.format", "json", *FAST_FLAGS,
                             env=env, output=tmp_path / "exporter.log") as child:
            wait_for(lambda: len(hostile.targets) >= 3, what="three refused handshakes")
            served = probe_bodies(child)
            assert child.stop() == 0
        output = child.output()
    assert "connection attempt failed at the connect stage" in output
    tokens = [target.partition("token=")[2] for target in hostile.targets]
    assert set(tokens) <= set(recording.issued)
    assert_no_secrets(output + served, [api_key, sign_of(api_key), *recording.issued],
                      "the log or the probes")


def test_crash_output_carries_no_secret(tmp_path, api_key):
    with RecordingSimulator(api_key) as recording:
        env = simulator_env(recording.sim, api_key)
        with ExporterProcess("--log.level", "debug", *FAST_FLAGS, env=env,
                             output=tmp_path / "exporter.log", script=CRASHING_EXPORTER) as child:
            wait_for(lambda: "forced crash 2" in child.output(), what="the dying greenlet")
            wait_for(lambda: recording.sim.connections == 1, what="connected after crash 1")
            gevent.sleep(0.2)
            status = child.stop()
        output = child.output()
    assert status != 0  # the exception escaped main
    for marker in ("forced crash 1", "forced crash 2", "forced crash 3", "Traceback"):
        assert marker in output, output[-3000:]
    assert len(recording.issued) >= 2
    assert_no_secrets(output, [api_key, sign_of(api_key), *recording.issued], "crash output")
