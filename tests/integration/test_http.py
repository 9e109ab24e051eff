"""The HTTP endpoint on real loopback sockets: routes, basic auth, TLS, listen addresses."""

from __future__ import annotations

import base64
import contextlib
import gzip
import logging
import os
import resource
import socket
from pathlib import Path

import bcrypt
import gevent
import gevent.event
import pytest
import requests
from gevent import monkey
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.parser import text_string_to_metric_families

from exporter import http, httpapp
from exporter.collectors import HttpCollector
from exporter.descriptors import plan
from exporter.http import http_limits, make_guard, make_server, parse_listen_address
from exporter.httpapp import make_app
from exporter.httpguard import TIMED_OUT, HttpLimits
from exporter.settings import ConfigError, Settings, load_settings
from exporter.webconfig import load_web_config
from tests.support import make_self_signed

TIMEOUT = 10  # seconds, for every client call: a hung server fails the test instead of hanging it
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


class FakeHealth:
    """Answers whatever the test sets; not the thing under test."""

    def __init__(self) -> None:
        self.liveness = (True, "ok")
        self.readiness = (True, "ready")

    def live(self) -> tuple[bool, str]:
        return self.liveness

    def ready(self) -> tuple[bool, str]:
        if isinstance(self.readiness, Exception):
            raise self.readiness
        return self.readiness


@contextlib.contextmanager
def serving(app, web_config=None, guard=None):
    server = make_server("127.0.0.1:0", app, web_config, guard=guard)
    server.start()
    scheme = "https" if web_config is not None and web_config.tls_enabled else "http"
    try:
        yield f"{scheme}://127.0.0.1:{server.address[1]}"
    finally:
        server.stop(timeout=TIMEOUT)


@pytest.fixture
def registry():
    registry = CollectorRegistry()
    price = Gauge("cryptomus_test_price", "A test gauge.", ["market"], registry=registry)
    price.labels("BTC_USDT").set(107005.35)
    return registry


@pytest.fixture
def trades(registry):
    trades = Counter("cryptomus_test_trades", "A test counter.", registry=registry)
    trades.inc(3)
    return trades


@pytest.fixture
def health():
    return FakeHealth()


@pytest.fixture
def base_url(registry, trades, health):
    with serving(make_app(registry, health, version="1.2.3")) as url:
        yield url


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return found.value
    raise AssertionError(f"no sample {name}{labels} in:\n{text}")


def basic_auth_header(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


# --- routes --------------------------------------------------------------------------------


def test_metrics_serve_the_registry(base_url):
    response = requests.get(f"{base_url}/metrics", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert sample(response.text, "cryptomus_test_price", market="BTC_USDT") == 107005.35
    assert sample(response.text, "cryptomus_test_trades_total") == 3


def test_metrics_follow_later_updates(trades, base_url):
    trades.inc(2)
    response = requests.get(f"{base_url}/metrics", timeout=TIMEOUT)
    assert sample(response.text, "cryptomus_test_trades_total") == 5


def test_metrics_are_gzipped_when_asked(base_url):
    response = requests.get(
        f"{base_url}/metrics", headers={"Accept-Encoding": "gzip"}, stream=True, timeout=TIMEOUT
    )
    assert response.headers["Content-Encoding"] == "gzip"
    text = gzip.decompress(response.raw.read(decode_content=False)).decode()
    assert sample(text, "cryptomus_test_price", market="BTC_USDT") == 107005.35


def test_metrics_are_plain_when_gzip_is_not_asked(base_url):
    response = requests.get(
        f"{base_url}/metrics", headers={"Accept-Encoding": "identity"}, timeout=TIMEOUT
    )
    assert "Content-Encoding" not in response.headers
    assert "cryptomus_test_price" in response.text


def test_metrics_speak_openmetrics_when_asked(base_url):
    response = requests.get(
        f"{base_url}/metrics",
        headers={"Accept": "application/openmetrics-text; version=1.0.0"},
        timeout=TIMEOUT,
    )
    assert response.headers["Content-Type"].startswith(OPENMETRICS)
    assert response.text.endswith("# EOF\n")
    assert 'cryptomus_test_price{market="BTC_USDT"} 107005.35' in response.text


def test_metrics_can_be_filtered_by_name(base_url):
    response = requests.get(
        f"{base_url}/metrics", params={"name[]": "cryptomus_test_price"}, timeout=TIMEOUT
    )
    assert "cryptomus_test_price" in response.text
    assert "cryptomus_test_trades" not in response.text


def test_head_answers_headers_without_a_body(base_url):
    response = requests.head(f"{base_url}/metrics", timeout=TIMEOUT)
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) > 0
    assert response.content == b""


def test_head_puts_no_body_on_the_wire(base_url):
    """pywsgi itself would send the body after a HEAD and corrupt a kept-alive connection."""
    port = int(base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
        client.sendall(
            b"HEAD /healthz HTTP/1.1\r\nHost: test\r\n\r\n"
            b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        )
        received = b""
        for _ in range(100):
            chunk = client.recv(65536)
            if not chunk:
                break
            received += chunk
    head, get = received.split(b"HTTP/1.1 ")[1:]
    assert head.startswith(b"200 OK") and head.endswith(b"\r\n\r\n")
    assert get.startswith(b"200 OK") and get.endswith(b"\r\n\r\nok\n")


@pytest.mark.parametrize(
    ("path", "attribute"), [("/healthz", "liveness"), ("/readyz", "readiness")]
)
def test_probes_follow_the_health_answers(base_url, health, path, attribute):
    setattr(health, attribute, (True, "ok"))
    response = requests.get(f"{base_url}{path}", timeout=TIMEOUT)
    assert (response.status_code, response.text) == (200, "ok\n")
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"

    setattr(health, attribute, (False, "no message from the exchange for 95s"))
    response = requests.get(f"{base_url}{path}", timeout=TIMEOUT)
    assert (response.status_code, response.text) == (503, "no message from the exchange for 95s\n")

    setattr(health, attribute, (True, "connected"))
    response = requests.get(f"{base_url}{path}", timeout=TIMEOUT)
    assert (response.status_code, response.text) == (200, "connected\n")


def test_probes_are_independent(base_url, health):
    health.liveness = (True, "ok")
    health.readiness = (False, "not subscribed yet")
    assert requests.get(f"{base_url}/healthz", timeout=TIMEOUT).status_code == 200
    assert requests.get(f"{base_url}/readyz", timeout=TIMEOUT).status_code == 503


def test_landing_page_links_the_endpoints(base_url):
    response = requests.get(f"{base_url}/", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    for path in ("/metrics", "/healthz", "/readyz"):
        assert f'href="{path}"' in response.text
    assert "cryptomus-exporter" in response.text
    assert "1.2.3" in response.text


def test_the_version_is_escaped_on_the_landing_page(registry, health):
    with serving(make_app(registry, health, version="<script>")) as url:
        text = requests.get(f"{url}/", timeout=TIMEOUT).text
    assert "<script>" not in text
    assert "&lt;script&gt;" in text


@pytest.mark.parametrize("path", ["/nope", "/metrics/", "/metricsx", "/favicon.ico"])
def test_unknown_paths_are_404(base_url, path):
    response = requests.get(f"{base_url}{path}", timeout=TIMEOUT)
    assert response.status_code == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
@pytest.mark.parametrize("path", ["/", "/metrics", "/healthz", "/readyz"])
def test_other_methods_are_405(base_url, method, path):
    response = requests.request(method, f"{base_url}{path}", timeout=TIMEOUT)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"


def test_an_error_is_a_500_and_its_log_holds_no_credentials(base_url, health, caplog):
    health.readiness = RuntimeError("boom")
    with caplog.at_level(logging.DEBUG):
        response = requests.get(
            f"{base_url}/readyz", headers=basic_auth_header("alice", "s3cret-pw"), timeout=TIMEOUT
        )
    assert response.status_code == 500
    assert "boom" not in response.text
    assert "internal error serving GET /readyz" in caplog.text
    assert "s3cret-pw" not in caplog.text
    assert base64.b64encode(b"alice:s3cret-pw").decode() not in caplog.text
    # The server keeps serving.
    health.readiness = (True, "ok")
    assert requests.get(f"{base_url}/readyz", timeout=TIMEOUT).status_code == 200


# --- basic auth ----------------------------------------------------------------------------


@pytest.fixture
def auth_config(tmp_path):
    password_hash = bcrypt.hashpw(b"scrape-me", bcrypt.gensalt(4)).decode()
    path = tmp_path / "web-config.yml"
    path.write_text(
        f"basic_auth_users:\n  prometheus: {password_hash}\n"
        "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
        "    X-Frame-Options: deny\n"
    )
    return load_web_config(str(path))


@pytest.fixture
def auth_url(registry, health, auth_config):
    with serving(make_app(registry, health, auth_config, version="1.2.3"), auth_config) as url:
        yield url


@pytest.mark.parametrize("path", ["/metrics", "/", "/nope"])
def test_without_credentials_protected_routes_answer_401(auth_url, path):
    response = requests.get(f"{auth_url}{path}", timeout=TIMEOUT)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="cryptomus-exporter"'
    assert "cryptomus_test_price" not in response.text


@pytest.mark.parametrize(
    ("user", "password"), [("prometheus", "wrong"), ("prometheus", ""), ("root", "scrape-me")]
)
def test_wrong_credentials_answer_401(auth_url, user, password):
    response = requests.get(
        f"{auth_url}/metrics", headers=basic_auth_header(user, password), timeout=TIMEOUT
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="cryptomus-exporter"'


def test_right_credentials_are_served(auth_url):
    credentials = ("prometheus", "scrape-me")
    response = requests.get(f"{auth_url}/metrics", auth=credentials, timeout=TIMEOUT)
    assert response.status_code == 200
    assert sample(response.text, "cryptomus_test_price", market="BTC_USDT") == 107005.35
    # Cached after the first check; still right the second time.
    assert requests.get(f"{auth_url}/", auth=credentials, timeout=TIMEOUT).status_code == 200
    assert requests.get(f"{auth_url}/nope", auth=credentials, timeout=TIMEOUT).status_code == 404


def test_probes_stay_open_with_basic_auth(auth_url, health):
    assert requests.get(f"{auth_url}/healthz", timeout=TIMEOUT).status_code == 200
    health.readiness = (False, "disconnected")
    response = requests.get(f"{auth_url}/readyz", timeout=TIMEOUT)
    assert (response.status_code, response.text) == (503, "disconnected\n")


@pytest.mark.parametrize("path", ["/metrics", "/healthz"])
def test_configured_headers_are_sent_on_every_response(auth_url, path):
    for auth in (None, ("prometheus", "scrape-me")):
        response = requests.get(f"{auth_url}{path}", auth=auth, timeout=TIMEOUT)
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "deny"


def test_bcrypt_runs_off_the_hub():
    """While bcrypt works, other greenlets (the WebSocket reader) keep running.

    The blocking call waits on a real OS-thread lock that only a greenlet
    releases: run on the hub it would wait out its timeout and return False.
    """
    real_lock = monkey.get_original("_thread", "allocate_lock")()
    real_lock.acquire()
    run_blocking = httpapp._bcrypt_off_hub()
    releaser = gevent.spawn(real_lock.release)
    assert run_blocking(real_lock.acquire, True, TIMEOUT) is True
    releaser.join(TIMEOUT)


# --- TLS -----------------------------------------------------------------------------------


def write_tls_config(directory: Path, extra: str = "") -> str:
    path = directory / "web-config.yml"
    path.write_text(f"tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra}")
    return str(path)


def test_metrics_over_tls(tmp_path, tls_files, registry, health):
    cert, _ = tls_files
    config = load_web_config(write_tls_config(tmp_path))
    with serving(make_app(registry, health, config, version="1.2.3"), config) as url:
        assert url.startswith("https://")
        response = requests.get(f"{url}/metrics", verify=str(cert), timeout=TIMEOUT)
        assert response.status_code == 200
        assert sample(response.text, "cryptomus_test_price", market="BTC_USDT") == 107005.35

        # A plain-HTTP client fails its request and does not take the server down.
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(url.replace("https://", "http://") + "/metrics", timeout=TIMEOUT)
        assert requests.get(f"{url}/healthz", verify=str(cert), timeout=TIMEOUT).text == "ok\n"


def test_tls_with_required_client_certificates(tmp_path, tls_files, registry, health):
    cert, _ = tls_files
    client_cert, client_key = make_self_signed(tmp_path, "client")
    stranger_cert, stranger_key = make_self_signed(tmp_path, "stranger")
    config = load_web_config(
        write_tls_config(
            tmp_path,
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client.crt\n",
        )
    )
    with serving(make_app(registry, health, config, version="1.2.3"), config) as url:
        ok = requests.get(
            f"{url}/metrics",
            verify=str(cert),
            cert=(str(client_cert), str(client_key)),
            timeout=TIMEOUT,
        )
        assert ok.status_code == 200
        for client in (None, (str(stranger_cert), str(stranger_key))):
            with pytest.raises(requests.exceptions.ConnectionError):
                requests.get(f"{url}/metrics", verify=str(cert), cert=client, timeout=TIMEOUT)


def test_rotated_certificates_are_used_for_new_connections(tmp_path, tls_files, registry, health):
    old_cert, _ = tls_files
    kept = tmp_path / "old.crt"
    kept.write_bytes(old_cert.read_bytes())
    config = load_web_config(write_tls_config(tmp_path))
    with serving(make_app(registry, health, config, version="1.2.3"), config) as url:
        assert requests.get(f"{url}/healthz", verify=str(kept), timeout=TIMEOUT).ok

        # Written aside and renamed into place, as Kubernetes updates a mounted Secret.
        staging = tmp_path / "staging"
        staging.mkdir()
        new_cert, new_key = make_self_signed(staging)
        os.replace(new_key, tmp_path / "server.key")
        os.replace(new_cert, tmp_path / "server.crt")

        assert requests.get(
            f"{url}/healthz", verify=str(tmp_path / "server.crt"), timeout=TIMEOUT
        ).ok
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{url}/healthz", verify=str(kept), timeout=TIMEOUT)


def test_a_broken_rotation_keeps_the_previous_certificate(tmp_path, tls_files, registry, health):
    cert, _ = tls_files
    kept = tmp_path / "old.crt"
    kept.write_bytes(cert.read_bytes())
    config = load_web_config(write_tls_config(tmp_path))
    with serving(make_app(registry, health, config, version="1.2.3"), config) as url:
        (tmp_path / "server.key").write_text("not a key\n")
        assert requests.get(f"{url}/healthz", verify=str(kept), timeout=TIMEOUT).ok


# --- connections and listen addresses ------------------------------------------------------


def test_a_silent_connection_is_closed_at_the_header_deadline(registry, health):
    guard = make_guard(HttpLimits(read_header_timeout=0.2))
    with serving(make_app(registry, health, version="1.2.3"), guard=guard) as url, \
            socket.create_connection(("127.0.0.1", port_of(url)), timeout=TIMEOUT) as client:
        assert client.recv(1) == b""  # closed by the server, not by our timeout
    assert guard.events == {(TIMED_OUT, "headers"): 1}


def test_scrapes_keep_working_while_another_client_is_idle(base_url):
    port = int(base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT):
        assert requests.get(f"{base_url}/healthz", timeout=TIMEOUT).status_code == 200


def test_the_port_is_known_before_start_and_a_busy_port_fails(registry, health):
    app = make_app(registry, health, version="1.2.3")
    server = make_server("127.0.0.1:0", app)
    try:
        port = server.address[1]
        assert port > 0
        with pytest.raises(OSError):
            make_server(f"127.0.0.1:{port}", app)
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (":9841", ("", 9841)),
        ("127.0.0.1:9841", ("127.0.0.1", 9841)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
        ("[::1]:9841", ("::1", 9841)),
        ("[::]:9841", ("::", 9841)),
        ("localhost:0", ("localhost", 0)),
        ("exporter.example:65535", ("exporter.example", 65535)),
    ],
)
def test_listen_addresses_are_parsed(value, expected):
    assert parse_listen_address(value) == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "expected [host]:port"),
        ("9841", "expected [host]:port"),
        ("localhost", "expected [host]:port"),
        ("localhost:", "expected [host]:port"),
        ("::1:9841", "IPv6 addresses go in brackets"),
        ("[::1]", "expected [host]:port"),
        ("[]:9841", "empty IPv6 address"),
        ("localhost:http", "expected [host]:port"),
        ("localhost: 80", "expected [host]:port"),
        ("localhost:-1", "expected [host]:port"),
        ("localhost:65536", "port 65536 is above 65535"),
        ("localhost:123456", "expected [host]:port"),
        ("http://localhost:9841", "expected [host]:port"),
    ],
)
def test_bad_listen_addresses_are_refused(value, problem):
    with pytest.raises(ValueError, match="listen address") as raised:
        parse_listen_address(value)
    assert problem in str(raised.value)


# --- limits and deadlines (issue 16) -------------------------------------------------------


class Held:
    """A WSGI app whose /slow requests wait until released; anything else answers at once."""

    def __init__(self) -> None:
        self.release = gevent.event.Event()
        self.waiting = 0

    def __call__(self, environ, start_response):
        if environ["PATH_INFO"] == "/slow":
            self.waiting += 1
            self.release.wait(TIMEOUT)
            self.waiting -= 1
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
        return [b"ok\n"]


def big_body_app(environ, start_response):
    body = b"x" * (32 * 1024 * 1024)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def closed_by_server(client: socket.socket) -> bool:
    try:
        return client.recv(1) == b""
    except ConnectionResetError:
        return True


def wait_until(condition, what: str):
    with gevent.Timeout(TIMEOUT, AssertionError(f"timed out waiting for {what}")):
        while not condition():
            gevent.sleep(0.01)


def test_a_trickle_does_not_extend_the_header_deadline(registry, health):
    guard = make_guard(HttpLimits(read_header_timeout=0.3))
    sent = 0
    with serving(make_app(registry, health, version="1.2.3"), guard=guard) as url, \
            socket.create_connection(("127.0.0.1", port_of(url)), timeout=TIMEOUT) as client:
        request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
        with contextlib.suppress(OSError):
            for byte in request:  # one byte every 20 ms: 4.6 s for all of it
                client.sendall(bytes([byte]))
                sent += 1
                gevent.sleep(0.02)
        assert closed_by_server(client)
    assert sent < len(request)
    assert guard.events == {(TIMED_OUT, "headers"): 1}


def test_a_kept_alive_connection_is_closed_when_idle(registry, health):
    guard = make_guard(HttpLimits(idle_timeout=0.2))
    with serving(make_app(registry, health, version="1.2.3"), guard=guard) as url, \
            socket.create_connection(("127.0.0.1", port_of(url)), timeout=TIMEOUT) as client:
        client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while not received.endswith(b"ok\n"):
            received += client.recv(4096)
        assert received.startswith(b"HTTP/1.1 200 OK")
        assert closed_by_server(client)
    assert guard.events == {(TIMED_OUT, "idle"): 1}


def test_a_client_that_does_not_read_its_response_is_cut_off():
    guard = make_guard(HttpLimits(write_timeout=0.3))
    with serving(big_body_app, guard=guard) as url, socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.settimeout(TIMEOUT)
        client.connect(("127.0.0.1", port_of(url)))
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(lambda: guard.events, "the write deadline")
        received = 0
        with contextlib.suppress(ConnectionResetError):
            while chunk := client.recv(1 << 20):
                received += len(chunk)
    assert received < 32 * 1024 * 1024
    assert guard.events == {(TIMED_OUT, "write"): 1}


def test_requests_over_the_limit_get_a_prompt_503():
    held = Held()
    guard = make_guard(HttpLimits(max_requests=2))
    registry = CollectorRegistry()
    registry.register(HttpCollector(guard))
    with serving(held, guard=guard) as url:
        slow = [gevent.spawn(requests.get, f"{url}/slow", timeout=TIMEOUT) for _ in range(2)]
        wait_until(lambda: held.waiting == 2, "two requests in flight")
        response = requests.get(f"{url}/fast", timeout=TIMEOUT)
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert "limit 2" in response.text
        held.release.set()
        assert [g.get(timeout=TIMEOUT).status_code for g in slow] == [200, 200]
        assert requests.get(f"{url}/fast", timeout=TIMEOUT).status_code == 200
    value = registry.get_sample_value
    assert value("cryptomus_http_requests_rejected_total", {"reason": "max_requests"}) == 1
    assert value("cryptomus_http_requests_rejected_total", {"reason": "auth_queue"}) == 0
    assert value("cryptomus_http_connections_limit") == 256
    assert value("cryptomus_http_connections_open") == 0


def test_when_every_connection_is_busy_a_new_one_is_refused():
    held = Held()
    guard = make_guard(HttpLimits(max_connections=2))
    with serving(held, guard=guard) as url:
        slow = [gevent.spawn(requests.get, f"{url}/slow", timeout=TIMEOUT) for _ in range(2)]
        wait_until(lambda: held.waiting == 2, "two requests in flight")
        with socket.create_connection(("127.0.0.1", port_of(url)), timeout=TIMEOUT) as client:
            assert closed_by_server(client)
        held.release.set()
        gevent.joinall(slow, timeout=TIMEOUT, raise_error=True)
    assert guard.events == {("refused", "limit"): 1}


def test_silent_connections_make_room_for_a_scrape(registry, health):
    guard = make_guard(HttpLimits(max_connections=2))
    with serving(make_app(registry, health, version="1.2.3"), guard=guard) as url:
        address = ("127.0.0.1", port_of(url))
        with socket.create_connection(address, timeout=TIMEOUT) as first, \
                socket.create_connection(address, timeout=TIMEOUT) as second:
            wait_until(lambda: len(guard) == 2, "both silent connections accepted")
            assert requests.get(f"{url}/metrics", timeout=TIMEOUT).status_code == 200
            assert closed_by_server(first)
            second.settimeout(0)
            with pytest.raises(BlockingIOError):  # the younger one is still open
                second.recv(1)
    assert guard.events == {("evicted", "headers"): 1}


def test_a_tls_handshake_that_never_completes_is_closed_at_the_header_deadline(
        tmp_path, tls_files, registry, health):
    config = load_web_config(write_tls_config(tmp_path))
    guard = make_guard(HttpLimits(read_header_timeout=0.3))
    with serving(make_app(registry, health, config, version="1.2.3"), config, guard) as url, \
            socket.create_connection(("127.0.0.1", port_of(url)), timeout=TIMEOUT) as client:
        client.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # half a ClientHello
        assert closed_by_server(client)
    assert guard.events == {(TIMED_OUT, "headers"): 1}


def test_the_bcrypt_queue_is_bounded(tmp_path, registry, health):
    password_hash = bcrypt.hashpw(b"right", bcrypt.gensalt(10)).decode()  # ~50 ms a check
    path = tmp_path / "web-config.yml"
    path.write_text(f"basic_auth_users:\n  prometheus: {password_hash}\n")
    config = load_web_config(str(path))
    guard = make_guard(HttpLimits(max_auth_queue=1))
    with serving(make_app(registry, health, config, version="1.2.3", guard=guard), config,
                 guard) as url:
        guesses = [gevent.spawn(requests.get, f"{url}/metrics", auth=("prometheus", f"guess{i}"),
                                timeout=TIMEOUT) for i in range(8)]
        statuses = sorted(g.get(timeout=TIMEOUT).status_code for g in guesses)
        assert requests.get(f"{url}/metrics", auth=("prometheus", "right"),
                            timeout=TIMEOUT).status_code == 200
    assert set(statuses) == {401, 503}
    # One check runs and one waits; the others are turned away without queueing.
    assert statuses.count(401) >= 2
    assert guard.events == {("rejected", "auth_queue"): statuses.count(503)}


def test_a_malformed_request_is_counted_not_logged(registry, health, caplog):
    guard = make_guard()
    with caplog.at_level(logging.INFO), \
            serving(make_app(registry, health, version="1.2.3"), guard=guard) as url, \
            socket.create_connection(("127.0.0.1", port_of(url)), timeout=TIMEOUT) as client:
        client.sendall(b"NONSENSE\r\n\r\n")
        assert client.recv(4096).startswith(b"HTTP/1.1 400 Bad Request")
    assert guard.events == {("rejected", "bad_request"): 1}
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]


def test_out_of_descriptors_accept_is_counted_paused_and_recovers(registry, health, capfd):
    """accept() failing with EMFILE: no traceback from gevent, no busy loop; the clients
    that waited in the backlog are served once descriptors are back."""
    guard = make_guard()
    with serving(make_app(registry, health, version="1.2.3"), guard=guard) as url:
        clients = [socket.socket() for _ in range(3)]  # their descriptors exist already
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        lowest_free = os.dup(0)  # a new descriptor always takes the lowest free number
        os.close(lowest_free)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
            for client in clients:
                client.settimeout(TIMEOUT)
                client.connect(("127.0.0.1", port_of(url)))  # completes in the backlog
            gevent.sleep(0.3)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        for client in clients:
            with client:
                client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert client.recv(4096).startswith(b"HTTP/1.1 200 OK")
    refused = guard.events[("refused", "descriptors")]
    assert 1 <= refused <= 0.3 / http.ACCEPT_PAUSE_SECONDS + 1
    assert "Traceback" not in capfd.readouterr().err


def test_the_options_become_limits_capped_by_the_descriptor_budget(caplog):
    settings = Settings(demo=True, web_max_requests=0, web_max_connections=1000,
                        web_read_header_timeout=2, web_write_timeout=9, web_idle_timeout=3)
    budget = plan(512, in_use=20)
    with caplog.at_level(logging.INFO):
        limits = http_limits(settings, budget)
    assert limits == HttpLimits(max_requests=0, max_connections=budget.http_connections,
                                read_header_timeout=2, write_timeout=9, idle_timeout=3)
    assert f"HTTP limits: {budget.http_connections} connections (open-files limit 512" \
        in caplog.text
    assert http_limits(Settings(demo=True), budget).max_connections == 256


@pytest.mark.parametrize("option", ["web_max_requests", "web_max_connections"])
def test_negative_limits_are_refused_naming_the_option(monkeypatch, option):
    monkeypatch.setenv(f"CRYPTOMUS_{option.upper()}", "-1")
    monkeypatch.setenv("CRYPTOMUS_DEMO", "true")
    with pytest.raises(ConfigError, match=f"CRYPTOMUS_{option.upper()}"):
        load_settings()
