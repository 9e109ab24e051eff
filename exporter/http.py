"""The exporter's HTTP server: the connections of the metrics port.

It runs on gevent's pywsgi in the same hub as the WebSocket greenlets and serves
the WSGI application of ``exporter.httpapp``, over TLS when the web config has it
(certificate files reloaded when they change).

The port cannot starve the exporter: every connection is admitted, timed and,
when needed, closed by a ``ConnectionGuard`` (``exporter.httpguard``: connection
and request limits, header, write and idle deadlines), whose connection limit is
capped by the open-files budget (``exporter.descriptors``). The TLS handshake runs
under the header deadline. Clients never cause a log line or traceback per
connection: what the guard does is counted on the exporter's metrics and
summarised in one rate-limited line.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import socket
import ssl
from typing import Any

import gevent
import gevent.socket
from gevent.pywsgi import WSGIHandler, WSGIServer

from exporter.descriptors import ACCEPT_HEADROOM, DescriptorBudget, http_connection_limit
from exporter.httpapp import WSGIApp, too_many_requests
from exporter.httpguard import REJECT_BAD_REQUEST, Connection, ConnectionGuard, HttpLimits
from exporter.settings import Settings
from exporter.webconfig import WebConfig

logger = logging.getLogger(__name__)

# Connections waiting in the kernel's accept queue hold none of our descriptors; a
# deep queue spares a scraper SYN retransmissions (1 s, then 3 s) during a flood.
LISTEN_BACKLOG = 1024
# Beyond the guard's deadlines, a per-operation socket timeout as a last resort.
BACKSTOP_SLACK_SECONDS = 5.0
# accept() failing for lack of descriptors or memory: pause accepting this long.
ACCEPT_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
ACCEPT_TRANSIENT = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})
ACCEPT_PAUSE_SECONDS = 0.1

_LISTEN_ADDRESS = re.compile(r"(?:\[(?P<ipv6>[^\]]*)\]|(?P<host>[^:\[\]]*)):(?P<port>[0-9]{1,5})")


def parse_listen_address(value: str) -> tuple[str, int]:
    """Split a Prometheus-style listen address into (host, port).

    ``":9841"`` -> ``("", 9841)`` (all interfaces), ``"127.0.0.1:9841"``,
    ``"[::1]:9841"`` -> ``("::1", 9841)``, ``"localhost:0"`` (0: any free port).
    """
    match = _LISTEN_ADDRESS.fullmatch(value)
    if match is None:
        raise ValueError(
            f"listen address {value!r}: expected [host]:port, e.g. ':9841', "
            "'127.0.0.1:9841' or '[::1]:9841' (IPv6 addresses go in brackets)"
        )
    port = int(match["port"])
    if port > 65535:
        raise ValueError(f"listen address {value!r}: port {port} is above 65535")
    if match["ipv6"] is not None:
        if not match["ipv6"]:
            raise ValueError(f"listen address {value!r}: empty IPv6 address in brackets")
        return match["ipv6"], port
    return match["host"], port


class _CertificateReloader:
    """Hands out an SSL context, rebuilt when the certificate files change.

    cert-manager and Kubernetes Secrets rotate certificates in place; like
    exporter-toolkit, new connections pick up the new files without a restart.
    A broken new file is logged and the previous context kept.
    """

    def __init__(self, web_config: WebConfig) -> None:
        self._web_config = web_config
        self._signature = self._files_signature()
        context = web_config.ssl_context()
        if context is None:
            raise ValueError("web config has no TLS settings")
        self._context = context

    def _files_signature(self) -> tuple[tuple[int, int, int], ...]:
        signature = []
        for path in self._web_config.tls_files():
            try:
                stat = os.stat(path)
            except OSError:
                signature.append((0, 0, 0))
            else:
                signature.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
        return tuple(signature)

    def current(self) -> ssl.SSLContext:
        signature = self._files_signature()
        if signature != self._signature:
            self._signature = signature
            try:
                context = self._web_config.ssl_context()
            except Exception as error:
                logger.warning("keeping the previous TLS certificate: reloading failed: %s", error)
            else:
                if context is not None:
                    self._context = context
                    logger.info("reloaded the TLS certificate files")
        return self._context


class _GuardedHandler(WSGIHandler):
    """pywsgi's handler, reporting each phase to the guard and quiet about clients.

    Nothing a client does produces a traceback or a log line per connection:
    malformed requests are counted (``bad_request``) and logged at debug level;
    sockets the guard closed, or the client reset, end the connection silently.
    """

    connection: Connection
    server: _ExporterServer

    def read_request(self, raw_requestline: str) -> bool:
        if self.connection.closing:
            raise _ClosedByGuard
        parsed = super().read_request(raw_requestline)
        if self.connection.closing:  # the headers "ended" because the guard closed the socket
            raise _ClosedByGuard
        self.server.guard.headers_done(self.connection)
        return parsed

    def handle_one_request(self) -> Any:
        result = super().handle_one_request()
        if result is True:
            self.server.guard.request_done(self.connection)
        return result

    def handle_one_response(self) -> None:
        guard = self.server.guard
        if not guard.begin_request():
            self.application = too_many_requests(guard.limits.max_requests)
            super().handle_one_response()
            return
        try:
            super().handle_one_response()
        finally:
            guard.end_request()

    def _handle_client_error(self, ex: BaseException) -> Any:
        if isinstance(ex, _ClosedByGuard) or self.connection.closing:
            return None
        if isinstance(ex, OSError):  # the client went away mid-request
            return None
        self.server.guard.rejected(REJECT_BAD_REQUEST)
        logger.debug("bad request from %s: %s", self.client_address, type(ex).__name__)
        return ("400", BAD_REQUEST_RESPONSE)

    def handle_error(self, t: Any, v: Any, tb: Any) -> None:
        if self.connection.closing or isinstance(v, OSError):
            self.close_connection = True
            return
        super().handle_error(t, v, tb)

    def handle(self) -> None:
        try:
            super().handle()
        except OSError as error:  # e.g. the 400 answer to a client that already left
            logger.debug("connection from %s ended: %s", self.client_address, error)


class _ClosedByGuard(ValueError):
    """The guard closed the connection while its request was being read."""


BAD_REQUEST_RESPONSE = (b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
                        b"Content-Length: 0\r\n\r\n")


def _shutdown(sock: Any) -> None:
    """Wake whatever greenlet waits on *sock* and end the TCP connection.

    gevent's own socket shutdown (not SSLSocket's, which would drop the TLS state
    under a greenlet still using it): a greenlet blocked on the socket gets an
    error at once; its handler then closes the descriptor.
    """
    with contextlib.suppress(OSError):
        gevent.socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _ExporterServer(WSGIServer):
    """pywsgi under the connection guard: limits, deadlines, quiet failures, cert reload.

    Connections are admitted (or refused) at accept time, so the TLS handshake is
    inside the header deadline. A greenlet checks the deadlines every
    ``limits.tick`` seconds and writes the rate-limited summary line.
    """

    handler_class = _GuardedHandler
    # Accept a few connections per loop iteration: a connection closed to make room
    # gives its descriptor back when its greenlet next runs, so this bounds how far
    # the descriptors in use can run past the limit.
    max_accept = ACCEPT_HEADROOM
    certificates: _CertificateReloader | None = None
    guard: ConnectionGuard
    _deadline_watch: gevent.Greenlet | None = None

    def start(self) -> None:
        super().start()
        self._deadline_watch = gevent.spawn(self._watch)

    def stop(self, timeout: float | None = None) -> None:
        if self._deadline_watch is not None:
            self._deadline_watch.kill()
            self._deadline_watch = None
        super().stop(timeout)
        self.guard.close_all()

    def _watch(self) -> None:
        while True:
            gevent.sleep(self.guard.limits.tick)
            self.guard.expire()
            line = self.guard.report()
            if line is not None:
                logger.warning("%s", line)

    def do_read(self) -> Any:
        try:
            return super().do_read()
        except OSError as error:
            if error.errno in ACCEPT_OUT_OF_RESOURCES:
                # Out of descriptors (or memory): count it and pause accepting, instead
                # of gevent's traceback per failed accept and a busy loop.
                self.guard.refused_for_descriptors()
                self.stop_accepting()
                gevent.spawn_later(ACCEPT_PAUSE_SECONDS, self._resume_accepting)
                return None
            if error.errno in ACCEPT_TRANSIENT:  # the client gave up before accept
                return None
            raise

    def _resume_accepting(self) -> None:
        if self.started:
            self.start_accepting()

    def do_handle(self, sock: Any, address: Any) -> None:
        connection = self.guard.admit(sock)
        if connection is None:
            with contextlib.suppress(OSError):
                sock.close()
            return
        gevent.spawn(self._serve, sock, address, connection)

    def _serve(self, sock: Any, address: Any, connection: Connection) -> None:
        # A backstop only: the guard's deadlines close the connection much earlier.
        sock.settimeout(self.guard.limits.tick + max(
            self.guard.limits.read_header_timeout, self.guard.limits.write_timeout,
            self.guard.limits.idle_timeout) + BACKSTOP_SLACK_SECONDS)
        # A response goes out in two writes (headers, body): without NODELAY a kept-alive
        # client's delayed ACK holds the body back by about 40 ms.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        served = sock
        try:
            if self.certificates is not None:
                served = self._handshake(sock, address, connection)
            if served is not None and not connection.closing:
                handler = self.handler_class(served, address, self)
                handler.connection = connection
                handler.handle()
        finally:
            self.guard.release(connection)
            for opened in {id(sock): sock, id(served): served}.values():
                if opened is not None:
                    with contextlib.suppress(OSError):
                        opened.close()

    def _handshake(self, sock: Any, address: Any, connection: Connection) -> Any:
        assert self.certificates is not None
        try:
            tls_socket = self.certificates.current().wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False)
        except (ssl.SSLError, OSError) as error:
            logger.debug("TLS set-up for %s failed: %s", address, error)
            return None
        connection.sock = tls_socket  # the guard closes this one from now on
        try:
            tls_socket.do_handshake()
        except (ssl.SSLError, OSError) as error:
            # Scanners, plain-HTTP clients, clients without a valid certificate, and
            # handshakes the guard cut off: not worth a traceback per connection.
            logger.debug("TLS handshake with %s failed: %s", address, error)
            tls_socket.close()
            return None
        return tls_socket


def _bound_socket(family: int, address: tuple[Any, ...], dualstack: bool = False) -> Any:
    # gevent's socket, so accept() never blocks the hub even without monkey-patching.
    sock = gevent.socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dualstack else 1)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def _listener(listen_address: str) -> Any:
    host, port = parse_listen_address(listen_address)
    if not host:
        # ":port" means every interface, IPv6 included where the host has it (as in Go).
        if socket.has_dualstack_ipv6():
            return _bound_socket(socket.AF_INET6, ("::", port), dualstack=True)
        return _bound_socket(socket.AF_INET, ("0.0.0.0", port))  # noqa: S104 - all interfaces
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as error:
        raise ValueError(f"listen address {listen_address!r}: {error.strerror}") from None
    return _bound_socket(family, address)


def http_limits(settings: Settings, budget: DescriptorBudget) -> HttpLimits:
    """The limits from the options, the connection limit capped by the descriptor budget."""
    limits = HttpLimits(
        max_requests=settings.web_max_requests,
        max_connections=http_connection_limit(settings.web_max_connections, budget),
        read_header_timeout=settings.web_read_header_timeout,
        write_timeout=settings.web_write_timeout,
        idle_timeout=settings.web_idle_timeout,
    )
    logger.info("HTTP limits: %d connections (open-files limit %d, %d in use, %d reserved for "
                "the exchange), %s requests at once", limits.max_connections, budget.soft_limit,
                budget.in_use, budget.reserve, limits.max_requests or "unlimited")
    return limits


def make_guard(limits: HttpLimits | None = None) -> ConnectionGuard:
    """The connection guard a server and its app share (its counts are exposed by
    ``collectors.HttpCollector``)."""
    return ConnectionGuard(limits or HttpLimits(), _shutdown)


def make_server(
    listen_address: str,
    app: WSGIApp,
    web_config: WebConfig | None = None,
    *,
    guard: ConnectionGuard | None = None,
) -> WSGIServer:
    """A pywsgi server bound to *listen_address*, not yet started.

    The socket is bound here, so a busy port fails now and ``server.address``
    already holds the real port when ``:0`` was asked for. Serves HTTPS when the
    web config has TLS. No per-request access log. *guard* (see ``make_guard``)
    holds the limits; the default one has the default limits and no metrics.
    """
    listener = _listener(listen_address)
    try:
        if web_config is not None and web_config.tls_enabled:
            certificates = _CertificateReloader(web_config)
            # ssl_context only marks the environ as HTTPS: _serve does the handshakes.
            server = _ExporterServer(listener, app, log=None, error_log=logger,
                                     ssl_context=certificates.current())
            server.certificates = certificates
        else:
            server = _ExporterServer(listener, app, log=None, error_log=logger)
        server.guard = guard if guard is not None else make_guard()
    except BaseException:
        listener.close()
        raise
    return server
