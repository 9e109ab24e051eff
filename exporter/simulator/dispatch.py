"""Client requests on a WebSocket connection: ping, <channel>_subscribe, <channel>_unsubscribe.

Rules from the protocol document: a malformed request (JSON of the wrong shape)
gets error code 1; any other failure (unknown method or market, a second
subscribe to a channel already subscribed on the connection unless the
``repeat_subscription`` switch says "replace") error code 2. Unsubscribe acks,
and the deal_subscribe ack, omit ``method``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import gevent

from .catalog import Catalog
from .config import SimulatorConfig
from .connection import WsConnection
from .market import Market
from .stats import Stats
from .wire import (
    ALL,
    CHANNELS,
    DEPTH_UPDATE,
    ERROR_FORMAT,
    ERROR_OTHER,
    FAILURE,
    PRIVATE_CHANNELS,
    SUCCESS,
    error_payload,
    event_payload,
    response_payload,
    text_frame,
)

# Acks shown without "method" in the protocol document.
ACK_WITHOUT_METHOD = frozenset({"deal_subscribe"})

# With late_book: seconds between the partial updates sent before a late full reload.
LATE_BOOK_PARTIAL_INTERVAL = 0.2

# Sends the first full book of each (symbol, scale_index) just subscribed.
SendReloads = Callable[[WsConnection, list], None]


class RequestError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class BookReloads:
    """Full reload of every newly subscribed book, after the ack; a pending
    ``partial_depth_before_reload`` fault sends a partial update first. With
    ``late_book`` seconds the reloads come that late, partial updates before them
    (see ``SimulatorConfig.late_book``)."""

    def __init__(
        self,
        markets: Mapping[str, Market],
        take_partial_before_reload: Callable[[str], bool],
        now: Callable[[], int],
        *,
        stats: Stats,
        late_book: float = 0.0,
    ) -> None:
        self._markets = markets
        self._take_partial_before_reload = take_partial_before_reload
        self._now = now
        self._stats = stats
        self._late_book = late_book
        self._late: dict[WsConnection, gevent.Greenlet] = {}  # reloads still to come

    def __call__(self, conn: WsConnection, streams: list) -> None:
        timestamp = self._now()
        for symbol, index in streams:
            self._markets[symbol].activate_scale(index)
        if self._late_book > 0:
            waiting = self._late.pop(conn, None)
            if waiting is not None:  # a new subscription: its books come late again
                waiting.kill(block=False)
            self._late[conn] = gevent.spawn(self._reload_late, conn, streams)
            return
        for symbol, index in streams:
            market = self._markets[symbol]
            if self._take_partial_before_reload(symbol):
                _queue_depth(conn, market.touch_update(index, timestamp))
            _queue_depth(conn, market.full_reload(index, timestamp))

    def _reload_late(self, conn: WsConnection, streams: list) -> None:
        stats = self._stats
        try:
            reload_at = time.monotonic() + self._late_book
            while not conn.closing:
                for symbol, index in streams:
                    if conn.wants("depth", (symbol, index)):
                        market = self._markets[symbol]
                        if _queue_depth(conn, market.touch_update(index, self._now())):
                            stats.late_book_partials[symbol] += 1
                remaining = reload_at - time.monotonic()
                if remaining <= 0:
                    break
                gevent.sleep(min(LATE_BOOK_PARTIAL_INTERVAL, remaining))
            for symbol, index in streams:
                if conn.wants("depth", (symbol, index)):
                    market = self._markets[symbol]
                    if _queue_depth(conn, market.full_reload(index, self._now())):
                        stats.late_book_reloads[symbol] += 1
        finally:
            if self._late.get(conn) is gevent.getcurrent():
                del self._late[conn]


def _queue_depth(conn: WsConnection, data: dict) -> bool:
    return conn.queue(text_frame(event_payload("depth", data)), (DEPTH_UPDATE, None))


class Dispatcher:
    """Answers requests. ``on_subscribed(conn)`` runs after every successful
    subscribe; ``send_reloads`` (None: the feed sends books itself) after a depth one;
    ``acks_fail(channel)`` says whether to answer a subscribe with status "failure"."""

    def __init__(
        self,
        catalog: Catalog,
        stats: Stats,
        config: SimulatorConfig,
        *,
        on_subscribed: Callable[[WsConnection], None],
        send_reloads: SendReloads | None,
        acks_fail: Callable[[str], bool],
    ) -> None:
        self._catalog = catalog
        self._stats = stats
        self._depth_scales = tuple(config.depth_scales)
        self._acks_fail = acks_fail
        self._pong_id_zero = config.pong_id_zero
        self._replace_repeated = config.repeat_subscription == "replace"
        self._on_subscribed = on_subscribed
        self._send_reloads = send_reloads

    def handle(self, conn: WsConnection, message: object) -> None:
        request_id, method = 0, None
        try:
            if not isinstance(message, dict):
                raise RequestError(ERROR_FORMAT, "invalid message format: expected an object")
            raw_id, raw_method, params = (
                message.get("id"),
                message.get("method"),
                message.get("params"),
            )
            if type(raw_id) is int:
                request_id = raw_id
            if isinstance(raw_method, str):
                method = raw_method
            if type(raw_id) is not int or method is None or not isinstance(params, list):
                raise RequestError(
                    ERROR_FORMAT,
                    "invalid message format: need integer id, string method and list params",
                )
            self._stats.requests_by_method[method] += 1
            self._dispatch(conn, request_id, method, params)
        except RequestError as error:
            self._stats.errors_sent[error.code] += 1
            frame = text_frame(error_payload(request_id, method, error.message, error.code))
            conn.queue(frame, (method or "error", None))

    def _dispatch(self, conn: WsConnection, request_id: int, method: str, params: list) -> None:
        if method == "ping":
            self._stats.pings += 1
            pong_id = 0 if self._pong_id_zero else request_id
            conn.queue(text_frame(response_payload(pong_id, "pong", None)), ("pong", None))
            return
        channel, _, action = method.rpartition("_")
        if channel not in CHANNELS or action not in ("subscribe", "unsubscribe"):
            raise RequestError(ERROR_OTHER, f"unknown method {method!r}")
        if action == "subscribe":
            self._subscribe(conn, request_id, method, channel, params)
        else:
            self._unsubscribe(conn, request_id, method, channel, params)

    # --- params -----------------------------------------------------------------

    def _keys(self, channel: str, params: list) -> object:
        """ALL, or an insertion-ordered dict of the keys events are routed by.
        Depth ``all`` is the explicit (symbol, scale) streams of ``depth_scales``."""
        if any(not isinstance(param, str) for param in params):
            raise RequestError(ERROR_FORMAT, "invalid message format: params must be strings")
        if ALL in params:
            return dict.fromkeys(self.all_keys(channel)) if channel == "depth" else ALL
        catalog = self._catalog
        keys: dict[object, None] = {}
        for param in params:
            if channel == "depth":
                symbol, separator, index = param.partition(":")
                valid_index = index.isascii() and index.isdigit() and catalog.has_scale(int(index))
                if not separator or not catalog.has_market(symbol) or not valid_index:
                    raise RequestError(ERROR_OTHER, f"unknown depth stream {param!r}")
                keys[(symbol, int(index))] = None
            elif channel == "balance":
                if not catalog.has_currency(param):
                    raise RequestError(ERROR_OTHER, f"unknown currency {param!r}")
                keys[param] = None
            else:
                if not catalog.has_market(param):
                    raise RequestError(ERROR_OTHER, f"unknown market {param!r}")
                keys[param] = None
        return keys

    def all_keys(self, channel: str) -> list:
        catalog = self._catalog
        if channel == "depth":
            return [(symbol, index) for symbol in catalog.symbols for index in self._depth_scales]
        if channel == "balance":
            return list(catalog.currencies)
        return list(catalog.symbols)

    # --- subscribe / unsubscribe -------------------------------------------------

    def _subscribe(
        self, conn: WsConnection, request_id: int, method: str, channel: str, params: list
    ) -> None:
        stats = self._stats
        stats.subscribe_requests[channel] += 1
        repeated = channel in conn.subs
        if repeated:
            stats.duplicate_subscribes += 1
            if not self._replace_repeated:
                raise RequestError(
                    ERROR_OTHER, f"already subscribed to {channel} on this connection"
                )
        if not params:
            raise RequestError(ERROR_FORMAT, "invalid message format: params must not be empty")
        keys = self._keys(channel, params)
        ack_method = None if method in ACK_WITHOUT_METHOD else method
        failing = self._acks_fail(channel)
        ack = response_payload(request_id, ack_method, FAILURE if failing else SUCCESS)
        if failing:
            stats.ack_failures_sent[channel] += 1
            conn.queue(text_frame(ack), (method, None))
            return
        if repeated:
            stats.subscriptions_replaced += 1
        conn.subs[channel] = keys
        conn.queue(text_frame(ack), (method, None))
        if channel == "depth" and self._send_reloads is not None:
            self._send_reloads(conn, list(keys))  # type: ignore[call-overload]
        self._on_subscribed(conn)

    def _unsubscribe(
        self, conn: WsConnection, request_id: int, method: str, channel: str, params: list
    ) -> None:
        self._stats.unsubscribe_requests[channel] += 1
        if not params and channel not in PRIVATE_CHANNELS:
            raise RequestError(ERROR_FORMAT, "invalid message format: params must not be empty")
        keys = self._keys(channel, params) if params else ALL
        if ALL in params:  # everything, also depth streams outside depth_scales
            keys = ALL
        current = conn.subs.get(channel)
        if current is not None:
            if keys == ALL:
                del conn.subs[channel]
            else:
                remaining = dict.fromkeys(self.all_keys(channel)) if current == ALL else current
                for key in keys:  # type: ignore[union-attr]
                    remaining.pop(key, None)  # type: ignore[union-attr]
                if remaining:
                    conn.subs[channel] = remaining
                else:
                    del conn.subs[channel]
        conn.queue(text_frame(response_payload(request_id, None, SUCCESS)), (method, None))

