"""Write side, the link to the exchange: frames counted, frames rejected, the
connection's life (connected, subscribed, disconnected, backoff) and REST calls.

The session, the supervisor and the REST client report what happened by calling
these functions; none of them keeps a count of its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from .. import protocol
from .market import clear_books
from .model import CounterSeries, Link, MarketData, State

log = logging.getLogger(__name__)

UNEXPECTED_REPLY = "unexpected_reply"
INTERNAL_ERROR = "internal_error"
# Label values of websocket_disconnects_total and websocket_connect_failures_total.
SERVER_CLOSED = "server_closed"
IDLE_TIMEOUT = "idle_timeout"
PONG_TIMEOUT = "pong_timeout"
RESYNC_FAILED = "resync_failed"
PROTOCOL_ERROR = "protocol_error"  # the server broke RFC 6455 (the frame rule: message errors)
ERROR = "error"
SHUTDOWN = "shutdown"
DISCONNECT_REASONS = (SERVER_CLOSED, IDLE_TIMEOUT, PONG_TIMEOUT, RESYNC_FAILED, PROTOCOL_ERROR,
                      ERROR, SHUTDOWN)
CONNECT_STAGES = ("token", "connect", "subscribe")

Route = Callable[[dict, float], None]


# --- frames -----------------------------------------------------------------------------


def route(state: State, method: str, parse: Callable[[dict], Any],
          apply: Callable[[State, Any, float, Callable[[], None]], None],
          resubscribe: Callable[[], None]) -> Route:
    """What one update event of ``method`` does: parse, apply, count (the hot path)."""
    link = state.link
    counts = link.message_counts
    event_data = protocol.event_data

    def handle(message: dict, now: float) -> None:
        data = message.get("data")
        apply(state, parse(data if type(data) is dict else event_data(message)), now, resubscribe)
        link.last_message_time = link.last_event_time = now
        if method in counts:
            counts[method] += 1.0
        else:
            count_message(link, method, now)

    return handle


def count_message(link: Link, label: str, now: float) -> None:
    """One more frame of ``label`` (a protocol method, ``ack`` or ``other``)."""
    link.last_message_time = now
    if label in link.message_counts:
        link.message_counts[label] += 1.0
    else:
        link.message_counts[label] = 1.0
        link.message_created[label] = now


def reject(link: Link, reason: str, detail: str, *, logged: bool = True) -> None:
    """Something the exchange sent was counted and skipped; logged once per reason
    (unless ``logged`` is False: the caller logs a sample of the frame instead)."""
    series = link.errors.get(reason)
    if series is None:  # the reasons of ERROR_REASONS start at 0; another comes from code
        series = link.errors[reason] = CounterSeries({"reason": reason}, time.time())
    series.value += 1.0
    level = (logging.DEBUG if reason in link.logged_reasons or not logged
             else logging.WARNING)
    link.logged_reasons.add(reason)
    log.log(level, "skipped a frame (%s): %s", reason, detail)


def reject_frame(link: Link, reason: str, detail: str, now: float, *,
                 logged: bool = True) -> None:
    link.last_message_time = now
    reject(link, reason, detail, logged=logged)


def first_internal_error(link: Link, reason: str) -> bool:
    """True until ``reason`` was counted once (the traceback is logged once, then counts)."""
    return reason not in link.logged_reasons


# --- connection -------------------------------------------------------------------------


def subscribed(link: Link, channel: str, accepted: bool) -> None:
    if accepted:
        link.subscriptions[channel] = 1.0
    else:
        link.subscribe_failures[channel].value += 1.0


def established(link: Link, now: float) -> None:
    link.connected = True
    link.connects.value += 1.0
    link.connected_since = now
    link.reconnect_backoff = 0.0
    link.resync_pending.clear()


def resubscribed(link: Link, channel: str) -> None:
    link.resync_pending.discard(channel)


def disconnected(link: Link, markets: MarketData) -> None:
    """The connection is gone: no subscriptions, and no book can be trusted any more."""
    link.connected = False
    link.connected_since = 0.0
    for channel in link.subscriptions:
        link.subscriptions[channel] = 0.0
    clear_books(markets)


def connection_ended(link: Link, reason: str) -> None:
    link.disconnects[reason].value += 1.0


def connect_failed(link: Link, stage: str) -> None:
    link.connect_failures[stage].value += 1.0


def backing_off(link: Link, delay: float) -> None:
    link.reconnect_backoff = delay


# --- REST -------------------------------------------------------------------------------


def api_request(link: Link, endpoint: str, code: str, now: float) -> None:
    series = link.api_requests.get((endpoint, code))
    if series is None:
        series = link.api_requests[(endpoint, code)] = CounterSeries(
            {"endpoint": endpoint, "code": code}, now)
    series.value += 1.0
