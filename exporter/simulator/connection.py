"""One accepted WebSocket connection: a reader (the server's handler greenlet)
and a writer greenlet that sends queued frames in batches.

Frames are pre-encoded by the caller; the writer joins everything queued since
its last write into one ``sendall``. Incoming frames go through the ``wsproto``
state machine.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable

import gevent
import orjson
from gevent.event import Event
from wsproto.connection import Connection
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.utilities import LocalProtocolError

from .stats import Record, Stats
from .wire import ALL

READ_SIZE = 65536
MAX_REQUEST_BYTES = 1024 * 1024
CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_UNSUPPORTED, CLOSE_TOO_BIG = 1000, 1001, 1003, 1009
BULK_YIELD_EVERY = 8


class Bulk:
    """Pre-encoded bytes written ``times`` times (then ``tail`` once) by ``blast``."""

    def __init__(self, chunk: bytes, times: int, tail: bytes, chunk_frames: int, tail_frames: int):
        self.chunk, self.times, self.tail = chunk, times, tail
        self.chunk_frames, self.tail_frames = chunk_frames, tail_frames
        self.frames_written = 0
        self.done = Event()


class WsConnection:
    """``on_request(conn, message)`` receives every parsed client request;
    ``is_silent()`` true makes :meth:`queue` discard frames (the go_silent fault)."""

    def __init__(
        self,
        sock: socket.socket,
        ws: Connection,
        token: str,
        *,
        stats: Stats,
        max_buffer_bytes: int,
        is_silent: Callable[[], bool],
        on_request: Callable[[WsConnection, object], None],
    ) -> None:
        self.sock = sock
        self.ws = ws
        self.token = token
        self._stats = stats
        self._max_buffer_bytes = max_buffer_bytes
        self._is_silent = is_silent
        self._on_request = on_request
        # channel -> ALL, or an insertion-ordered dict of keys (deterministic order)
        self.subs: dict[str, object] = {}
        self.last_request = time.monotonic()
        self.pending_bytes = 0
        self.closing = False
        self.stalled = False
        self._out: list[bytes] = []
        self._records: list[Record] = []
        self._bulk: list[Bulk] = []
        self._message: list[str] = []
        self._message_size = 0
        self._wake = Event()
        self._drained = Event()
        self._drained.set()
        self._writer = gevent.spawn(self._write_loop)

    # --- subscriptions --------------------------------------------------------

    def wants(self, channel: str, key: object) -> bool:
        sub = self.subs.get(channel)
        return sub is not None and (sub == ALL or key in sub)  # type: ignore[operator]

    # --- sending --------------------------------------------------------------

    def queue(self, frame: bytes, record: Record | None = None) -> bool:
        """Queue one encoded frame; False if it was dropped (closing or silenced)."""
        if self.closing:
            return False
        if self._is_silent():
            self._stats.frames_suppressed += 1
            return False
        self._out.append(frame)
        self._drained.clear()
        if record is not None:
            self._records.append(record)
        self.pending_bytes += len(frame)
        if self.pending_bytes > self._max_buffer_bytes:
            self._stats.slow_consumer_drops += 1
            self.drop()
            return False
        self._wake.set()
        return True

    def queue_bulk(self, bulk: Bulk) -> None:
        if self.closing:
            bulk.done.set()
            return
        self._bulk.append(bulk)
        self._wake.set()

    def wait_drained(self, timeout: float) -> bool:
        if self._drained.wait(timeout):
            return True
        return self.closing

    def _write_loop(self) -> None:
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                while self._out or self._bulk:
                    if self._out:
                        out, records = self._out, self._records
                        self._out, self._records, self.pending_bytes = [], [], 0
                        self._drained.clear()
                        self.sock.sendall(out[0] if len(out) == 1 else b"".join(out))
                        self._stats.count_sent(records)
                        if not self._out:
                            self._drained.set()
                            self.stalled = False
                    if self._bulk:
                        self._write_bulk(self._bulk.pop(0))
                if self.closing:
                    break
        except OSError:
            pass
        finally:
            self.closing = True
            self._drained.set()
            for bulk in self._bulk:
                bulk.done.set()
            self._shutdown()

    def _write_bulk(self, bulk: Bulk) -> None:
        try:
            for number in range(bulk.times):
                self.sock.sendall(bulk.chunk)
                bulk.frames_written += bulk.chunk_frames
                if number % BULK_YIELD_EVERY == BULK_YIELD_EVERY - 1:
                    gevent.sleep(0)
            if bulk.tail:
                self.sock.sendall(bulk.tail)
                bulk.frames_written += bulk.tail_frames
        finally:
            bulk.done.set()

    # --- closing --------------------------------------------------------------

    def close(self, code: int, reason: str) -> None:
        """Send a close frame after everything queued, then shut the socket down."""
        if self.closing:
            return
        with contextlib.suppress(LocalProtocolError):  # the peer is already closing
            self._out.append(self.ws.send(CloseConnection(code=code, reason=reason)))
        self.closing = True
        self._wake.set()

    def drop(self) -> None:
        """Abrupt TCP close: no close frame, unsent frames are lost."""
        self.closing = True
        self._shutdown()
        self._writer.kill(block=False)

    def _shutdown(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    # --- receiving ------------------------------------------------------------

    def serve(self) -> None:
        """Read until the peer or we close; runs in the server's handler greenlet."""
        try:
            self._process_events()
            # Also after we decided to close: the writer flushes the close frame
            # and shuts the socket down, which ends this loop.
            while True:
                data = self.sock.recv(READ_SIZE)
                if not data:
                    break
                self.ws.receive_data(data)
                self._process_events()
        except (OSError, LocalProtocolError):
            pass
        finally:
            self.closing = True
            self._writer.kill(block=False)
            self._shutdown()

    def _process_events(self) -> None:
        for event in self.ws.events():
            if isinstance(event, TextMessage):
                self._on_text_part(event)
            elif isinstance(event, BytesMessage):
                self.close(CLOSE_UNSUPPORTED, "binary frames are not supported")
            elif isinstance(event, Ping):
                self.queue(self.ws.send(event.response()))
            elif isinstance(event, Pong):
                self._stats.pongs += 1
            elif isinstance(event, CloseConnection):
                self._on_close(event)

    def _on_close(self, event: CloseConnection) -> None:
        if not self.closing:
            with contextlib.suppress(LocalProtocolError):
                self._out.append(self.ws.send(event.response()))
            self.closing = True
        self._wake.set()

    def _on_text_part(self, event: TextMessage) -> None:
        if self.closing:
            return
        self._message.append(event.data)
        self._message_size += len(event.data)
        if self._message_size > MAX_REQUEST_BYTES:
            self.close(CLOSE_TOO_BIG, "request too large")
            return
        if not event.message_finished:
            return
        text = "".join(self._message)
        self._message, self._message_size = [], 0
        self.last_request = time.monotonic()
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            self._stats.invalid_json_closes += 1
            self.close(CLOSE_UNSUPPORTED, "invalid JSON")
            return
        self._on_request(self, message)
