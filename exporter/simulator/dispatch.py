"""Client requests on a WebSocket connection: ping, <channel>_subscribe, <channel>_unsubscribe.

Rules from the protocol document: a malformed request (JSON of the wrong shape)
gets error code 1; any other failure (unknown method or market, a second
subscribe to a channel already subscribed on the connection) error code 2.
Unsubscribe acks, and the deal_subscribe ack, omit ``method``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .market import SCALE_COUNT
from .stats import summarize
from .wire import (
    ALL,
    CHANNELS,
    ERROR_FORMAT,
    ERROR_OTHER,
    PRIVATE_CHANNELS,
    SUCCESS,
    error_payload,
    event_payload,
    response_payload,
    text_frame,
)

if TYPE_CHECKING:
    from .connection import WsConnection
    from .simulator import Simulator

DEPTH_UPDATE = "depth_update"
# Acks shown without "method" in the protocol document.
ACK_WITHOUT_METHOD = frozenset({"deal_subscribe"})


class RequestError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Dispatcher:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

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
            self.sim.stats.requests_by_method[method] += 1
            self._dispatch(conn, request_id, method, params)
        except RequestError as error:
            self.sim.stats.errors_sent[error.code] += 1
            frame = text_frame(error_payload(request_id, method, error.message, error.code))
            conn.queue(frame, (method or "error", None))

    def _dispatch(self, conn: WsConnection, request_id: int, method: str, params: list) -> None:
        if method == "ping":
            self.sim.stats.pings += 1
            conn.queue(text_frame(response_payload(request_id, "pong", None)), ("pong", None))
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
        """ALL, or an insertion-ordered dict of the keys events are routed by."""
        if any(not isinstance(param, str) for param in params):
            raise RequestError(ERROR_FORMAT, "invalid message format: params must be strings")
        if ALL in params:
            return ALL
        world = self.sim.world
        keys: dict[object, None] = {}
        for param in params:
            if channel == "depth":
                symbol, separator, index = param.partition(":")
                valid_index = index.isascii() and index.isdigit() and int(index) < SCALE_COUNT
                if not separator or symbol not in world.markets or not valid_index:
                    raise RequestError(ERROR_OTHER, f"unknown depth stream {param!r}")
                keys[(symbol, int(index))] = None
            elif channel == "balance":
                if param not in world.currencies:
                    raise RequestError(ERROR_OTHER, f"unknown currency {param!r}")
                keys[param] = None
            else:
                if param not in world.markets:
                    raise RequestError(ERROR_OTHER, f"unknown market {param!r}")
                keys[param] = None
        return keys

    def all_keys(self, channel: str) -> list:
        world = self.sim.world
        if channel == "depth":
            return [(symbol, 0) for symbol in world.symbols]
        if channel == "balance":
            return list(world.currencies)
        return list(world.symbols)

    # --- subscribe / unsubscribe -------------------------------------------------

    def _subscribe(
        self, conn: WsConnection, request_id: int, method: str, channel: str, params: list
    ) -> None:
        stats = self.sim.stats
        stats.subscribe_requests[channel] += 1
        if channel in conn.subs:
            stats.duplicate_subscribes += 1
            raise RequestError(ERROR_OTHER, f"already subscribed to {channel} on this connection")
        if not params:
            raise RequestError(ERROR_FORMAT, "invalid message format: params must not be empty")
        keys = self._keys(channel, params)
        conn.subs[channel] = keys
        ack_method = None if method in ACK_WITHOUT_METHOD else method
        conn.queue(text_frame(response_payload(request_id, ack_method, SUCCESS)), (method, None))
        if channel == "depth":
            streams = self.all_keys("depth") if keys == ALL else list(keys)  # type: ignore[arg-type]
            self._send_reloads(conn, streams)
        self.sim.notify_subscribed()

    def _send_reloads(self, conn: WsConnection, streams: list) -> None:
        """Full reload of every subscribed book, after the ack; a pending
        ``partial_depth_before_reload`` fault sends a partial update first."""
        timestamp = self.sim.now()
        faults = self.sim.faults
        for symbol, index in streams:
            market = self.sim.world.markets[symbol]
            market.activate_scale(index)
            if faults.take_partial_before_reload(symbol):
                self._queue_depth(conn, market.touch_update(index, timestamp))
            self._queue_depth(conn, market.full_reload(index, timestamp))

    @staticmethod
    def _queue_depth(conn: WsConnection, data: dict) -> None:
        conn.queue(text_frame(event_payload("depth", data)), (DEPTH_UPDATE, None))

    def _unsubscribe(
        self, conn: WsConnection, request_id: int, method: str, channel: str, params: list
    ) -> None:
        self.sim.stats.unsubscribe_requests[channel] += 1
        if not params and channel not in PRIVATE_CHANNELS:
            raise RequestError(ERROR_FORMAT, "invalid message format: params must not be empty")
        keys = self._keys(channel, params) if params else ALL
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


def summarize_event(channel: str, data: object, method: str | None = None) -> tuple:
    """(method, summary) record for the stats of one event frame."""
    name = method or f"{channel}_update"
    return name, summarize(name, data)
