"""Configuration: defaults, parsing, and one clear line per bad value."""

from __future__ import annotations

import pytest

from exporter.settings import ALL_CHANNELS, ConfigError, load_settings

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
     "CRYPTOMUS_BACKOFF_MIN"),
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
