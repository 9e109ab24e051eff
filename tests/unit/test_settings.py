"""Configuration: defaults, parsing, and one clear line per bad value."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from exporter.settings import ALL_CHANNELS, ENV_PREFIX, ConfigError, Settings, load_settings

CREDENTIALS = {"CRYPTOMUS_USER_ID": "user-1", "CRYPTOMUS_API_KEY": "k" * 32}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("CRYPTOMUS_"):
            monkeypatch.delenv(name)


def configure(monkeypatch, **env: str):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def test_defaults_match_the_contract(monkeypatch):
    settings = configure(monkeypatch, **CREDENTIALS)
    assert settings.markets == ("all",)
    assert settings.channels == ALL_CHANNELS
    assert settings.depth_scale == 0
    assert settings.depth_bands == (0.005, 0.01, 0.02)
    assert settings.ping_interval == 50
    assert settings.idle_timeout == 90
    assert (settings.backoff_min, settings.backoff_max) == (1, 120)
    assert settings.stale_after == 300
    assert settings.reconcile_interval == 300
    assert settings.listen_address == ":9841"
    assert (settings.log_level, settings.log_format) == ("info", "text")
    assert settings.ws_url == "wss://api-ws.cryptomus.com/ws"


def test_lists_are_comma_separated_and_normalised(monkeypatch):
    settings = configure(monkeypatch, **CREDENTIALS, CRYPTOMUS_MARKETS="btc_usdt, ETH_USDT,",
                         CRYPTOMUS_CHANNELS="Ticker,depth", CRYPTOMUS_DEPTH_BANDS="0.02,0.01")
    assert settings.markets == ("BTC_USDT", "ETH_USDT")
    assert settings.channels == ("ticker", "depth")
    assert settings.depth_bands == (0.01, 0.02)


def test_api_key_from_file(monkeypatch, tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("secret-from-file\n")
    settings = configure(monkeypatch, CRYPTOMUS_USER_ID="u",
                         CRYPTOMUS_API_KEY_FILE=str(key_file))
    assert settings.secret_api_key() == "secret-from-file"
    assert "secret-from-file" not in repr(settings)


def test_api_key_is_a_secret(monkeypatch):
    settings = configure(monkeypatch, **CREDENTIALS)
    assert CREDENTIALS["CRYPTOMUS_API_KEY"] not in repr(settings)
    assert CREDENTIALS["CRYPTOMUS_API_KEY"] not in str(settings.model_dump())


@pytest.mark.parametrize(("env", "expected"), [
    ({}, "CRYPTOMUS_USER_ID (--cryptomus.user-id): user_id is required"),
    ({"CRYPTOMUS_USER_ID": "u"}, "CRYPTOMUS_API_KEY"),
    ({**CREDENTIALS, "CRYPTOMUS_MARKETS": ""}, "CRYPTOMUS_MARKETS (--cryptomus.markets)"),
    ({**CREDENTIALS, "CRYPTOMUS_MARKETS": "BTC-USDT"}, "not a market symbol"),
    ({**CREDENTIALS, "CRYPTOMUS_MARKETS": "all,BTC_USDT"}, "'all' cannot be combined"),
    ({**CREDENTIALS, "CRYPTOMUS_CHANNELS": "candles"}, "CRYPTOMUS_CHANNELS"),
    ({**CREDENTIALS, "CRYPTOMUS_PING_INTERVAL": "abc"},
     "CRYPTOMUS_PING_INTERVAL (--websocket.ping-interval)"),
    ({**CREDENTIALS, "CRYPTOMUS_PING_INTERVAL": "-1"}, "CRYPTOMUS_PING_INTERVAL"),
    ({**CREDENTIALS, "CRYPTOMUS_DEPTH_BANDS": "0.01,1.5"}, "CRYPTOMUS_DEPTH_BANDS"),
    ({**CREDENTIALS, "CRYPTOMUS_WS_URL": "http://x"}, "CRYPTOMUS_WS_URL"),
    ({**CREDENTIALS, "CRYPTOMUS_LISTEN_ADDRESS": "9841"}, "CRYPTOMUS_LISTEN_ADDRESS"),
    ({**CREDENTIALS, "CRYPTOMUS_LOG_FORMAT": "xml"}, "CRYPTOMUS_LOG_FORMAT"),
    ({**CREDENTIALS, "CRYPTOMUS_BACKOFF_MIN": "10", "CRYPTOMUS_BACKOFF_MAX": "5"},
     "CRYPTOMUS_BACKOFF_MIN (--websocket.backoff-min) = 10 must not exceed "
     "CRYPTOMUS_BACKOFF_MAX (--websocket.backoff-max) = 5"),
    ({**CREDENTIALS, "CRYPTOMUS_PONG_TIMEOUT": "10", "CRYPTOMUS_IDLE_TIMEOUT": "3"},
     "CRYPTOMUS_PONG_TIMEOUT (--websocket.pong-timeout) = 10 must be shorter than "
     "CRYPTOMUS_IDLE_TIMEOUT (--websocket.idle-timeout) = 3"),
    ({"CRYPTOMUS_USER_ID": "u", "CRYPTOMUS_API_KEY_FILE": "/nonexistent/key"},
     "CRYPTOMUS_API_KEY_FILE (--cryptomus.api-key-file): cannot read"),
])
def test_bad_values_name_the_option_in_one_line(monkeypatch, env, expected):
    with pytest.raises(ConfigError) as error:
        configure(monkeypatch, **env)
    message = str(error.value)
    assert expected in message
    assert "\n" not in message


def test_demo_needs_no_credentials(monkeypatch):
    assert configure(monkeypatch, CRYPTOMUS_DEMO="true").demo


def test_secret_values_never_appear_in_errors(monkeypatch):
    with pytest.raises(ConfigError) as error:
        configure(monkeypatch, CRYPTOMUS_USER_ID="u", CRYPTOMUS_API_KEY="super-secret-key",
                  CRYPTOMUS_PING_INTERVAL="super-secret-key")
    assert "super-secret-key" not in str(error.value)


# --- defaults that follow other options --------------------------------------------------

KEEPALIVE = ("ping_interval", "pong_timeout", "idle_timeout")
BACKOFF = ("backoff_min", "backoff_max")
# Each derived default as the README states it, checked on the final values.
FORMULAS = {
    "ping_interval": lambda s: min(50, s.idle_timeout - s.pong_timeout),
    "pong_timeout": lambda s: min(10, s.idle_timeout / 2),
    "idle_timeout": lambda s: max(90, s.ping_interval + s.pong_timeout),
    "backoff_min": lambda s: min(1, s.backoff_max),
    "backoff_max": lambda s: max(120, s.backoff_min),
}
VALUES = (0.5, 3, 10, 20, 50, 60, 90, 100, 200)


def subsets(names):
    return [tuple(n for i, n in enumerate(names) if mask >> i & 1)
            for mask in range(1 << len(names))]


def test_an_idle_timeout_alone_starts_with_pings_and_pongs_that_fit(monkeypatch):
    settings = configure(monkeypatch, **CREDENTIALS, CRYPTOMUS_IDLE_TIMEOUT="3")
    assert (settings.ping_interval, settings.pong_timeout, settings.idle_timeout) == (
        1.5, 1.5, 3)


@pytest.mark.parametrize(("env", "expected"), [
    ({}, (50, 10, 90, 1, 120)),
    ({"CRYPTOMUS_IDLE_TIMEOUT": "30"}, (20, 10, 30, 1, 120)),
    ({"CRYPTOMUS_IDLE_TIMEOUT": "300"}, (50, 10, 300, 1, 120)),
    ({"CRYPTOMUS_PING_INTERVAL": "100"}, (100, 10, 110, 1, 120)),
    ({"CRYPTOMUS_PONG_TIMEOUT": "100"}, (50, 100, 150, 1, 120)),
    ({"CRYPTOMUS_IDLE_TIMEOUT": "3", "CRYPTOMUS_PONG_TIMEOUT": "1"}, (2, 1, 3, 1, 120)),
    # A ping interval longer than the idle timeout is the user's to choose (a busy feed
    # keeps the connection from idling; tests/reliability/test_faults.py relies on it).
    ({"CRYPTOMUS_IDLE_TIMEOUT": "1", "CRYPTOMUS_PING_INTERVAL": "30"}, (30, 0.5, 1, 1, 120)),
    ({"CRYPTOMUS_BACKOFF_MIN": "200"}, (50, 10, 90, 200, 200)),
    ({"CRYPTOMUS_BACKOFF_MAX": "0.5"}, (50, 10, 90, 0.5, 0.5)),
    ({"CRYPTOMUS_BACKOFF_MAX": "30"}, (50, 10, 90, 1, 30)),
])
def test_derived_defaults(monkeypatch, env, expected):
    settings = configure(monkeypatch, **CREDENTIALS, **env)
    assert tuple(getattr(settings, name) for name in KEEPALIVE + BACKOFF) == expected


def test_flags_count_as_set_like_environment_variables(monkeypatch):
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(idle_timeout="4")
    assert (settings.ping_interval, settings.pong_timeout) == (2, 2)
    with pytest.raises(ConfigError, match=r"CRYPTOMUS_PONG_TIMEOUT .* CRYPTOMUS_IDLE_TIMEOUT"):
        load_settings(idle_timeout="4", pong_timeout="5")


# (options that may follow each other, the rule between two the user set, its error line)
GROUPS = {
    "keepalive": (
        KEEPALIVE,
        lambda c: c.get("pong_timeout", 0) >= c.get("idle_timeout", math.inf),
        lambda c: (f"CRYPTOMUS_PONG_TIMEOUT (--websocket.pong-timeout) = {c['pong_timeout']:g} "
                   "must be shorter than CRYPTOMUS_IDLE_TIMEOUT (--websocket.idle-timeout) = "
                   f"{c['idle_timeout']:g} (leave CRYPTOMUS_PONG_TIMEOUT unset to get "
                   "min(10, IDLE_TIMEOUT / 2))"),
    ),
    "backoff": (
        BACKOFF,
        lambda c: c.get("backoff_min", 0) > c.get("backoff_max", math.inf),
        lambda c: (f"CRYPTOMUS_BACKOFF_MIN (--websocket.backoff-min) = {c['backoff_min']:g} "
                   "must not exceed CRYPTOMUS_BACKOFF_MAX (--websocket.backoff-max) = "
                   f"{c['backoff_max']:g} (leave CRYPTOMUS_BACKOFF_MIN unset to get "
                   "min(1, BACKOFF_MAX))"),
    ),
}
GROUP_SUBSETS = [(group, user_set) for group, (names, _, _) in GROUPS.items()
                 for user_set in subsets(names)]


@pytest.mark.parametrize(("group", "user_set"), GROUP_SUBSETS,
                         ids=[f"{g}:{'+'.join(s) or 'none'}" for g, s in GROUP_SUBSETS])
def test_defaults_never_invalidate_what_the_user_set(monkeypatch, group, user_set):
    """Every combination of set options over a grid of values: a set value is kept, an
    unset one satisfies its formula, and only two set values can make an error."""
    names, conflicting, error_line = GROUPS[group]
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for values in itertools.product(VALUES, repeat=len(user_set)):
        chosen = dict(zip(user_set, values, strict=True))
        overrides = {name: str(value) for name, value in chosen.items()}
        if conflicting(chosen):
            with pytest.raises(ConfigError) as error:
                load_settings(**overrides)
            assert str(error.value) == error_line(chosen)
            continue
        settings = load_settings(**overrides)
        for name in names:
            expected = chosen[name] if name in chosen else FORMULAS[name](settings)
            assert getattr(settings, name) == expected, (chosen, name)
        assert 0 < settings.pong_timeout < settings.idle_timeout
        assert settings.ping_interval > 0
        assert 0 < settings.backoff_min <= settings.backoff_max


def test_derived_values_are_what_the_rest_of_the_exporter_reads(monkeypatch):
    settings = configure(monkeypatch, **CREDENTIALS, CRYPTOMUS_IDLE_TIMEOUT="3")
    assert settings.model_dump()["pong_timeout"] == 1.5
    assert "pong_timeout=1.5" in repr(settings)
    assert settings.model_fields_set == {"user_id", "api_key", "idle_timeout"}


# --- README's configuration table ---------------------------------------------------------


def _readme_rows() -> dict[str, list[str]]:
    readme = Path(__file__).parents[2] / "README.md"
    rows = {}
    for line in readme.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith(f"`{ENV_PREFIX}"):
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def _shown_default(field) -> str:
    derived = (field.json_schema_extra or {}).get("derived")
    if derived:
        return derived
    default = field.default
    if default is None:
        return "unset"
    if isinstance(default, tuple):
        return ",".join(str(item) for item in default)
    return str(default)


def test_readme_configuration_table_matches_the_settings():
    rows = _readme_rows()
    assert set(rows) == {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    for name, field in Settings.model_fields.items():
        flag, default, meaning = rows[f"{ENV_PREFIX}{name.upper()}"]
        assert flag == (f"`{field.json_schema_extra['flag']}`"
                        if field.json_schema_extra.get("flag") else "—"), name
        assert default == f"`{_shown_default(field)}`", name
        assert meaning == field.description, name


def test_help_shows_derived_defaults():
    from exporter.cli import build_parser

    text = " ".join(build_parser().format_help().split())
    assert "[CRYPTOMUS_PONG_TIMEOUT; default min(10, IDLE_TIMEOUT / 2)]" in text
    assert "[CRYPTOMUS_STALE_AFTER; default 300.0]" in text
