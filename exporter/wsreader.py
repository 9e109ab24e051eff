"""The read side of a WebSocket: websocket-client's connected socket, read in large chunks.

websocket-client does the opening handshake (TLS, proxies, headers) and every send
(pongs, closes, requests); its ``recv_frame`` reads each frame with two or three small
socket reads, each a trip through the gevent hub. ``read_messages`` instead takes up to
``CHUNK_BYTES`` per ``recv`` from ``ws.sock`` and cuts the frames out with
``wsframes.FrameDecoder``.

Nothing is lost at the switch: websocket-client 1.9.2 (checked in ``_handshake.py`` and
``_http.read_headers``) reads the handshake response one byte at a time
(``_socket.recv_line``), so it has read nothing past the headers, and its own frame buffer
is only filled by its ``recv*`` calls, which the exporter never makes. Over TLS, bytes
the server sent right after the response may already sit decrypted inside the TLS layer
(``SSLSocket.pending()``), where the kernel socket does not show them as readable: the
first ``recv`` returns them (gevent's ``SSLSocket.recv`` reads the TLS layer before it
waits on the socket), and after every ``recv`` whatever is still pending is taken too.
An ``SSLSocket`` returns at most one TLS record (16 KiB) per ``recv``; that is one chunk.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import gevent
import websocket

from .protocol import TOO_LARGE
from .wsframes import (
    STATUS_NORMAL,
    STATUS_PROTOCOL_ERROR,
    Binary,
    Close,
    FrameDecoder,
    FrameError,
    Ping,
    TooLarge,
)

CHUNK_BYTES = 256 * 1024
# Frames decoded and handled between two yields to the hub: about 2 ms of the exporter's work
# on market data, so /metrics and the keepalive get a turn while the socket is saturated
# (a scrape needs a few turns: 512 frames a turn doubled its median while saturated).
FRAMES_PER_TURN = 256
# How the reader yields: a sleep > 0 resumes it only in the next turn of the event loop,
# after the loop has polled for I/O. ``gevent.sleep(0)`` only queues it behind the other
# callbacks, and gevent runs callbacks queued meanwhile (50 at least, for 5 ms) before it
# polls (gevent 26.9, ``_ffi/loop.py``): a reader that always has data then ran 50 batches
# in a row, and /metrics waited 0.3-0.7 s.
YIELD_SECONDS = 1e-6


def read_messages(
    ws: websocket.WebSocket,
    handle: Callable[[bytes], None],
    count_error: Callable[[str, str], None],
    *,
    max_message_bytes: int,
) -> Close:
    """Hand every message to ``handle`` until the server closes the connection; return its
    close frame, after answering it.

    Pings are answered with a pong carrying their payload; a message over
    ``max_message_bytes`` is dropped unbuffered and counted under ``too_large`` with
    ``count_error(reason, detail)``. Raises ``FrameError`` when the server breaks
    RFC 6455 (after sending it a close with status 1002),
    ``WebSocketConnectionClosedException`` when the socket ends without a close frame,
    ``OSError`` from the socket.
    """
    sock = ws.sock
    recv_into = sock.recv_into
    pending = getattr(sock, "pending", None)  # an SSLSocket's decrypted, unread bytes
    # One buffer for every read: recv(CHUNK_BYTES) would allocate 256 KiB a call and shrink
    # it to what came, which fragmented the heap (RSS grew ~10 MiB in a 60 s soak).
    buffer = memoryview(bytearray(CHUNK_BYTES))
    decoder = FrameDecoder(max_message_bytes)
    feed, events = decoder.feed, decoder.events
    try:
        while True:
            received = recv_into(buffer)
            if not received:
                raise websocket.WebSocketConnectionClosedException(
                    "the server closed the socket without a close frame")
            feed(buffer[:received])
            while pending is not None and pending():
                feed(buffer[:recv_into(buffer, min(pending(), CHUNK_BYTES))])
            while decoder.ready:
                for event in events(FRAMES_PER_TURN):
                    if type(event) is bytes:  # a text message: nearly every frame
                        handle(event)
                    elif type(event) is Close:
                        _send_quietly(ws.send_close, event.code or STATUS_NORMAL)
                        return event
                    else:
                        _control(ws, event, handle, count_error)
                gevent.sleep(YIELD_SECONDS)
    except FrameError:
        _send_quietly(ws.send_close, STATUS_PROTOCOL_ERROR)
        raise


def _control(ws: websocket.WebSocket, event: object, handle: Callable[[bytes], None],
             count_error: Callable[[str, str], None]) -> None:
    """Every event but a text message or a close (a pong needs nothing)."""
    if type(event) is Ping:
        ws.pong(event.payload)
    elif type(event) is Binary:
        handle(event.payload)
    elif type(event) is TooLarge:
        count_error(TOO_LARGE, f"{event.size} bytes, dropped unread")


def _send_quietly(send: Callable[[int], None], status: int) -> None:
    """A close to a server that may already be gone: the connection ends either way."""
    with contextlib.suppress(OSError, websocket.WebSocketException):
        send(status)
