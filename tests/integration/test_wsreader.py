"""The exporter's read loop (exporter/wsreader.py) against a real WebSocket server on loopback.

The server is a minimal one written here (gevent ``StreamServer``, optionally over TLS with a
self-signed certificate, and wsproto for the handshake and the frames it writes), so the
reader is tested over TLS without the simulator. Its first frames go out in the same write,
hence the same TLS record, as the handshake response: websocket-client reads the response
one byte at a time, so they wait decrypted inside the client's TLS layer (``pending()``)
when the reader starts.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

import gevent
import pytest
import websocket
from gevent.server import StreamServer
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    Ping,
    Pong,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError

from exporter import wsframes
from exporter.protocol import TOO_LARGE
from exporter.wsframes import Close, FrameError
from exporter.wsreader import FRAMES_PER_TURN, read_messages
from tests.support import make_self_signed
from tests.unit.test_wsframes import frame

TIMEOUT = 10  # seconds: a stuck reader or server fails the test instead of hanging it
Script = Callable[[WSConnection], list[bytes]]  # the writes the server makes after accepting


class Server:
    """Accepts one WebSocket, writes the script's bytes (the first write together with the
    handshake response), then records what the client sends until it closes."""

    def __init__(self, script: Script, tls: ssl.SSLContext | None = None,
                 end_with_eof: bool = False) -> None:
        self.script = script
        self.end_with_eof = end_with_eof
        self.pongs: list[bytes] = []
        self.client_close: int | None = None
        self.done = gevent.event.Event()
        kwargs = {"ssl_context": tls} if tls else {}
        self.server = StreamServer(("127.0.0.1", 0), self.handle, **kwargs)
        self.server.start()
        scheme = "wss" if tls else "ws"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_port}/ws"

    def handle(self, sock, _address) -> None:
        conn = WSConnection(ConnectionType.SERVER)
        try:
            while not any(isinstance(event, Request) for event in self._receive(sock, conn)):
                pass
            accept = conn.send(AcceptConnection())
            writes = self.script(conn)
            sock.sendall(accept + writes[0])
            for data in writes[1:]:
                sock.sendall(data)
            if self.end_with_eof:
                return
            while self.client_close is None:
                for event in self._receive(sock, conn):
                    if isinstance(event, Pong):
                        self.pongs.append(bytes(event.payload))
                    elif isinstance(event, CloseConnection):
                        self.client_close = event.code
        except (OSError, EOFError, LocalProtocolError):
            pass
        finally:
            sock.close()
            self.done.set()

    @staticmethod
    def _receive(sock, conn: WSConnection) -> list:
        data = sock.recv(65536)
        if not data:
            raise EOFError
        conn.receive_data(data)
        return list(conn.events())

    def stop(self) -> None:
        self.server.stop(timeout=1)


@pytest.fixture
def serve():
    servers: list[Server] = []

    def start(script: Script, **kwargs) -> Server:
        servers.append(Server(script, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    return make_self_signed(tmp_path_factory.mktemp("tls"))


def tls_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, certificate))
    return context


class Client:
    """websocket-client's handshake, then ``read_messages``; records what it is handed."""

    def __init__(self, url: str, ca: Path | None = None) -> None:
        sslopt = {"ca_certs": str(ca)} if ca else None
        self.ws = websocket.create_connection(url, timeout=TIMEOUT, sslopt=sslopt,
                                              skip_utf8_validation=True)
        self.messages: list[bytes] = []
        self.errors: list[tuple[str, str]] = []

    def read(self, max_message_bytes: int = 4 * 1024 * 1024, handle=None) -> Close:
        try:
            with gevent.Timeout(TIMEOUT):
                return read_messages(self.ws, handle or self.messages.append,
                                     lambda reason, detail: self.errors.append((reason, detail)),
                                     max_message_bytes=max_message_bytes)
        finally:
            self.ws.shutdown()


BIG = bytes(range(256)) * 4096  # 1 MiB: 64 TLS records
SMALL = [b'{"n":%d}' % n for n in range(2000)]


def busy_script(conn: WSConnection) -> list[bytes]:
    """Whole, large and fragmented messages, pings between fragments, then a close."""
    first = b"".join(conn.send(Message(data=data)) for data in SMALL[:20])
    fragmented = (conn.send(Message(data="frag", message_finished=False))
                  + conn.send(Ping(b"between fragments"))
                  + conn.send(Message(data="mented", message_finished=True)))
    rest = b"".join(conn.send(Message(data=data)) for data in SMALL[20:])
    return [first, conn.send(Message(data=BIG)), conn.send(Ping(b"p1")), fragmented,
            rest + conn.send(Message(data=BIG)),
            conn.send(CloseConnection(code=4000, reason="bye"))]


BUSY_MESSAGES = [*SMALL[:20], BIG, b"fragmented", *SMALL[20:], BIG]


def test_over_tls_every_message_ping_and_the_close_arrive_pending_data_included(
        serve, certificate):
    server = serve(busy_script, tls=tls_context(certificate))
    client = Client(server.url, ca=certificate[0])
    assert client.ws.sock.pending() > 0  # the first frames wait inside the TLS layer
    assert client.read() == Close(4000, "bye")
    assert client.messages == BUSY_MESSAGES
    assert server.done.wait(TIMEOUT)
    assert server.pongs == [b"p1", b"between fragments"]
    assert server.client_close == 4000  # the close is answered, its code echoed
    assert client.errors == []


def test_over_plain_tcp_the_same(serve):
    server = serve(busy_script)
    client = Client(server.url)
    assert client.read() == Close(4000, "bye")
    assert client.messages == BUSY_MESSAGES
    assert server.done.wait(TIMEOUT)
    assert server.pongs == [b"p1", b"between fragments"]
    assert server.client_close == 4000


def test_a_message_over_the_cap_is_counted_and_the_next_one_handled(serve):
    def script(conn: WSConnection) -> list[bytes]:
        return [conn.send(Message(data=BIG)), conn.send(Message(data=b"after"))
                + conn.send(CloseConnection(code=1000))]

    client = Client(serve(script).url)
    assert client.read(max_message_bytes=64 * 1024) == Close(1000, "")
    assert client.messages == [b"after"]
    assert client.errors == [(TOO_LARGE, f"{len(BIG)} bytes, dropped unread")]


def test_a_protocol_error_raises_its_reason_and_closes_with_1002(serve):
    def script(conn: WSConnection) -> list[bytes]:
        return [conn.send(Message(data=b"ok")) + frame(b"masked", mask=b"abcd")]

    server = serve(script)
    client = Client(server.url)
    with pytest.raises(FrameError) as raised:
        client.read()
    assert raised.value.reason == wsframes.MASKED_FRAME
    assert client.messages == [b"ok"]
    assert server.done.wait(TIMEOUT)
    assert server.client_close == wsframes.STATUS_PROTOCOL_ERROR


def test_a_socket_that_ends_without_a_close_frame_is_a_lost_connection(serve):
    def script(conn: WSConnection) -> list[bytes]:
        return [conn.send(Message(data=b"last"))]

    client = Client(serve(script, end_with_eof=True).url)
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        client.read()
    assert client.messages == [b"last"]


def test_the_event_loop_turns_at_least_every_batch_while_the_socket_is_saturated(serve):
    count = 20 * FRAMES_PER_TURN

    def script(conn: WSConnection) -> list[bytes]:
        data = b"".join(conn.send(TextMessage(data="x")) for _ in range(count))
        return [data, conn.send(CloseConnection(code=1000))]

    turns = 0

    def other_greenlet() -> None:  # woken by the event loop, as a greenlet waiting on I/O is
        nonlocal turns
        while True:
            turns += 1
            gevent.sleep(1e-6)

    seen: list[int] = []
    client = Client(serve(script).url)
    ticker = gevent.spawn(other_greenlet)
    try:
        client.read(handle=lambda _message: seen.append(turns))
    finally:
        ticker.kill()
    assert len(seen) == count
    runs: dict[int, int] = {}
    for value in seen:  # messages handled between two turns of the other greenlet
        runs[value] = runs.get(value, 0) + 1
    assert max(runs.values()) <= FRAMES_PER_TURN
    assert len(runs) >= count // FRAMES_PER_TURN
