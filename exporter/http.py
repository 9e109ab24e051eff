"""The exporter's HTTP endpoint: /metrics, /healthz, /readyz and a landing page.

It runs on gevent's pywsgi in the same hub as the WebSocket greenlets.

Routes (GET and HEAD only; other methods get 405, other paths 404):

- ``/metrics``: what prometheus-client's WSGI app serves (content negotiation,
  OpenMetrics, gzip, ``name[]`` filtering), rendered by ``exporter.exposition``.
- ``/healthz``: liveness, 200 or 503 with the reason as text.
- ``/readyz``: readiness, 200 or 503 with the reason as text.
- ``/``: a small HTML page with the version and links.

With basic auth configured in the web config, every route needs credentials
*except* ``/healthz`` and ``/readyz``: exporter-toolkit protects everything, but
Kubernetes probes cannot send credentials easily and the probes reveal nothing
beyond "up" or "not ready, because...". Unknown paths answer 401 before 404, so
an unauthenticated client learns nothing about the routes. Credentials and the
Authorization header are never logged; the header is removed from the request
environment once checked.

The port cannot starve the exporter: every connection is admitted, timed and,
when needed, closed by a ``ConnectionGuard`` (``exporter.httpguard``: connection
and request limits, header, write and idle deadlines), whose connection limit is
capped by the open-files budget (``exporter.descriptors``). Clients never cause a
log line or traceback per connection: what the guard does is counted on the
exporter's metrics and summarised in one rate-limited line.
"""

from __future__ import annotations

import contextlib
import errno
import html
import logging
import os
import re
import socket
import ssl
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qs

import gevent
import gevent.lock
import gevent.socket
from gevent.pywsgi import WSGIHandler, WSGIServer
from prometheus_client import CollectorRegistry

from exporter.descriptors import ACCEPT_HEADROOM, DescriptorBudget, http_connection_limit
from exporter.exposition import Exposition, metrics_response
from exporter.httpguard import (
    REJECT_AUTH_QUEUE,
    REJECT_BAD_REQUEST,
    Connection,
    ConnectionGuard,
    HttpLimits,
)
from exporter.settings import Settings
from exporter.webconfig import WebConfig

logger = logging.getLogger(__name__)

T = TypeVar("T")

NAME = "cryptomus-exporter"
REALM = NAME
PROBE_PATHS = frozenset({"/healthz", "/readyz"})
ALLOWED_METHODS = ("GET", "HEAD")
# Connections waiting in the kernel's accept queue hold none of our descriptors; a
# deep queue spares a scraper SYN retransmissions (1 s, then 3 s) during a flood.
LISTEN_BACKLOG = 1024
# Beyond the guard's deadlines, a per-operation socket timeout as a last resort.
BACKSTOP_SLACK_SECONDS = 5.0
# accept() failing for lack of descriptors or memory: pause accepting this long.
ACCEPT_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
ACCEPT_TRANSIENT = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})
ACCEPT_PAUSE_SECONDS = 0.1

Response = tuple[str, list[tuple[str, str]], bytes]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_LISTEN_ADDRESS = re.compile(r"(?:\[(?P<ipv6>[^\]]*)\]|(?P<host>[^:\[\]]*)):(?P<port>[0-9]{1,5})")


class HealthLike(Protocol):
    def live(self) -> tuple[bool, str]: ...

    def ready(self) -> tuple[bool, str]: ...


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


def _text(status: str, text: str) -> Response:
    body = f"{text}\n".encode()
    return status, [("Content-Type", "text/plain; charset=utf-8")], body


def _probe(check: Callable[[], tuple[bool, str]]) -> Response:
    ok, reason = check()
    if ok:
        return _text("200 OK", reason or "ok")
    return _text("503 Service Unavailable", reason or "unavailable")


def _index_page(version: str) -> Response:
    links = "".join(
        f'<li><a href="{path}">{path}</a></li>' for path in ("/metrics", "/healthz", "/readyz")
    )
    page = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{NAME}</title></head>\n<body><h1>{NAME}</h1>\n"
        f"<p>Prometheus exporter for the Cryptomus exchange, version {html.escape(version)}.</p>\n"
        f"<ul>{links}</ul>\n</body></html>\n"
    )
    return "200 OK", [("Content-Type", "text/html; charset=utf-8")], page.encode()


def _metrics_route(registry: CollectorRegistry) -> Callable[[dict[str, Any]], Response]:
    exposition = Exposition()

    def metrics(environ: dict[str, Any]) -> Response:
        names = parse_qs(environ.get("QUERY_STRING", "")).get("name[]")
        headers, body = metrics_response(exposition, registry, environ.get("HTTP_ACCEPT"),
                                         environ.get("HTTP_ACCEPT_ENCODING"), names)
        return "200 OK", headers, body

    return metrics


class AuthQueueFull(Exception):
    """Too many basic-auth checks are already waiting for bcrypt."""


def _bcrypt_off_hub(max_waiting: int = HttpLimits.max_auth_queue) -> Callable[..., Any]:
    """Run bcrypt on gevent's thread pool, one at a time, with a bounded queue.

    bcrypt takes 50-250 ms and releases the GIL: on a thread the hub (and the
    WebSocket reader) keeps running; one at a time, like exporter-toolkit, so a
    password-guessing client costs at most one core. With *max_waiting* checks
    already queued behind the running one, the next raises AuthQueueFull at once
    (the request gets a 503) instead of queueing without bound.
    """
    one_at_a_time = gevent.lock.BoundedSemaphore(1)
    pending = 0

    def run(function: Callable[..., T], *args: Any) -> T:
        nonlocal pending
        if pending > max_waiting:
            raise AuthQueueFull
        pending += 1
        try:
            with one_at_a_time:
                return gevent.get_hub().threadpool.apply(function, args)
        finally:
            pending -= 1

    return run


def make_app(
    registry: CollectorRegistry,
    health: HealthLike,
    web_config: WebConfig | None = None,
    *,
    version: str,
    guard: ConnectionGuard | None = None,
) -> WSGIApp:
    """The exporter's WSGI application (see the module docstring for the routes).

    *guard* (the server's) bounds the bcrypt queue and counts what it rejects.
    """
    index = _index_page(version)
    routes: dict[str, Callable[[dict[str, Any]], Response]] = {
        "/": lambda environ: index,
        "/metrics": _metrics_route(registry),
        "/healthz": lambda environ: _probe(health.live),
        "/readyz": lambda environ: _probe(health.ready),
    }
    extra_headers = list(web_config.headers.items()) if web_config else []
    auth_enabled = web_config is not None and web_config.auth_enabled
    run_bcrypt = _bcrypt_off_hub(guard.limits.max_auth_queue if guard is not None else
                                 HttpLimits.max_auth_queue)

    def authorized(authorization: str | None) -> bool:
        return web_config is None or web_config.check_basic_auth(
            authorization, run_blocking=run_bcrypt
        )

    def respond(environ: dict[str, Any]) -> Response:
        path = environ.get("PATH_INFO") or "/"
        authorization = environ.pop("HTTP_AUTHORIZATION", None)
        try:
            denied = auth_enabled and path not in PROBE_PATHS and not authorized(authorization)
        except AuthQueueFull:
            if guard is not None:
                guard.rejected(REJECT_AUTH_QUEUE)
            status, headers, body = _text("503 Service Unavailable",
                                          "Too many authentication attempts, try again later.")
            headers.append(("Retry-After", "1"))
            return status, headers, body
        if denied:
            status, headers, body = _text("401 Unauthorized", "Unauthorized")
            headers.append(("WWW-Authenticate", f'Basic realm="{REALM}"'))
            return status, headers, body
        route = routes.get(path)
        if route is None:
            return _text("404 Not Found", "Not Found")
        if environ["REQUEST_METHOD"] not in ALLOWED_METHODS:
            status, headers, body = _text("405 Method Not Allowed", "Method Not Allowed")
            headers.append(("Allow", ", ".join(ALLOWED_METHODS)))
            return status, headers, body
        return route(environ)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        try:
            status, headers, body = respond(environ)
        except Exception:
            # Only method and path: the environ holds headers that must not be logged.
            logger.exception(
                "internal error serving %s %s",
                environ.get("REQUEST_METHOD"),
                environ.get("PATH_INFO"),
            )
            status, headers, body = _text("500 Internal Server Error", "Internal Server Error")
        response_headers = [*headers, *extra_headers]
        if not any(name.lower() == "content-length" for name, _ in headers):
            response_headers.append(("Content-Length", str(len(body))))
        start_response(status, response_headers)
        return [b""] if environ["REQUEST_METHOD"] == "HEAD" else [body]

    return app


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
            self.application = _too_many_requests(guard.limits.max_requests)
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


def _too_many_requests(limit: int) -> WSGIApp:
    body = f"Too many concurrent requests (limit {limit}), try again later.\n".encode()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("503 Service Unavailable", [
            ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
            ("Retry-After", "1")])
        return [b""] if environ["REQUEST_METHOD"] == "HEAD" else [body]

    return app


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
