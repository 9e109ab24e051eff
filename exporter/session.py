"""One connection: token -> connect -> subscribe -> reader + keep-alive greenlets.

``Session.run`` returns the reason the connection ended, or raises
``ConnectFailure(stage)`` when it never got established. It never retries:
that is the supervisor's job. The reader (``wsreader``) yields to the hub every few
hundred frames so /metrics keeps answering while the socket is saturated.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

import gevent
import websocket
from gevent.event import AsyncResult, Event

from . import protocol, wsframes, wsreader
from .handlers import UNEXPECTED_REPLY, Handlers
from .health import Health
from .logs import Redactor
from .metrics import Metrics
from .rest import RestClient, RestError

log = logging.getLogger(__name__)

# Disconnect reasons (label values of websocket_disconnects_total).
SERVER_CLOSED = "server_closed"
IDLE_TIMEOUT = "idle_timeout"
PONG_TIMEOUT = "pong_timeout"
RESYNC_FAILED = "resync_failed"
PROTOCOL_ERROR = "protocol_error"  # the server broke RFC 6455 (the rule: message errors' reason)
ERROR = "error"
SHUTDOWN = "shutdown"
DISCONNECT_REASONS = (SERVER_CLOSED, IDLE_TIMEOUT, PONG_TIMEOUT, RESYNC_FAILED, PROTOCOL_ERROR,
                      ERROR, SHUTDOWN)
CONNECT_STAGES = ("token", "connect", "subscribe")
ESTABLISHED = "established"


class ConnectFailure(Exception):
    """The connection could not be established; ``stage`` is token, connect or subscribe."""

    def __init__(self, stage: str, detail: str, retry_after: float | None = None) -> None:
        super().__init__(f"{stage} failed: {detail}")
        self.stage = stage
        self.detail = detail
        self.retry_after = retry_after  # seconds the exchange asked us to wait (Retry-After)


class Session:
    def __init__(
        self,
        *,
        ws_url: str,
        channels: tuple[str, ...],
        markets: tuple[str, ...] | None,
        depth_scale: int,
        rest: RestClient,
        handlers: Handlers,
        metrics: Metrics,
        health: Health,
        redactor: Redactor,
        ping_interval: float,
        pong_timeout: float,
        idle_timeout: float,
        subscribe_timeout: float,
        connect_timeout: float,
        resync_min_interval: float,
        on_established: Callable[[], None] = lambda: None,
    ) -> None:
        self.ws_url = ws_url
        self.channels = channels
        self.markets = markets
        self.depth_scale = depth_scale
        self.rest = rest
        self.handlers = handlers
        self.metrics = metrics
        self.health = health
        self.redactor = redactor
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.idle_timeout = idle_timeout
        self.subscribe_timeout = subscribe_timeout
        self.connect_timeout = connect_timeout
        self.resync_min_interval = resync_min_interval
        self.on_established = on_established
        self.ws: websocket.WebSocket | None = None
        self.reason: str | None = None
        self._done = Event()
        self._greenlets: list[gevent.Greenlet] = []
        self._next_id = 0
        self._pending: dict[int, tuple[str, AsyncResult]] = {}
        self._pings: dict[int, float] = {}
        self._resync_wanted = Event()
        self._last_resync = float("-inf")
        self.stage = CONNECT_STAGES[0]

    # --- lifecycle ------------------------------------------------------------------------

    def run(self) -> str:
        """Connect and serve until the connection ends; return why it ended.

        Anything unexpected (a library raising outside its documented exceptions)
        is logged through the redacting log filter and reported like any other
        failure of its stage: it must never reach the supervisor, whose loop would die.
        """
        try:
            self._connect()
            self._subscribe_all()
            self._established()
            self._done.wait()
        except ConnectFailure:
            raise
        except Exception as error:
            log.exception("unexpected error at the %s stage", self.stage)
            if self.stage != ESTABLISHED:
                raise ConnectFailure(self.stage, type(error).__name__) from None
            self.reason = self.reason or ERROR
        finally:
            self._teardown()
        return self.reason or ERROR

    def close(self, reason: str = SHUTDOWN) -> None:
        """End the connection (from any greenlet); the first reason given wins."""
        if self.reason is None:
            self.reason = reason
        self._done.set()
        for _, result in self._pending.values():
            if not result.ready():
                result.set_exception(ConnectionError("connection closed"))
        ws = self.ws
        if ws is not None and ws.connected:
            with contextlib.suppress(OSError, websocket.WebSocketException):
                if reason == SHUTDOWN:
                    ws.send_close()
                ws.abort()  # wakes the reader; the socket is closed in _teardown

    def _connect(self) -> None:
        self.stage = "token"
        try:
            token = self.rest.token()
        except RestError as error:
            raise ConnectFailure("token", str(error), error.retry_after) from None
        self.redactor.add(token, rotating=True)
        self.stage = "connect"
        url = f"{self.ws_url}?token={token}"
        log.debug("connecting to %s", url)  # the log filter redacts the token
        try:
            self.ws = websocket.create_connection(
                url,
                timeout=self.connect_timeout,
                skip_utf8_validation=True,
                enable_multithread=True,
            )
        except (OSError, websocket.WebSocketException) as error:
            raise ConnectFailure("connect", _describe(error)) from None
        self.ws.settimeout(None)
        self.health.on_connected()
        self._spawn(self._read)
        log.info("connected to %s", self.ws_url)

    def _subscribe_all(self) -> None:
        self.stage = "subscribe"
        requests = {}
        for channel in self.channels:
            params = protocol.subscription_params(channel, self._markets_for(channel),
                                                  self.depth_scale)
            try:
                requests[channel] = self._request(f"{channel}_subscribe", protocol.subscribe,
                                                  channel, params)
            except ConnectionError as error:  # e.g. reset right after the upgrade
                raise ConnectFailure("subscribe", str(error)) from None
        accepted = 0
        for channel, result in requests.items():
            response = self._wait_reply(result, "subscribe")
            if response.ok:
                accepted += 1
                self.metrics.websocket_subscriptions.labels(channel).set(1)
            else:
                self.metrics.websocket_subscribe_failures_total.labels(channel).inc()
                log.error("subscription to %s rejected: %s (code %s)", channel,
                          response.error, response.code)
        if not accepted:
            raise ConnectFailure("subscribe", "every subscription was rejected")

    def _markets_for(self, channel: str) -> tuple[str, ...] | None:
        if self.markets is None and channel == "depth" and self.depth_scale != 0:
            return tuple(sorted(self.handlers.known_markets)) or None
        return self.markets

    def _established(self) -> None:
        self.stage = ESTABLISHED
        metrics = self.metrics
        metrics.websocket_connected.set(1)
        metrics.websocket_connects_total.inc()
        metrics.websocket_connected_since_timestamp_seconds.set(time.time())
        metrics.websocket_reconnect_backoff_seconds.set(0)
        self.health.on_subscribed()
        self.handlers.request_depth_resync = self._resync_wanted.set
        self.handlers.depth_resubscribed()
        self._spawn(self._keepalive)
        self._spawn(self._resync_loop)
        self.on_established()

    def _teardown(self) -> None:
        if self.reason is None:
            self.reason = ERROR
        self.close(self.reason)
        self.handlers.request_depth_resync = lambda: None
        current = gevent.getcurrent()
        gevent.killall([g for g in self._greenlets if g is not current], block=False)
        if self.ws is not None:
            with contextlib.suppress(OSError, websocket.WebSocketException):
                self.ws.shutdown()
        self.metrics.websocket_connected.set(0)
        self.metrics.websocket_connected_since_timestamp_seconds.set(0)
        for channel in self.channels:
            self.metrics.websocket_subscriptions.labels(channel).set(0)
        self.health.on_disconnected()
        self.handlers.clear_books()

    def _spawn(self, function: Callable[[], None]) -> None:
        self._greenlets.append(gevent.spawn(function))

    # --- requests -------------------------------------------------------------------------

    def _request(self, method: str, build: Callable[..., bytes], *args) -> AsyncResult:
        self._next_id += 1
        request_id = self._next_id
        result = AsyncResult()
        self._pending[request_id] = (method, result)
        log.debug("request %d: %s", request_id, method)
        self._send(build(request_id, *args))
        return result

    def _send(self, payload: bytes) -> None:
        ws = self.ws
        if ws is None:
            raise ConnectionError("not connected")
        try:
            ws.send(payload)
        except (OSError, websocket.WebSocketException) as error:
            self.close(ERROR)
            raise ConnectionError(_describe(error)) from None

    def _wait_reply(self, result: AsyncResult, stage: str) -> protocol.Response:
        try:
            return result.get(timeout=self.subscribe_timeout)
        except gevent.Timeout:
            raise ConnectFailure(stage, "no acknowledgement in time") from None
        except ConnectionError as error:
            raise ConnectFailure(stage, str(error)) from None

    def _on_response(self, response: protocol.Response) -> None:
        if response.method == "pong":
            sent = self._pings.pop(response.request_id, None)
            if sent is not None:
                self.metrics.websocket_ping_rtt_seconds.observe(time.monotonic() - sent)
            return
        entry = self._pending.pop(response.request_id, None) if response.request_id else None
        if entry is None:
            entry = self._oldest_pending(response.method)
        if entry is None:
            self.handlers.count_error(UNEXPECTED_REPLY, "reply to no pending request")
            return
        entry[1].set(response)

    def _oldest_pending(self, method: str | None) -> tuple[str, AsyncResult] | None:
        """Match a reply whose id we do not know (acks may carry id 0 and no method)."""
        for request_id, (pending_method, _) in self._pending.items():
            if method is None or method == pending_method:
                return self._pending.pop(request_id)
        return None

    # --- greenlets ------------------------------------------------------------------------

    def _read(self) -> None:
        handlers = self.handlers
        try:
            close = wsreader.read_messages(self.ws, handlers.handle_frame, self._on_response,
                                           handlers.count_error,
                                           max_message_bytes=protocol.MAX_FRAME_BYTES)
            log.info("the server closed the connection (status %s)", close.code)
            self.close(SERVER_CLOSED)
        except wsframes.FrameError as error:
            handlers.count_error(error.reason, error.detail)
            log.warning("protocol error from the server (%s): closing", error)
            self.close(PROTOCOL_ERROR)
        except websocket.WebSocketConnectionClosedException:
            self.close(SERVER_CLOSED)
        except (OSError, websocket.WebSocketException) as error:
            if self.reason is None:
                log.warning("connection error: %s", _describe(error))
            self.close(ERROR)

    def _keepalive(self) -> None:
        tick = min(1.0, self.ping_interval / 4, self.pong_timeout / 4, self.idle_timeout / 4)
        next_ping = time.monotonic() + self.ping_interval
        # The reader reads no clock of its own: a frame arrived since the last tick when
        # the handlers' last message time changed (idle is thus measured to within a tick).
        # The subscription acknowledgements have just arrived.
        last_message_time = self.handlers.last_message_time
        last_receive = time.monotonic()
        while not self._done.wait(tick):
            now = time.monotonic()
            if self.handlers.last_message_time != last_message_time:
                last_message_time = self.handlers.last_message_time
                last_receive = now
            if now - last_receive > self.idle_timeout:
                log.warning("nothing received for %.0f s: reconnecting", now - last_receive)
                self.close(IDLE_TIMEOUT)
                return
            if self._pings and now - min(self._pings.values()) > self.pong_timeout:
                log.warning("no pong within %.1f s: reconnecting", self.pong_timeout)
                self.close(PONG_TIMEOUT)
                return
            if now >= next_ping:
                next_ping = now + self.ping_interval
                self._next_id += 1
                self._pings[self._next_id] = now
                try:
                    self._send(protocol.ping(self._next_id))
                except ConnectionError:
                    return

    def _resync_loop(self) -> None:
        """Resubscribe depth (unsubscribe, ack, subscribe): every book reloads."""
        while self._resync_wanted.wait() and not self._done.is_set():
            wait = self._last_resync + self.resync_min_interval - time.monotonic()
            if wait > 0 and self._done.wait(wait):
                return
            self._resync_wanted.clear()
            self._last_resync = time.monotonic()
            params = protocol.subscription_params("depth", self._markets_for("depth"),
                                                  self.depth_scale)
            try:
                for method, build in (("depth_unsubscribe", protocol.unsubscribe),
                                      ("depth_subscribe", protocol.subscribe)):
                    reply = self._wait_reply(self._request(method, build, "depth", params),
                                             "resync")
                    if not reply.ok:
                        raise ConnectFailure("resync", f"{method} rejected: {reply.error}")
            except (ConnectFailure, ConnectionError) as error:
                log.warning("order book resync failed (%s): reconnecting", error)
                self.close(RESYNC_FAILED)
                return
            self.handlers.depth_resubscribed()
            log.info("order books resubscribed")


def _describe(error: BaseException) -> str:
    """A short error description that cannot carry the token-bearing URL."""
    status = getattr(error, "status_code", None)
    if status:
        return f"{type(error).__name__}: HTTP {status}"
    return f"{type(error).__name__}: {error}" if isinstance(error, OSError) else type(
        error).__name__
