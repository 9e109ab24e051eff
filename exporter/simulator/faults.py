"""Fault injection: what a real exchange (or the network) does to a client on a bad day."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import orjson

from .config import validated_channels
from .market import SCALE_COUNT, Market
from .stats import Stats
from .wire import DEPTH_UPDATE, event_payload, text_frame

if TYPE_CHECKING:  # only the type: `simulate --fault` and `exporter run` skip wsproto/h11
    from .hub import Hub

HUGE_PADDING_BYTES = 2 * 1024 * 1024
REFUSE_MODES = ("status", "reset")


def _event(event_id: object, method: object, data: object) -> bytes:
    return orjson.dumps({"id": event_id, "method": method, "data": data, "error": None})


def _garbage_frames() -> dict[str, list[bytes]]:
    """Malformed frames by kind (each a text frame payload)."""
    btc = {"symbol": "BTC_USDT", "timestamp": 1}
    wrong_ticker = {**btc, "price": None, "open": {}, "high": True, "low": "x", "volume": "-"}
    wrong_depth = {**btc, "full_reload": "yes", "scale_index": "0", "asks": "none"}
    return {
        "not_json": [b"this is not json {", b"<html><body>502 Bad Gateway</body></html>"],
        "wrong_types": [
            _event(0, "lastprice_update", {"symbol": 7, "timestamp": "soon", "price": [1]}),
            _event(0, "ticker_update", {**wrong_ticker, "quote_volume": [], "price_change": "?"}),
            _event(0, "depth_update", {**wrong_depth, "bids": [["1"], [None, "2"], "x"]}),
            _event(0, "trade_update", {**btc, "trades": {"price": "1"}}),
            _event("3", "order_update", {"type": 5, "info": ["not", "an", "object"]}),
            _event("4", "balance_update", {"info": None}),
            _event("1", "deal_update", "deal"),
            orjson.dumps({"id": [], "method": 12, "data": None, "error": "bad"}),
            orjson.dumps([1, 2, 3]),
        ],
        "unknown_method": [
            _event(0, "candles_update", btc),
            _event("9", "margin_call", {"info": {}}),
        ],
        "huge": [_event(0, "ticker_update", {**btc, "padding": "x" * HUGE_PADDING_BYTES})],
        "truncated": [
            b'{"id":0,"method":"lastprice_update","data":{"symbol":"BTC_USDT","timest',
            b'{"id":0,"method":"depth_update","data":{"symbol":"BTC_USDT","asks":[["1.0","',
        ],
    }


class Faults:
    """Each method injects one fault; see the README of the simulator CLI.
    ``markets`` are the books ``crossed_book`` and ``partial_depth_before_reload``
    may name (none when replaying a recording)."""

    GARBAGE_KINDS = tuple(_garbage_frames())

    def __init__(
        self,
        hub: Hub,
        stats: Stats,
        markets: Mapping[str, Market],
        now: Callable[[], int],
        *,
        ack_failure_channels: Iterable[str] = (),
    ) -> None:
        self._hub = hub
        self._stats = stats
        self._markets = markets
        self._now = now
        self.silent_until = 0.0
        self.token_failures_left = 0
        self.token_failure_status = 500
        self.refuse_until = 0.0
        self.refuse_mode = "status"
        self.refuse_status = 503
        self._partial_before_reload: dict[str, None] = {}
        self.ack_failure_channels = frozenset(ack_failure_channels)
        self._failing_scale_lists: dict[str, int] = {}  # market -> HTTP status

    # --- state read by the server -------------------------------------------------

    def is_silent(self) -> bool:
        return self.silent_until > 0 and time.monotonic() < self.silent_until

    @property
    def silent(self) -> bool:
        return self.is_silent()

    @property
    def refusing(self) -> bool:
        return self.refuse_until > 0 and time.monotonic() < self.refuse_until

    def take_token_failure(self) -> int | None:
        """The status the next token call must fail with, if any."""
        if self.token_failures_left <= 0:
            return None
        self.token_failures_left -= 1
        return self.token_failure_status

    def acks_fail(self, channel: str) -> bool:
        return channel in self.ack_failure_channels

    def scale_list_failure(self, market: str) -> int | None:
        """The HTTP status ``market``'s scale list must fail with, if any."""
        return self._failing_scale_lists.get(market)

    def take_partial_before_reload(self, market: str) -> bool:
        if market not in self._partial_before_reload:
            return False
        del self._partial_before_reload[market]
        return True

    # --- faults -----------------------------------------------------------------

    def drop_connections(self) -> int:
        """Close every WebSocket abruptly (TCP shutdown, no close frame)."""
        connections = self._hub.open_connections()
        for conn in connections:
            conn.drop()
        self._stats.dropped_by_fault += len(connections)
        return len(connections)

    def go_silent(self, seconds: float) -> None:
        """Keep sockets open but send nothing (events, acks, pongs) for a while."""
        if seconds <= 0:
            raise ValueError("seconds must be > 0")
        self.silent_until = time.monotonic() + seconds

    def send_garbage(self, kind: str) -> int:
        """Send malformed frames of one kind to every open connection; returns frames sent."""
        frames = _garbage_frames().get(kind)
        if frames is None:
            raise ValueError(f"kind must be one of {', '.join(self.GARBAGE_KINDS)}")
        sent = 0
        for conn in self._hub.open_connections():
            sent += sum(conn.queue(text_frame(frame), (None, None)) for frame in frames)
        self._stats.garbage_sent[kind] += sent
        return sent

    def fail_token(self, count: int, status: int = 500) -> None:
        """The next ``count`` token calls fail with ``status`` (5xx: an HTML page)."""
        if count < 1 or not 400 <= status <= 599:
            raise ValueError("count must be >= 1 and status 400..599")
        self.token_failures_left = count
        self.token_failure_status = status

    def refuse_connections(self, seconds: float, mode: str = "status", status: int = 503) -> None:
        """Refuse WebSocket upgrades for a while: ``status`` answers the upgrade
        with that HTTP status, ``reset`` resets the TCP connection."""
        if seconds <= 0 or mode not in REFUSE_MODES or not 400 <= status <= 599:
            raise ValueError(f"seconds must be > 0, mode one of {REFUSE_MODES}, status 400..599")
        self.refuse_until = time.monotonic() + seconds
        self.refuse_mode = mode
        self.refuse_status = status

    def partial_depth_before_reload(self, market: str) -> None:
        """The next depth subscribe covering ``market`` sends a partial update
        for it before its full reload."""
        self._market(market)
        self._partial_before_reload[market] = None

    def fail_acks(self, channels: str | Iterable[str]) -> None:
        """From now on answer subscribes to these channels (a comma list; empty: none)
        with ``data.status`` "failure" and ``error`` null, subscribing nothing."""
        names = channels.split(",") if isinstance(channels, str) else channels
        self.ack_failure_channels = frozenset(
            validated_channels([name.strip() for name in names if name.strip()])
        )

    def fail_scales(self, market: str, status: int = 404) -> None:
        """From now on the depth scale list (``/api/v2/symbol-scales``) of these markets
        (a comma list) answers ``status`` (404: as for an unknown market), until
        ``clear``."""
        if not 400 <= status <= 599:
            raise ValueError("status must be 400..599")
        symbols = [symbol.strip() for symbol in market.split(",") if symbol.strip()]
        if not symbols:
            raise ValueError("market must name at least one market")
        for symbol in symbols:
            self._failing_scale_lists[symbol] = status

    def restore_scales(self) -> None:
        """Serve every market's scale list again."""
        self._failing_scale_lists.clear()

    def crossed_book(self, market: str) -> int:
        """Send every depth subscriber of ``market`` a partial update that puts a
        bid at the best ask (the simulator's own book stays sound, so a resync
        repairs it). Returns the number of frames sent."""
        book = self._market(market)
        timestamp, sent = self._now(), 0
        for conn in self._hub.open_connections():
            for index in range(SCALE_COUNT):
                if conn.wants("depth", (market, index)):
                    book.activate_scale(index)
                    data = book.crossing_update(index, timestamp)
                    frame = text_frame(event_payload("depth", data))
                    sent += conn.queue(frame, (DEPTH_UPDATE, None))
        return sent

    def clear(self) -> None:
        """Cancel every pending or running fault (failing acks included, also those
        the configuration asked for)."""
        self.silent_until = self.refuse_until = 0.0
        self.token_failures_left = 0
        self._partial_before_reload.clear()
        self._failing_scale_lists.clear()
        self.ack_failure_channels = frozenset()

    def _market(self, symbol: str) -> Market:
        market = self._markets.get(symbol)
        if market is None:
            raise ValueError(f"unknown market {symbol!r}")
        return market
