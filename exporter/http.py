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
"""

from __future__ import annotations

import contextlib
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
from gevent.pywsgi import WSGIServer
from prometheus_client import CollectorRegistry

from exporter.exposition import Exposition, metrics_response
from exporter.webconfig import WebConfig

logger = logging.getLogger(__name__)

T = TypeVar("T")

NAME = "cryptomus-exporter"
REALM = NAME
PROBE_PATHS = frozenset({"/healthz", "/readyz"})
ALLOWED_METHODS = ("GET", "HEAD")
# Closes idle keep-alive connections and stalled clients (a TLS handshake or a
# request that never completes), so they cannot pile up. Prometheus reconnects.
CONNECTION_TIMEOUT_SECONDS = 60.0
LISTEN_BACKLOG = 128

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


def _bcrypt_off_hub() -> Callable[..., Any]:
    """Run bcrypt on gevent's thread pool, one at a time.

    bcrypt takes 50-250 ms and releases the GIL: on a thread the hub (and the
    WebSocket reader) keeps running; one at a time, like exporter-toolkit, so a
    password-guessing client costs at most one core.
    """
    one_at_a_time = gevent.lock.BoundedSemaphore(1)

    def run(function: Callable[..., T], *args: Any) -> T:
        with one_at_a_time:
            return gevent.get_hub().threadpool.apply(function, args)

    return run


def make_app(
    registry: CollectorRegistry,
    health: HealthLike,
    web_config: WebConfig | None = None,
    *,
    version: str,
) -> WSGIApp:
    """The exporter's WSGI application (see the module docstring for the routes)."""
    index = _index_page(version)
    routes: dict[str, Callable[[dict[str, Any]], Response]] = {
        "/": lambda environ: index,
        "/metrics": _metrics_route(registry),
        "/healthz": lambda environ: _probe(health.live),
        "/readyz": lambda environ: _probe(health.ready),
    }
    extra_headers = list(web_config.headers.items()) if web_config else []
    auth_enabled = web_config is not None and web_config.auth_enabled
    run_bcrypt = _bcrypt_off_hub()

    def authorized(authorization: str | None) -> bool:
        return web_config is None or web_config.check_basic_auth(
            authorization, run_blocking=run_bcrypt
        )

    def respond(environ: dict[str, Any]) -> Response:
        path = environ.get("PATH_INFO") or "/"
        authorization = environ.pop("HTTP_AUTHORIZATION", None)
        if auth_enabled and path not in PROBE_PATHS and not authorized(authorization):
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


class _ExporterServer(WSGIServer):
    """pywsgi with connection timeouts, quiet TLS handshake failures and cert reload."""

    certificates: _CertificateReloader | None = None

    def handle(self, sock: socket.socket, address: Any) -> None:
        sock.settimeout(CONNECTION_TIMEOUT_SECONDS)
        # A response goes out in two writes (headers, body): without NODELAY a kept-alive
        # client's delayed ACK holds the body back by about 40 ms.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle(sock, address)

    def wrap_socket_and_handle(self, client_socket: socket.socket, address: Any) -> None:
        assert self.certificates is not None
        client_socket.settimeout(CONNECTION_TIMEOUT_SECONDS)
        try:
            tls_socket = self.certificates.current().wrap_socket(client_socket, server_side=True)
        except (ssl.SSLError, OSError) as error:
            # Scanners, plain-HTTP clients, clients without a valid certificate:
            # not worth a traceback per connection.
            logger.debug("TLS handshake with %s failed: %s", address, error)
            client_socket.close()
            return
        try:
            self.handle(tls_socket, address)
        finally:
            tls_socket.close()


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


def make_server(
    listen_address: str, app: WSGIApp, web_config: WebConfig | None = None
) -> WSGIServer:
    """A pywsgi server bound to *listen_address*, not yet started.

    The socket is bound here, so a busy port fails now and ``server.address``
    already holds the real port when ``:0`` was asked for. Serves HTTPS when the
    web config has TLS. No per-request access log.
    """
    listener = _listener(listen_address)
    try:
        if web_config is not None and web_config.tls_enabled:
            certificates = _CertificateReloader(web_config)
            server = _ExporterServer(
                listener, app, log=None, error_log=logger, ssl_context=certificates.current()
            )
            server.certificates = certificates
        else:
            server = _ExporterServer(listener, app, log=None, error_log=logger)
    except BaseException:
        listener.close()
        raise
    return server
