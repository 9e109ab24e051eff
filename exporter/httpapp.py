"""The exporter's WSGI application: /metrics, /healthz, /readyz and a landing page.

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
environment once checked. bcrypt runs off the hub, one check at a time, behind a
bounded queue: a check over it gets a 503.

Over the concurrent-request limit the server (``exporter.http``) answers with
``too_many_requests`` (a prompt 503) instead of this application.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qs

import gevent
import gevent.lock
from prometheus_client import CollectorRegistry

from exporter.exposition import Exposition, metrics_response
from exporter.httpguard import REJECT_AUTH_QUEUE, ConnectionGuard, HttpLimits
from exporter.webconfig import WebConfig

logger = logging.getLogger(__name__)

T = TypeVar("T")

NAME = "cryptomus-exporter"
REALM = NAME
PROBE_PATHS = frozenset({"/healthz", "/readyz"})
ALLOWED_METHODS = ("GET", "HEAD")

Response = tuple[str, list[tuple[str, str]], bytes]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class HealthLike(Protocol):
    def live(self) -> tuple[bool, str]: ...

    def ready(self) -> tuple[bool, str]: ...


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


def too_many_requests(limit: int) -> WSGIApp:
    """The answer to a request over the concurrent-request limit: a prompt 503."""
    body = f"Too many concurrent requests (limit {limit}), try again later.\n".encode()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("503 Service Unavailable", [
            ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
            ("Retry-After", "1")])
        return [b""] if environ["REQUEST_METHOD"] == "HEAD" else [body]

    return app
