"""A loopback WebSocket endpoint that misbehaves during or right after the handshake.

The simulator is a faithful exchange; this is the broken proxy or load balancer in
front of one. REST (the token) still comes from the simulator; only ``ws_url``
points here. Every request target (it carries the one-time token) is recorded so
the secret tests can look for the tokens in the exporter's output.
"""

from __future__ import annotations

import contextlib
import socket
import struct

from gevent.server import StreamServer
from wsproto.utilities import generate_accept_token

MODES = ("reset_after_upgrade", "echo_401", "bad_status")
MAX_REQUEST_BYTES = 16 * 1024


class HostileWsServer:
    def __init__(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.mode = mode
        self.targets: list[str] = []
        self._server = StreamServer(("127.0.0.1", 0), self._handle)

    def __enter__(self) -> HostileWsServer:
        self._server.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.stop(timeout=1)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._server.server_port}/ws"

    def _handle(self, sock: socket.socket, _address) -> None:
        with contextlib.suppress(OSError):
            request = b""
            while b"\r\n\r\n" not in request and len(request) < MAX_REQUEST_BYTES:
                chunk = sock.recv(4096)
                if not chunk:
                    return
                request += chunk
            lines = request.decode("latin-1").split("\r\n")
            target = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else ""
            self.targets.append(target)
            headers = {name.lower(): value for name, _, value in
                       (line.partition(": ") for line in lines[1:] if ": " in line)}
            getattr(self, self.mode)(sock, target, headers)
        sock.close()

    @staticmethod
    def reset_after_upgrade(sock: socket.socket, _target: str, headers: dict) -> None:
        """A correct 101, then a TCP reset before any frame."""
        accept = generate_accept_token(headers.get("sec-websocket-key", "").encode())
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    @staticmethod
    def echo_401(sock: socket.socket, target: str, _headers: dict) -> None:
        """401 whose header and body echo the URL, token included (some gateways do)."""
        body = f"token rejected: {target}".encode()
        sock.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\n"
                     b"X-Rejected-Url: " + target.encode() + b"\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n"
                     b"Connection: close\r\n\r\n" + body)

    @staticmethod
    def bad_status(sock: socket.socket, target: str, _headers: dict) -> None:
        """A status line that is not HTTP, echoing the URL."""
        sock.sendall(f"HTTP/1.1 banana {target}\r\n\r\n".encode())
