"""The simulator: one loopback port serving the REST hosts and the WebSocket,
the generator greenlet that moves the markets, and the test/fault hooks."""

from __future__ import annotations

import contextlib
import socket
import time
from collections import Counter
from collections.abc import Sequence
from types import TracebackType

import gevent
import orjson
from gevent.event import Event
from gevent.server import StreamServer

from .account import Account
from .config import SimulatorConfig
from .connection import CLOSE_GOING_AWAY, Bulk, WsConnection
from .dispatch import DEPTH_UPDATE, Dispatcher, summarize_event
from .faults import Faults
from .market import SCALE_COUNT, Market
from .rest import RestApi
from .server import HttpHandler
from .stats import Stats
from .wire import CHANNELS, event_payload, text_frame
from .world import World

HIGH_WATERMARK = 1024 * 1024  # queued bytes above which the generator waits for a writer
STALL_TIMEOUT = 2.0  # a writer that does not drain within this stops holding the generator
YIELD_EVERY = 64  # generator steps between yields to the hub when running flat out
CATCH_UP_LIMIT = 1.0  # seconds behind schedule after which pacing restarts from now
BLAST_CHUNK_BYTES = 256 * 1024
VIRTUAL_RATE = 1000.0  # events per simulated second for ``epoch`` when rate is 0


class Simulator:
    """A protocol-faithful fake Cryptomus exchange on one loopback port."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.stats = Stats()
        self.tokens_seen: list[str] = []
        self._events_generated = 0
        self.world = World(self.config, self.now())
        self.faults = Faults(self)
        self.dispatcher = Dispatcher(self)
        self.rest = RestApi(self)
        self._connections: list[WsConnection] = []
        self._sockets: set[socket.socket] = set()
        self._server: StreamServer | None = None
        self._greenlets: list[gevent.Greenlet] = []
        self._subscribed = Event()
        self._running = Event()
        self._running.set()
        self._stopped = False

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> Simulator:
        """Bind and start serving; returns at once. Calling it again does nothing."""
        if self._server is not None:
            return self
        self._server = StreamServer((self.config.host, self.config.port), HttpHandler(self))
        self._server.start()
        self._greenlets.append(gevent.spawn(self._sweep_idle))
        if self.config.autogen:
            self._greenlets.append(gevent.spawn(self._generate))
        return self

    def stop(self) -> None:
        """Close every connection (close frame 1001) and the listener. Idempotent."""
        if self._server is None or self._stopped:
            return
        self._stopped = True
        gevent.killall(self._greenlets, block=False)
        for conn in list(self._connections):
            conn.close(CLOSE_GOING_AWAY, "simulator stopping")
        gevent.sleep(0.01)
        for sock in list(self._sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._server.stop(timeout=1)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- addresses and state ----------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("simulator not started")
        return self._server.server_port

    @property
    def _authority(self) -> str:
        host = self.config.host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://{self._authority}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self._authority}/ws"

    @property
    def markets(self) -> list[str]:
        return list(self.world.symbols)

    @property
    def account(self) -> Account:
        return self.world.account

    @property
    def connections(self) -> int:
        return len(self._connections)

    def market(self, symbol: str) -> Market:
        market = self.world.markets.get(symbol)
        if market is None:
            raise ValueError(f"unknown market {symbol!r}")
        return market

    def now(self) -> int:
        """Unix seconds of the simulated clock (wall clock unless ``epoch`` is set)."""
        if self.config.epoch is None:
            return int(time.time())
        return self.config.epoch + int(self._events_generated / (self.config.rate or VIRTUAL_RATE))

    # --- connection registry (used by the server) -------------------------------------

    def track_socket(self, sock: socket.socket, open_: bool) -> None:
        if open_:
            self._sockets.add(sock)
        else:
            self._sockets.discard(sock)

    def register(self, conn: WsConnection) -> None:
        self._connections.append(conn)
        self.stats.connections_accepted += 1
        self.tokens_seen.append(conn.token)

    def unregister(self, conn: WsConnection) -> None:
        if conn in self._connections:
            self._connections.remove(conn)
            self.stats.connections_closed += 1

    def open_connections(self) -> list[WsConnection]:
        return [conn for conn in self._connections if not conn.closing]

    def notify_subscribed(self) -> None:
        self._subscribed.set()

    # --- sending ---------------------------------------------------------------------

    def _deliver(self, channel: str, key: object, data: dict) -> None:
        frame = record = None
        for conn in self._connections:
            if conn.wants(channel, key):
                if frame is None:
                    frame = text_frame(event_payload(channel, data))
                    record = summarize_event(channel, data)
                conn.queue(frame, record)

    def push(
        self, channel: str, data: object, *, event_id: object = None, method: str | None = None
    ) -> int:
        """Send ``data`` as a ``<channel>_update`` event to every open connection
        subscribed to ``channel`` (whatever its markets), with the spec's id (0
        public, "3"/"4"/"1" for order/balance/deal) unless ``event_id`` is given.
        Returns the number of connections it was queued for."""
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}")
        frame = text_frame(event_payload(channel, data, event_id=event_id, method=method))
        record = summarize_event(channel, data, method)
        return sum(
            conn.queue(frame, record) for conn in self.open_connections() if channel in conn.subs
        )

    def push_raw(self, payload: bytes | str) -> int:
        """Send ``payload`` as one text frame to every open connection."""
        frame = text_frame(payload.encode() if isinstance(payload, str) else payload)
        return sum(conn.queue(frame, (None, None)) for conn in self.open_connections())

    def send_crossed_book(self, symbol: str) -> int:
        market = self.market(symbol)
        timestamp, sent = self.now(), 0
        for conn in self.open_connections():
            for index in range(SCALE_COUNT):
                if conn.wants("depth", (symbol, index)):
                    market.activate_scale(index)
                    data = market.crossing_update(index, timestamp)
                    frame = text_frame(event_payload("depth", data))
                    sent += conn.queue(frame, (DEPTH_UPDATE, None))
        return sent

    def blast(self, frames: Sequence[bytes], repeat: int = 1) -> int:
        """Write ``frames`` (JSON payloads, framed here once) ``repeat`` times, as
        fast as the sockets take them, to every connection with a subscription.
        Blocks until written; returns the number of frames written in total."""
        if not frames or repeat < 1:
            return 0
        encoded = b"".join(text_frame(frame) for frame in frames)
        per_chunk = max(1, BLAST_CHUNK_BYTES // len(encoded))
        times, rest = divmod(repeat, per_chunk)
        methods: Counter[str] = Counter()
        for frame in frames:
            try:
                method = orjson.loads(frame).get("method")
            except (orjson.JSONDecodeError, AttributeError):
                method = None
            methods[method if isinstance(method, str) else "raw"] += 1
        bulks = []
        for conn in self.open_connections():
            if conn.subs:
                bulk = Bulk(
                    encoded * per_chunk,
                    times,
                    encoded * rest,
                    len(frames) * per_chunk,
                    len(frames) * rest,
                )
                conn.queue_bulk(bulk)
                bulks.append(bulk)
        for bulk in bulks:
            bulk.done.wait()
        written = sum(bulk.frames_written for bulk in bulks)
        self.stats.blast_frames_sent += written
        self.stats.frames_sent += written
        complete_rounds = written // len(frames)
        for method, count in methods.items():
            self.stats.sent_by_method[method] += count * complete_rounds
        return written

    # --- generator --------------------------------------------------------------------

    def pause(self) -> None:
        """Stop generating events (the step in progress, if any, is complete)."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def _has_subscribers(self) -> bool:
        return any(conn.subs for conn in self._connections)

    def _generate(self) -> None:
        """Markets move only while somebody is subscribed, so a fresh simulator's
        first frames depend on the seed alone."""
        rate = self.config.rate
        deadline = time.monotonic()
        steps_since_yield = 0
        while True:
            self._running.wait()
            if not self._has_subscribers():
                self._subscribed.clear()
                self._subscribed.wait()
                deadline = time.monotonic()
                continue
            events = self.world.step(self.now())
            self._events_generated += len(events)
            for event in events:
                self._deliver(event.channel, event.key, event.data)
            self._apply_backpressure()
            if rate > 0:
                deadline += max(1, len(events)) / rate
                delay = deadline - time.monotonic()
                if delay > 0:
                    gevent.sleep(delay)
                    steps_since_yield = 0
                    continue
                if delay < -CATCH_UP_LIMIT:
                    deadline = time.monotonic()
            steps_since_yield += 1
            if steps_since_yield >= YIELD_EVERY:
                gevent.sleep(0)
                steps_since_yield = 0

    def _apply_backpressure(self) -> None:
        for conn in self._connections:
            if conn.pending_bytes > HIGH_WATERMARK and not conn.stalled:
                conn.stalled = not conn.wait_drained(STALL_TIMEOUT)

    def _sweep_idle(self) -> None:
        idle_timeout = self.config.idle_timeout
        interval = min(1.0, idle_timeout / 5)
        while True:
            gevent.sleep(interval)
            now = time.monotonic()
            for conn in list(self._connections):
                if not conn.closing and now - conn.last_request > idle_timeout:
                    self.stats.idle_closes += 1
                    conn.close(1000, "idle timeout")
