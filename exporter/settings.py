"""Every option of the exporter: environment (CRYPTOMUS_*), CLI flags, validation.

One pydantic-settings model is the source of truth. Each field carries its CLI
flag (Prometheus exporter style, e.g. ``--web.listen-address``) and help text in
``json_schema_extra``, so ``--help``, the README table and validation never
disagree. A bad value stops start-up with one line naming the option.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from . import channels as channel_table

ENV_PREFIX = "CRYPTOMUS_"
ALL_CHANNELS = channel_table.names()
PRIVATE_CHANNELS = channel_table.private_names()
_MARKET_RE = re.compile(r"^[A-Z0-9]{1,20}_[A-Z0-9]{1,20}$")


def _option(default: Any, flag: str | None, help: str, *, derived: str | None = None,
            **kwargs: Any) -> Any:
    """A field with its CLI flag; ``derived`` shows how an unset option follows others."""
    extra = {"flag": flag, "derived": derived} if derived else {"flag": flag}
    return Field(default, description=help, json_schema_extra=extra, **kwargs)


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


CsvTuple = Annotated[tuple[str, ...], NoDecode]
CsvFloats = Annotated[tuple[float, ...], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
    )

    user_id: str | None = _option(
        None, "--cryptomus.user-id", "Account user id (required unless --demo).")
    api_key: SecretStr | None = _option(
        None, None, "API key (secret; environment only, never a flag: flags show up in ps).")
    api_key_file: Path | None = _option(
        None, "--cryptomus.api-key-file",
        "File holding the API key (for Kubernetes Secrets mounted as files).")
    markets: CsvTuple = _option(
        ("all",), "--cryptomus.markets", "Comma list of markets (BTC_USDT,...) or 'all'.")
    channels: CsvTuple = _option(
        ALL_CHANNELS, "--cryptomus.channels", "Comma list of channels to subscribe.")
    depth_scale: int = _option(0, "--cryptomus.depth-scale", "Depth scale index.", ge=0)
    depth_bands: CsvFloats = _option(
        (0.005, 0.01, 0.02), "--cryptomus.depth-bands",
        "Depth bands around the mid price, as ratios (0.01 = 1 %).")
    max_markets: int = _option(
        1000, "--cryptomus.max-markets",
        "Cap on distinct markets (and currencies) given labels; frames beyond it are counted "
        "and dropped.", ge=1)
    ws_url: str = _option(
        "wss://api-ws.cryptomus.com/ws", "--cryptomus.ws-url", "WebSocket streams URL.")
    api_url: str = _option(
        "https://api.cryptomus.com", "--cryptomus.api-url", "Private REST base URL.")
    market_api_url: str = _option(
        "https://api-app.cryptomus.com", "--cryptomus.market-api-url",
        "Public market list base URL.")
    scales_api_url: str = _option(
        "https://exchange-ws.cryptomus.com", "--cryptomus.scales-api-url",
        "Depth scale list base URL: each market's scales are checked before depth is "
        "subscribed; a market lacking the depth scale is not subscribed.")
    request_timeout: float = _option(
        10.0, "--cryptomus.request-timeout", "REST and WebSocket handshake timeout, seconds.",
        gt=0)
    ping_interval: float = _option(
        50.0, "--websocket.ping-interval",
        "Seconds between pings (the server drops clients silent for 60 s).", gt=0,
        derived="min(50, IDLE_TIMEOUT - PONG_TIMEOUT)")
    pong_timeout: float = _option(
        10.0, "--websocket.pong-timeout", "Reconnect if a pong takes longer, seconds.", gt=0,
        derived="min(10, IDLE_TIMEOUT / 2)")
    idle_timeout: float = _option(
        90.0, "--websocket.idle-timeout",
        "Reconnect if nothing at all arrives for this long, seconds.", gt=0,
        derived="max(90, PING_INTERVAL + PONG_TIMEOUT)")
    subscribe_timeout: float = _option(
        10.0, "--websocket.subscribe-timeout",
        "Seconds to wait for subscription acknowledgements.", gt=0)
    backoff_min: float = _option(
        1.0, "--websocket.backoff-min", "Smallest reconnect delay, seconds.", gt=0,
        derived="min(1, BACKOFF_MAX)")
    backoff_max: float = _option(
        120.0, "--websocket.backoff-max", "Largest reconnect delay, seconds (full jitter).", gt=0,
        derived="max(120, BACKOFF_MIN)")
    backoff_reset_after: float = _option(
        60.0, "--websocket.backoff-reset-after",
        "A connection that lived this long resets the backoff, seconds.", gt=0)
    resync_min_interval: float = _option(
        5.0, "--websocket.resync-min-interval",
        "Minimum seconds between order book resubscriptions.", ge=0)
    stale_after: float = _option(
        300.0, "--collector.stale-after",
        "Seconds disconnected after which market gauges are removed.", gt=0)
    reconcile_interval: float = _option(
        300.0, "--collector.reconcile-interval",
        "Seconds between REST reconciliations of balances and open orders.", gt=0)
    listen_address: str = _option(
        ":9841", "--web.listen-address", "Address for /metrics, /healthz and /readyz.")
    web_config_file: Path | None = _option(
        None, "--web.config.file",
        "exporter-toolkit style YAML with basic_auth_users and tls_server_config.")
    web_max_requests: int = _option(
        40, "--web.max-requests",
        "Most HTTP requests served at once; more get a 503 at once (0: no limit).", ge=0)
    web_max_connections: int = _option(
        256, "--web.max-connections",
        "Most open HTTP connections (0: as many as the open-files limit allows); always capped "
        "by the open-files limit minus a reserve for the exchange side.", ge=0)
    web_read_header_timeout: float = _option(
        5.0, "--web.read-header-timeout",
        "Seconds from accepting a connection to complete request headers, TLS handshake "
        "included.", gt=0)
    web_write_timeout: float = _option(
        30.0, "--web.write-timeout",
        "Seconds from complete request headers to the response written.", gt=0)
    web_idle_timeout: float = _option(
        20.0, "--web.idle-timeout",
        "Seconds a kept-alive HTTP connection may take to send its next request.", gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = _option(
        "info", "--log.level", "Log level: debug, info, warning or error.")
    log_format: Literal["text", "json", "logfmt"] = _option(
        "text", "--log.format", "Log format: text, json or logfmt (Prometheus style).")
    demo: bool = _option(
        False, "--demo", "Run against the built-in simulator on loopback (no credentials).")

    @field_validator("markets", "channels", "depth_bands", mode="before")
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("markets")
    @classmethod
    def _check_markets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        markets = tuple(m.upper() for m in value)
        if not markets:
            raise ValueError("must name at least one market, or 'all'")
        if "ALL" in markets:
            if len(markets) > 1:
                raise ValueError("'all' cannot be combined with other markets")
            return ("all",)
        bad = [m for m in markets if not _MARKET_RE.match(m)]
        if bad:
            raise ValueError(f"not a market symbol like BTC_USDT: {', '.join(bad)}")
        return tuple(dict.fromkeys(markets))

    @field_validator("channels")
    @classmethod
    def _check_channels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        channels = tuple(dict.fromkeys(c.lower() for c in value))
        if not channels:
            raise ValueError("must name at least one channel")
        unknown = [c for c in channels if c not in ALL_CHANNELS]
        if unknown:
            raise ValueError(
                f"unknown channel(s) {', '.join(unknown)}; known: {', '.join(ALL_CHANNELS)}")
        return channels

    @field_validator("depth_bands")
    @classmethod
    def _check_bands(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value:
            raise ValueError("must name at least one band")
        if any(not 0 < band < 1 for band in value):
            raise ValueError("every band must be a ratio between 0 and 1, e.g. 0.01")
        return tuple(sorted(set(value)))

    @field_validator("ws_url")
    @classmethod
    def _check_ws_url(cls, value: str) -> str:
        if not value.startswith(("ws://", "wss://")):
            raise ValueError("must start with ws:// or wss://")
        return value

    @field_validator("api_url", "market_api_url", "scales_api_url")
    @classmethod
    def _check_http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("listen_address")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("must be HOST:PORT, :PORT or [::1]:PORT")
        if host.startswith("[") != host.endswith("]"):
            raise ValueError("IPv6 hosts are written in brackets, e.g. [::1]:9841")
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        for name, value in derived_defaults(self, self.model_fields_set).items():
            # The model is frozen; this is its own validation, before anyone sees it.
            object.__setattr__(self, name, value)
        # After the derivation a rule can only be broken by two values the user set.
        if self.backoff_min > self.backoff_max:
            raise ValueError(_conflict("backoff_min", "must not exceed", "backoff_max", self))
        if self.pong_timeout >= self.idle_timeout:
            raise ValueError(_conflict("pong_timeout", "must be shorter than", "idle_timeout",
                                       self))
        if not self.demo:
            if not self.user_id:
                raise ValueError("user_id is required (or run with --demo)")
            if self.api_key is None and self.api_key_file is None:
                raise ValueError("api_key is required: set CRYPTOMUS_API_KEY or "
                                 "CRYPTOMUS_API_KEY_FILE (or run with --demo)")
        return self

    def secret_api_key(self) -> str:
        """The API key, from the value or the file; raises ConfigError naming the option."""
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        if self.api_key_file is None:
            raise ConfigError(f"{option_names('api_key')}: not set")
        try:
            key = self.api_key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{option_names('api_key_file')}: cannot read "
                              f"{self.api_key_file}: {exc.strerror}") from None
        if not key:
            raise ConfigError(f"{option_names('api_key_file')}: {self.api_key_file} is empty")
        return key

    @property
    def all_markets(self) -> bool:
        return self.markets == ("all",)

    @property
    def private_channels(self) -> tuple[str, ...]:
        return tuple(c for c in self.channels if c in PRIVATE_CHANNELS)


def derived_defaults(settings: Settings, user_set: set[str]) -> dict[str, float]:
    """The values of the options the user left unset whose defaults follow others.

    Each result satisfies the formula in its field's ``derived`` text, given the final
    values of the others; a value the user set is never changed. The keep-alive trio is
    solved from ``idle_timeout`` down when the user set it, else ``idle_timeout`` grows
    to fit the ping and pong the user chose.
    """
    def default(name: str) -> float:
        return float(Settings.model_fields[name].default)

    values = {name: getattr(settings, name) for name in (
        "ping_interval", "pong_timeout", "idle_timeout", "backoff_min", "backoff_max")}
    if "idle_timeout" in user_set:
        idle = values["idle_timeout"]
        if "pong_timeout" not in user_set:
            values["pong_timeout"] = min(default("pong_timeout"), idle / 2)
        if "ping_interval" not in user_set and values["pong_timeout"] < idle:
            values["ping_interval"] = min(default("ping_interval"),
                                          idle - values["pong_timeout"])
    else:
        values["idle_timeout"] = max(default("idle_timeout"),
                                     values["ping_interval"] + values["pong_timeout"])
    if "backoff_min" not in user_set:
        values["backoff_min"] = min(default("backoff_min"), values["backoff_max"])
    elif "backoff_max" not in user_set:
        values["backoff_max"] = max(default("backoff_max"), values["backoff_min"])
    return {name: value for name, value in values.items()
            if name not in user_set and value != getattr(settings, name)}


def _conflict(name: str, relation: str, other: str, settings: Settings) -> str:
    """Two options the user set contradict each other: one line naming both, with their
    values (validated numbers by now, so never a secret)."""
    derived = (Settings.model_fields[name].json_schema_extra or {}).get("derived")
    return (f"{option_names(name)} = {getattr(settings, name):g} {relation} "
            f"{option_names(other)} = {getattr(settings, other):g} "
            f"(leave {ENV_PREFIX}{name.upper()} unset to get {derived})")


class ConfigError(Exception):
    """A configuration problem, phrased as one line naming the option."""


def option_names(field: str) -> str:
    """How a user spells the option: its environment variable and flag."""
    info = Settings.model_fields.get(field)
    env = f"{ENV_PREFIX}{field.upper()}"
    flag = (info.json_schema_extra or {}).get("flag") if info else None
    return f"{env} ({flag})" if flag else env


def describe_validation_error(error: ValidationError) -> str:
    """One line naming the first bad option; never echoes the value (it may be a secret)."""
    first = error.errors()[0]
    loc = [str(part) for part in first.get("loc", ()) if not isinstance(part, int)]
    message = first.get("msg", "invalid value").removeprefix("Value error, ")
    if loc:
        return f"{option_names(loc[0])}: {message}"
    field = _field_named_in(message)
    return f"{option_names(field)}: {message}" if field else message


def _field_named_in(message: str) -> str | None:
    for name in Settings.model_fields:
        if message.startswith(name):
            return name
    return None


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with CLI overrides; raises ConfigError (one line)."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None
    if not settings.demo:
        settings.secret_api_key()
    return settings
