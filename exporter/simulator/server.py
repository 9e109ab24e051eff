"""HTTP/1.1 on a gevent ``StreamServer``: REST requests (keep-alive, parsed with
h11) and the WebSocket upgrade at ``/ws`` (then handed to ``WsConnection``),
optionally inside TLS.

A bad, expired or already used token is rejected on the upgrade itself with
HTTP 401 and a JSON body; a ``refuse_connections`` fault answers the upgrade
with its HTTP status or resets the TCP connection.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from urllib.parse import parse_qs

import h11
from gevent import ssl
from wsproto.connection import Connection, ConnectionType
from wsproto.utilities import generate_accept_token

from .connection import READ_SIZE, WsConnection
from .faults import Faults
from .hub import Hub
from .replies import Reply, error_reply, html_error
from .rest import TokenStore
from .stats import Stats

# (method, target, headers with lower-case names, body, peer host) -> reply
Route = Callable[[str, str, dict[str, str], bytes, str], Reply]
# (socket, wsproto connection, token) -> a connection ready to serve
OpenConnection = Callable[[socket.socket, Connection, str], WsConnection]

WS_PATH = "/ws"
MAX_BODY_BYTES = 1024 * 1024
SERVER_NAME = b"cryptomus-simulator"


def _send_reply(
    conn: h11.Connection, sock: socket.socket, reply: Reply, close: bool = False
) -> None:
    headers = [
        (b"content-type", reply.content_type.encode()),
        (b"content-length", str(len(reply.body)).encode()),
        (b"server", SERVER_NAME),
        *((name.encode(), value.encode()) for name, value in reply.headers),
    ]
    if close:
        headers.append((b"connection", b"close"))
    data = conn.send(h11.Response(status_code=reply.status, headers=headers))
    data += conn.send(h11.Data(data=reply.body)) + conn.send(h11.EndOfMessage())
    sock.sendall(data)


def _read_request(conn: h11.Connection, sock: socket.socket) -> tuple[h11.Request | None, bytes]:
    request, body, size = None, [], 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(sock.recv(READ_SIZE))
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body.append(event.data)
            size += len(event.data)
            if size > MAX_BODY_BYTES:
                raise h11.RemoteProtocolError("request body too large")
        elif isinstance(event, h11.EndOfMessage):
            return request, b"".join(body)
        else:  # ConnectionClosed or PAUSED
            return None, b""


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def server_ssl_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A TLS server context (gevent's, so handshakes never block the hub)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert_file, key_file)
    except OSError as error:  # ssl.SSLError included
        message = f"tls_cert/tls_key: cannot load {cert_file} with {key_file}: {error}"
        raise ValueError(message) from None
    return context


class HttpHandler:
    """The ``StreamServer`` handle: one greenlet per accepted socket."""

    def __init__(
        self,
        *,
        route: Route,
        faults: Faults,
        tokens: TokenStore,
        hub: Hub,
        stats: Stats,
        open_connection: OpenConnection,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._route = route
        self._faults = faults
        self._tokens = tokens
        self._hub = hub
        self._stats = stats
        self._open_connection = open_connection
        self._ssl_context = ssl_context

    def __call__(self, sock: socket.socket, address: tuple) -> None:
        self._hub.track_socket(sock, True)
        try:
            if self._ssl_context is not None:
                sock = self._wrap(sock, self._ssl_context)
                sock.do_handshake()
            self._serve(sock, address[0])
        except (OSError, h11.ProtocolError):  # ssl.SSLError is an OSError
            pass
        finally:
            self._hub.track_socket(sock, False)
            sock.close()

    def _wrap(self, sock: socket.socket, context: ssl.SSLContext) -> ssl.SSLSocket:
        """TLS around ``sock`` (handshake not done yet); the wrapped socket replaces
        it in the hub's registry, as wrapping detaches the plain one."""
        wrapped = context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        )
        self._hub.track_socket(sock, False)
        self._hub.track_socket(wrapped, True)
        return wrapped

    def _serve(self, sock: socket.socket, peer_host: str) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        while True:
            try:
                request, body = _read_request(conn, sock)
            except h11.RemoteProtocolError:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    _send_reply(conn, sock, error_reply(400, "bad request"), close=True)
                return
            if request is None:
                return
            headers = {
                name.decode("latin-1"): value.decode("latin-1") for name, value in request.headers
            }
            target = request.target.decode("latin-1")
            method = request.method.decode("latin-1")
            if target.partition("?")[0] == WS_PATH:
                self._upgrade(conn, sock, method, target, headers)
                return
            reply = self._route(method, target, headers, body, peer_host)
            _send_reply(conn, sock, reply)
            if conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()

    def _upgrade(
        self,
        conn: h11.Connection,
        sock: socket.socket,
        method: str,
        target: str,
        headers: dict[str, str],
    ) -> None:
        key = headers.get("sec-websocket-key", "")
        is_upgrade = (
            method == "GET"
            and "websocket" in headers.get("upgrade", "").lower()
            and "upgrade" in headers.get("connection", "").lower()
            and key
        )
        if not is_upgrade or headers.get("sec-websocket-version") != "13":
            _send_reply(conn, sock, error_reply(426, "websocket upgrade required"), close=True)
            return
        faults = self._faults
        if faults.refusing:
            self._stats.connections_rejected += 1
            if faults.refuse_mode == "reset":
                _reset(sock)
            else:
                _send_reply(conn, sock, html_error(faults.refuse_status), close=True)
            return
        token = (parse_qs(target.partition("?")[2]).get("token") or [""])[0]
        if not self._tokens.consume(token):
            self._stats.connections_rejected += 1
            _send_reply(conn, sock, error_reply(401, "invalid, expired or used token"), close=True)
            return
        accept = generate_accept_token(key.encode())
        response = h11.InformationalResponse(
            status_code=101,
            headers=[
                (b"upgrade", b"websocket"),
                (b"connection", b"Upgrade"),
                (b"sec-websocket-accept", accept),
            ],
        )
        sock.sendall(conn.send(response))
        trailing, _ = conn.trailing_data
        ws = self._open_connection(
            sock, Connection(ConnectionType.SERVER, trailing_data=trailing), token
        )
        self._hub.register(ws)
        try:
            ws.serve()
        finally:
            self._hub.unregister(ws)
