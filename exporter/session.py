"""One connection: token -> connect -> subscribe -> reader + keep-alive greenlets.

``Session.run`` returns the reason the connection ended, or raises
``ConnectFailure(stage)`` when it never got established. It never retries:
that is the supervisor's job. The reader (``wsreader``: large socket reads cut into
frames by ``wsframes``) yields to the hub every few hundred frames so /metrics keeps
answering while the socket is saturated.

The session owns the decoding of what arrives and the matching of replies: its
``FrameHandler`` (built with the session's resubscribe callback) takes every
message ``_read`` receives, and its ``Replies`` pairs acks and pongs with the
requests and pings it sent. What happens to the connection is recorded in the
state through ``state.link``'s functions.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

import gevent
import websocket
from gevent.event import AsyncResult, Event

from . import channels as channel_table
from . import protocol, wsframes, wsreader
from .depthscales import DepthScales
from .frames import FrameHandler
from .health import Health
from .logs import Redactor
from .metrics import Instruments
from .replies import Replies
from .rest import RestClient, RestError
from .samples import FrameSamples
from .state import link as records
from .state import market as market_records
from .state.link import (
    CONNECT_STAGES,
    DISCONNECT_REASONS,
    ERROR,
    IDLE_TIMEOUT,
    PONG_TIMEOUT,
    PROTOCOL_ERROR,
    RESYNC_FAILED,
    SERVER_CLOSED,
    SHUTDOWN,
    UNEXPECTED_REPLY,
)
from .state.model import State

log = logging.getLogger(__name__)

__all__ = ["CONNECT_STAGES", "DISCONNECT_REASONS", "SHUTDOWN", "ConnectFailure", "Session"]
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
        state: State,
        instruments: Instruments,
        health: Health,
        redactor: Redactor,
        ping_interval: float,
        pong_timeout: float,
        idle_timeout: float,
        subscribe_timeout: float,
        connect_timeout: float,
        resync_min_interval: float,
        on_established: Callable[[], None] = lambda: None,
        table: tuple[channel_table.Channel, ...] = channel_table.CHANNELS,
        samples: FrameSamples | None = None,
        depth_scales: DepthScales | None = None,
        frame_tap: Callable[[bytes | str], None] | None = None,
    ) -> None:
        self.ws_url = ws_url
        self.channels = channels
        self.markets = markets
        self.depth_scale = depth_scale
        self.rest = rest
        self.state = state
        self.link = state.link
        self.health = health
        self.redactor = redactor
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.idle_timeout = idle_timeout
        self.subscribe_timeout = subscribe_timeout
        self.connect_timeout = connect_timeout
        self.resync_min_interval = resync_min_interval
        self.on_established = on_established
        self.depth_scales = depth_scales
        self._channel_params: dict[str, list[str]] = {}  # what this connection subscribes
        self.ws: websocket.WebSocket | None = None
        self.reason: str | None = None
        self._done = Event()
        self._greenlets: list[gevent.Greenlet] = []
        self._next_id = 0
        self._channels = channel_table.by_name(table)
        self._replies = Replies(on_rtt=instruments.websocket_ping_rtt_seconds.observe,
                                on_unexpected=self._unexpected_reply)
        # The samples' budget outlives the connection (app.Exporter keeps one).
        self._frames = FrameHandler(state, on_reply=self._replies.match,
                                    on_resync=self._request_resync, table=table,
                                    samples=samples or FrameSamples(redactor))
        # The one function every message goes through; ``frame_tap`` (e.g. ``record``) sees
        # each message before it is handled.
        self._handle = self._frames.handle if frame_tap is None else _tapped(
            frame_tap, self._frames.handle)
        self._resync_wanted = Event()
        self._resync_channels: set[str] = set()
        self._resync_markets: set[str] = set()  # depth: the markets whose books broke
        self._resync_policy = state.markets.resync_policy
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
            self._channel_params = self._all_params()  # REST (scale lists) before the socket
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
        self._replies.fail_all(ConnectionError("connection closed"))
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
        if "depth" in self._channel_params:
            market_records.depth_subscribing(self.state, time.time())
        requests = {}
        for channel, params in self._channel_params.items():
            try:
                requests[channel] = self._request(f"{channel}_subscribe", protocol.subscribe,
                                                  channel, params)
            except ConnectionError as error:  # e.g. reset right after the upgrade
                raise ConnectFailure("subscribe", str(error)) from None
        accepted = 0
        for channel, result in requests.items():
            response = self._wait_reply(result, "subscribe")
            records.subscribed(self.link, channel, response.ok)
            if response.ok:
                accepted += 1
            else:
                log.error("subscription to %s rejected by the exchange: %s", channel,
                          response.error)
        if not accepted:
            raise ConnectFailure("subscribe", "every subscription was rejected")

    def _all_params(self) -> dict[str, list[str]]:
        """Each channel's subscription params; a channel with none is not subscribed."""
        known = self.state.markets.known
        depth_markets = None
        if self.depth_scales is not None and "depth" in self.channels:
            depth_markets = self.depth_scales.markets(known)
        selection = channel_table.Selection(self.markets, self.depth_scale, known,
                                            depth_markets)
        result = {}
        for channel in self.channels:
            try:
                params = self._channels[channel].params(selection)
            except ValueError as error:
                log.warning("not subscribing %s: %s", channel, error)
                continue
            if params:
                result[channel] = params
            else:
                log.warning("not subscribing %s: no market to subscribe it for", channel)
        if not result:
            raise ConnectFailure("subscribe", "nothing to subscribe")
        return result

    def _established(self) -> None:
        self.stage = ESTABLISHED
        records.established(self.link, time.time())
        self.health.on_subscribed()
        # The fresh subscriptions reload everything: a resync asked for before is moot.
        self._resync_channels.clear()
        self._resync_markets.clear()
        self._resync_wanted.clear()
        self._spawn(self._keepalive)
        self._spawn(self._resync_loop)
        self.on_established()

    def _teardown(self) -> None:
        if self.reason is None:
            self.reason = ERROR
        self.close(self.reason)
        current = gevent.getcurrent()
        gevent.killall([g for g in self._greenlets if g is not current], block=False)
        if self.ws is not None:
            with contextlib.suppress(OSError, websocket.WebSocketException):
                self.ws.shutdown()
        records.disconnected(self.link, self.state.markets)
        self.health.on_disconnected()

    def _spawn(self, function: Callable[[], None]) -> None:
        self._greenlets.append(gevent.spawn(function))

    # --- requests -------------------------------------------------------------------------

    def _request(self, method: str, build: Callable[..., bytes], *args) -> AsyncResult:
        self._next_id += 1
        request_id = self._next_id
        result = self._replies.expect(request_id, method)
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

    def _unexpected_reply(self, detail: str) -> None:
        # Raised inside FrameHandler.handle (Replies.match is its on_reply): it counts the
        # frame and logs its sample like any other frame not understood.
        raise protocol.ProtocolError(UNEXPECTED_REPLY, detail)

    def _request_resync(self, channel: str, market: str | None = None) -> None:
        """A channel's data (of ``market``) cannot be trusted: renew its subscription
        (``_resync_loop``)."""
        self._resync_channels.add(channel)
        if market is not None:
            self._resync_markets.add(market)
        self._resync_wanted.set()

    # --- greenlets ------------------------------------------------------------------------

    def _read(self) -> None:
        link = self.link
        try:
            close = wsreader.read_messages(
                self.ws, self._handle,
                lambda reason, detail: records.reject_frame(link, reason, detail, time.time()),
                max_message_bytes=protocol.MAX_FRAME_BYTES)
            log.info("the server closed the connection (status %s)", close.code)
            self.close(SERVER_CLOSED)
        except wsframes.FrameError as error:
            records.reject_frame(link, error.reason, error.detail, time.time())
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
        # The reader reads no monotonic clock of its own: a frame arrived since the last
        # tick when the frame handler's last frame time changed (idle is thus measured to
        # within a tick). The subscription acknowledgements have just arrived.
        frames = self._frames
        last_frame_time = frames.last_frame_time
        last_receive = time.monotonic()
        while not self._done.wait(tick):
            now = time.monotonic()
            if frames.last_frame_time != last_frame_time:
                last_frame_time = frames.last_frame_time
                last_receive = now
            if now - last_receive > self.idle_timeout:
                log.warning("nothing received for %.0f s: reconnecting", now - last_receive)
                self.close(IDLE_TIMEOUT)
                return
            ping_age = self._replies.oldest_ping_age()
            if ping_age is not None and ping_age > self.pong_timeout:
                log.warning("no pong within %.1f s: reconnecting", self.pong_timeout)
                self.close(PONG_TIMEOUT)
                return
            if now >= next_ping:
                next_ping = now + self.ping_interval
                self._next_id += 1
                self._replies.ping_sent(self._next_id)
                try:
                    self._send(protocol.ping(self._next_id))
                except ConnectionError:
                    return

    def _resync_loop(self) -> None:
        """Resubscribe a channel (unsubscribe, ack, subscribe): for depth every book reloads.

        At most one resync per ``resync_min_interval``; a market whose book keeps breaking
        right after each reload waits longer each time (``backoff.ResyncPolicy``: doubling
        up to a cap), so a broken feed cannot make us resubscribe over and over. The
        earliest market due decides: the others are not held back by one backed off.
        """
        wanted_event, done = self._resync_wanted, self._done
        while wanted_event.wait() and not done.is_set():
            wanted_event.clear()
            now = time.monotonic()
            wait = self._last_resync + self.resync_min_interval - now
            markets = self._resync_markets
            if markets:
                policy = self._resync_policy
                wait = max(wait, min(policy.next_delay(market, now) for market in markets))
            if wait > 0:
                log.debug("next resync in %.1f s", wait)
                gevent.wait([done, wanted_event], timeout=wait, count=1)
                if done.is_set():
                    return
                if wanted_event.is_set():
                    continue  # another market broke meanwhile: it may be due sooner
            self._last_resync = time.monotonic()
            wanted, self._resync_channels = self._resync_channels, set()
            if "depth" in wanted:
                broken, self._resync_markets = self._resync_markets, set()
                if broken and not market_records.still_broken(self.state, broken):
                    # Each book asked for got a good full reload while the resync waited.
                    wanted.discard("depth")
                    records.resubscribed(self.link, "depth")
                    log.info("order books reloaded meanwhile: depth resync not needed")
            for channel in sorted(wanted):
                if not self._resubscribe(channel):
                    return

    def _resubscribe(self, channel: str) -> bool:
        params = self._channel_params[channel]
        if channel == "depth":
            market_records.depth_subscribing(self.state, time.time())
        try:
            for method, build in ((channel + protocol.UNSUBSCRIBE_SUFFIX, protocol.unsubscribe),
                                  (channel + protocol.SUBSCRIBE_SUFFIX, protocol.subscribe)):
                reply = self._wait_reply(self._request(method, build, channel, params), "resync")
                if not reply.ok:
                    raise ConnectFailure("resync", f"{method} rejected: {reply.error}")
        except (ConnectFailure, ConnectionError, ValueError) as error:
            if channel == "depth":  # the runbook quotes this line
                log.warning("order book resync failed (%s): reconnecting", error)
            else:
                log.warning("%s resync failed (%s): reconnecting", channel, error)
            self.close(RESYNC_FAILED)
            return False
        records.resubscribed(self.link, channel)
        log.info("%s resubscribed", channel)
        return True


def _tapped(tap: Callable[[bytes | str], None],
            handle: Callable[[bytes | str], None]) -> Callable[[bytes | str], None]:
    """``handle`` that first shows each message to ``tap`` (no cost when not tapped)."""

    def tapped_handle(frame: bytes | str) -> None:
        tap(frame)
        handle(frame)

    return tapped_handle


def _describe(error: BaseException) -> str:
    """A short error description that cannot carry the token-bearing URL."""
    status = getattr(error, "status_code", None)
    if status:
        return f"{type(error).__name__}: HTTP {status}"
    return f"{type(error).__name__}: {error}" if isinstance(error, OSError) else type(
        error).__name__
