"""Simulator configuration (validated on construction)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from .market import SCALE_COUNT
from .wire import CHANNELS

MAX_MARKETS = 1000
MAX_DEPTH_LEVELS = 200
SYMBOL_PATTERN = re.compile(r"^[A-Z0-9]{1,12}_[A-Z0-9]{1,12}$")
REPEAT_SUBSCRIPTION_MODES = ("reject", "replace")
MAX_LATE_BOOK = 3600.0


@dataclass
class SimulatorConfig:
    """Everything a :class:`Simulator` needs; invalid values raise ``ValueError``.

    ``markets`` is a count (1..1000: BTC_USDT, ETH_USDT, TRX_USDT first, then more
    well-known and synthetic markets) or an explicit list of ``BASE_QUOTE`` symbols.
    ``rate`` is generated events per second over all markets (0: as fast as
    possible). ``epoch`` fixes the simulated clock (Unix seconds) so that frames,
    timestamps included, are identical between runs with the same seed; by
    default timestamps are the wall clock.

    The switches below select one reading of what the protocol document leaves
    open (its "Open points"); the defaults are the simulator's historical reading.

    - ``depth_scales``: the scale indices ``depth_subscribe ["all"]`` delivers for
      every market. More than one interleaves ``depth_update`` frames of several
      ``scale_index`` values per symbol, each scale its own consistent book.
    - ``ack_failure_channels``: subscribing to these channels is answered with
      ``data.status`` "failure" (and ``error`` null) and subscribes nothing.
    - ``pong_id_zero``: a pong always carries id 0 instead of echoing the ping's id.
    - ``repeat_subscription``: a second subscribe to a channel already subscribed on
      the connection is rejected (``"reject"``, error code 2) or replaces the old
      subscription (``"replace"``: success ack, and for depth every book reloads).
    - ``late_book``: seconds between a depth subscribe's ack and the full reload of each
      book it covers (0: right after the ack). Meanwhile a partial update of each such
      book is sent every 0.2 s (``dispatch.LATE_BOOK_PARTIAL_INTERVAL``), as an exchange
      whose full book comes late would; a new depth subscribe on the connection starts
      the wait again.
    - ``tls_cert`` / ``tls_key``: PEM files; when set, REST and the WebSocket are
      served over TLS (``https://``, ``wss://``) on the same port.
    - ``replay``: a recording (see ``exporter.recording``) served to each WebSocket
      client instead of generated markets, ``replay_speed`` times as fast as it was
      recorded (0: as fast as possible).
    """

    host: str = "127.0.0.1"
    port: int = 0
    seed: int = 1
    markets: int | Sequence[str] = 3
    rate: float = 20.0
    autogen: bool = True
    idle_timeout: float = 60.0
    token_ttl: float = 300.0
    depth_levels: int = 50
    user_id: str = "demo-user"
    api_key: str = field(default="demo-api-key", repr=False)
    epoch: int | None = None
    # A connection whose unsent frames exceed this is dropped as a slow consumer.
    max_buffer_bytes: int = 64 * 1024 * 1024
    depth_scales: Sequence[int] = (0,)
    ack_failure_channels: Sequence[str] = ()
    pong_id_zero: bool = False
    repeat_subscription: str = "reject"
    late_book: float = 0.0
    tls_cert: str | None = None
    tls_key: str | None = None
    replay: str | None = None
    replay_speed: float = 1.0

    def __post_init__(self) -> None:
        self.markets = _validated_markets(self.markets)
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        if self.rate < 0:
            raise ValueError("rate must be >= 0 (0 means as fast as possible)")
        if self.idle_timeout <= 0 or self.token_ttl <= 0:
            raise ValueError("idle_timeout and token_ttl must be > 0")
        if not 1 <= self.depth_levels <= MAX_DEPTH_LEVELS:
            raise ValueError(f"depth_levels must be 1..{MAX_DEPTH_LEVELS}")
        if not self.user_id or not self.api_key:
            raise ValueError("user_id and api_key must not be empty")
        if self.max_buffer_bytes < 1024 * 1024:
            raise ValueError("max_buffer_bytes must be at least 1 MiB")
        self.depth_scales = _validated_scales(self.depth_scales)
        self.ack_failure_channels = validated_channels(self.ack_failure_channels)
        if self.repeat_subscription not in REPEAT_SUBSCRIPTION_MODES:
            raise ValueError(
                f"repeat_subscription must be one of {', '.join(REPEAT_SUBSCRIPTION_MODES)}, "
                f"got {self.repeat_subscription!r}"
            )
        if not 0 <= self.late_book <= MAX_LATE_BOOK:
            raise ValueError(f"late_book must be 0..{MAX_LATE_BOOK} seconds, got {self.late_book}")
        if self.late_book and self.replay:
            raise ValueError("late_book does not apply to a replay (the recording has the books)")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        if self.replay_speed < 0:
            raise ValueError("replay_speed must be >= 0 (0 means as fast as possible)")

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


def _validated_markets(markets: int | str | Sequence[str]) -> int | list[str]:
    if isinstance(markets, int):
        if not 1 <= markets <= MAX_MARKETS:
            raise ValueError(f"markets must be between 1 and {MAX_MARKETS}, got {markets}")
        return markets
    if isinstance(markets, str):
        markets = [part.strip() for part in markets.split(",") if part.strip()]
    symbols = list(markets)
    if not 1 <= len(symbols) <= MAX_MARKETS or len(set(symbols)) != len(symbols):
        raise ValueError(f"markets must list 1..{MAX_MARKETS} distinct symbols")
    for symbol in symbols:
        if not isinstance(symbol, str) or not SYMBOL_PATTERN.match(symbol):
            raise ValueError(f"market symbol must look like BASE_QUOTE, got {symbol!r}")
    return symbols


def _validated_scales(scales: Sequence[int]) -> tuple[int, ...]:
    indices = tuple(scales)
    valid = all(type(index) is int and 0 <= index < SCALE_COUNT for index in indices)
    if not indices or not valid or len(set(indices)) != len(indices):
        raise ValueError(f"depth_scales must list distinct scale indices 0..{SCALE_COUNT - 1}")
    return indices


def validated_channels(channels: str | Sequence[str]) -> tuple[str, ...]:
    """The channel names of a subscribe-failure switch; ValueError names an unknown one."""
    names = (channels,) if isinstance(channels, str) else tuple(channels)
    for name in names:
        if name not in CHANNELS:
            known = ", ".join(CHANNELS)
            raise ValueError(f"ack_failure_channels: unknown channel {name!r} ({known})")
    return names
