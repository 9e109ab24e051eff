"""The open WebSocket connections and everything sent to more than one of them:
routed events, test pushes, raw frames, bulk blasts, idle closes and stop."""

from __future__ import annotations

import contextlib
import socket
import time
from collections import Counter
from collections.abc import Sequence

import gevent
import orjson

from .connection import CLOSE_GOING_AWAY, CLOSE_NORMAL, Bulk, WsConnection
from .stats import Stats, summarize_event
from .wire import CHANNELS, event_payload, text_frame

HIGH_WATERMARK = 1024 * 1024  # queued bytes above which a feed waits for a writer
STALL_TIMEOUT = 2.0  # a writer that does not drain within this stops holding the feed
BLAST_CHUNK_BYTES = 256 * 1024


class Hub:
    """Registry of accepted connections (and of raw sockets, so that ``close_all``
    also ends kept-alive REST connections)."""

    def __init__(self, stats: Stats) -> None:
        self._stats = stats
        self.connections: list[WsConnection] = []
        self.tokens_seen: list[str] = []
        self._sockets: set[socket.socket] = set()

    # --- registry -------------------------------------------------------------------

    def track_socket(self, sock: socket.socket, open_: bool) -> None:
        if open_:
            self._sockets.add(sock)
        else:
            self._sockets.discard(sock)

    def register(self, conn: WsConnection) -> None:
        self.connections.append(conn)
        self._stats.connections_accepted += 1
        self.tokens_seen.append(conn.token)

    def unregister(self, conn: WsConnection) -> None:
        if conn in self.connections:
            self.connections.remove(conn)
            self._stats.connections_closed += 1

    def open_connections(self) -> list[WsConnection]:
        return [conn for conn in self.connections if not conn.closing]

    def has_subscribers(self) -> bool:
        return any(conn.subs for conn in self.connections)

    def close_all(self) -> None:
        """Close frame 1001 on every WebSocket, then shut down every socket."""
        for conn in list(self.connections):
            conn.close(CLOSE_GOING_AWAY, "simulator stopping")
        gevent.sleep(0.01)
        for sock in list(self._sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def sweep_idle(self, idle_timeout: float) -> None:
        """Forever: close connections without a client request for ``idle_timeout``."""
        interval = min(1.0, idle_timeout / 5)
        while True:
            gevent.sleep(interval)
            now = time.monotonic()
            for conn in list(self.connections):
                if not conn.closing and now - conn.last_request > idle_timeout:
                    self._stats.idle_closes += 1
                    conn.close(CLOSE_NORMAL, "idle timeout")

    @staticmethod
    def wait_writable(conn: WsConnection) -> None:
        """Backpressure for a feed: wait while ``conn`` has much unsent data, but
        stop waiting for a writer that does not drain (it will be dropped)."""
        if conn.pending_bytes > HIGH_WATERMARK and not conn.stalled:
            conn.stalled = not conn.wait_drained(STALL_TIMEOUT)

    # --- sending --------------------------------------------------------------------

    def deliver(self, channel: str, key: object, data: dict) -> None:
        """One generated event to every connection subscribed to (channel, key)."""
        frame = record = None
        for conn in self.connections:
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
        self._stats.blast_frames_sent += written
        self._stats.frames_sent += written
        complete_rounds = written // len(frames)
        for method, count in methods.items():
            self._stats.sent_by_method[method] += count * complete_rounds
        return written
