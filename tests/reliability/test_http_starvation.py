"""The metrics port cannot starve the exporter (issue 16).

The exporter runs as a child process with its open-files limit at 512 (soft and hard)
against the in-process simulator. 1,200 clients connect to its HTTP port, send half a
request (or half a TLS ClientHello) and then only trickle a byte now and then, while
the exchange drops the exporter's connection. Meanwhile a normal scrape is answered
within 2 s every time; the exporter reconnects with a new token and resubscribes
every channel; it closes at least 90 % of the half-open connections within 20 s; and
its log grows by a few dozen lines at most (a summary line, never a line per client).

Loopback only; bounded in count (1,200 clients, 30 scrapes) and time (each phase has
a deadline).
"""

from __future__ import annotations

import resource
import secrets
import socket
import statistics
import time
from pathlib import Path

import gevent
import gevent.pool
import pytest
import requests

from exporter.descriptors import ACCEPT_HEADROOM, EXCHANGE_RESERVE
from exporter.settings import ALL_CHANNELS
from exporter.simulator import Simulator, SimulatorConfig
from tests.reliability.child import FAST_FLAGS, simulator_env
from tests.support import ExporterProcess, make_self_signed, sample_value, wait_for

LIMITED_EXPORTER = Path(__file__).with_name("limited_exporter.py")
EXPORTER_OPEN_FILES = 512
HALF_OPEN_CLIENTS = 1200
CONNECTING_AT_ONCE = 50
TEST_OPEN_FILES = 4096  # this process: the clients, the simulator, the scrapes
SCRAPE_DEADLINE = 2.0
CLOSE_DEADLINE = 20.0
CLOSED_SHARE = 0.90
MAX_LOG_LINES_ADDED = 36
SCRAPES = 30
HALF_REQUEST = {"http": b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
                # a TLS record header announcing a 512-byte ClientHello, and its first bytes
                "tls": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"}
TRICKLE_INTERVAL = 1.0
WATCH_INTERVAL = 0.25


@pytest.fixture(autouse=True)
def enough_open_files():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = TEST_OPEN_FILES if hard == resource.RLIM_INFINITY else min(TEST_OPEN_FILES, hard)
    if wanted < HALF_OPEN_CLIENTS + 500:
        pytest.skip(f"the open-files hard limit ({hard}) is too low for this test")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def is_closed(client: socket.socket) -> bool:
    """True once the exporter closed (FIN or RST) this client's connection."""
    try:
        return client.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


class HalfOpenCrowd:
    """Clients that connect, send half a request, then trickle one byte a second."""

    def __init__(self, port: int, half_request: bytes) -> None:
        self.port = port
        self.half_request = half_request
        self.clients: list[socket.socket] = []
        self.connect_failures = 0
        self.closed_at: dict[int, float] = {}

    def _open_one(self, _index: int) -> None:
        try:
            client = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            client.sendall(self.half_request)
        except OSError:
            self.connect_failures += 1
            return
        client.settimeout(0)
        self.clients.append(client)

    def open(self) -> None:
        gevent.pool.Pool(CONNECTING_AT_ONCE).map(self._open_one, range(HALF_OPEN_CLIENTS))

    def watch(self, started: float, until: float) -> None:
        """Note when each client is closed; every TRICKLE_INTERVAL, send each open one a
        byte (of a header, or of the ClientHello): that must not extend its deadline."""
        next_trickle = started + TRICKLE_INTERVAL
        while time.monotonic() < until:
            now = time.monotonic()
            trickle = now >= next_trickle
            for index, client in enumerate(list(self.clients)):
                if index in self.closed_at:
                    continue
                try:
                    if is_closed(client) or (trickle and not client.send(b"a")):
                        self.closed_at[index] = now - started
                except OSError:
                    self.closed_at[index] = now - started
            if trickle:
                next_trickle = now + TRICKLE_INTERVAL
            if len(self.clients) >= HALF_OPEN_CLIENTS and len(self.closed_at) == len(self.clients):
                return
            gevent.sleep(WATCH_INTERVAL)

    def close(self) -> None:
        for client in self.clients:
            client.close()


def scrape_text(child: ExporterProcess) -> str:
    response = child.get("/metrics")
    assert response.status_code == 200
    return response.text


def timed_scrapes(child: ExporterProcess, count: int, interval: float) -> list[float]:
    """Latencies of *count* normal scrapes, each on a new connection; a failed or slow
    scrape is recorded as infinity."""
    latencies = []
    for _ in range(count):
        began = time.monotonic()
        try:
            response = requests.get(f"{child.scheme}://127.0.0.1:{child.port}/metrics",
                                    timeout=SCRAPE_DEADLINE, verify=child.verify)
            ok = response.status_code == 200 and "cryptomus_websocket_connected" in response.text
        except requests.RequestException:
            ok = False
        latencies.append(time.monotonic() - began if ok else float("inf"))
        gevent.sleep(interval)
    return latencies


def metric(text: str, name: str, **labels: str) -> float:
    return sample_value(text, f"cryptomus_{name}", labels) or 0.0


@pytest.mark.parametrize("kind", ["http", "tls"])
def test_half_open_crowd_cannot_starve_the_exporter(tmp_path, kind):
    api_key = f"KEY-{secrets.token_hex(16)}"
    sim = Simulator(SimulatorConfig(host="127.0.0.1", port=0, seed=5, rate=50.0,
                                    markets=["BTC_USDT", "ETH_USDT"], api_key=api_key))
    # No connection limit of its own: only the open-files budget bounds the HTTP side.
    flags = ["--log.level", "info", "--web.max-connections", "0", *FAST_FLAGS]
    child_options = {}
    if kind == "tls":
        cert, _ = make_self_signed(tmp_path)
        config = tmp_path / "web-config.yml"
        config.write_text("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
        flags += ["--web.config.file", str(config)]
        child_options = {"scheme": "https", "verify": str(cert)}
    sim.start()
    env = {**simulator_env(sim, api_key), "EXPORTER_TEST_OPEN_FILES": str(EXPORTER_OPEN_FILES)}
    try:
        with ExporterProcess(*flags, env=env, output=tmp_path / "exporter.log",
                             script=LIMITED_EXPORTER, **child_options) as child:
            wait_for(lambda: metric(scrape_text(child), "websocket_connected") == 1,
                     timeout=15, what="the exporter connected to the simulator")
            before = scrape_text(child)
            limit = metric(before, "http_connections_limit")
            # The exchange side keeps its reserve.
            assert 256 < limit <= EXPORTER_OPEN_FILES - EXCHANGE_RESERVE - ACCEPT_HEADROOM
            connects_before = metric(before, "websocket_connects_total")
            tokens_before = list(sim.tokens_seen)
            log_lines_before = len(child.output().splitlines())

            crowd = HalfOpenCrowd(child.port, HALF_REQUEST[kind])
            started = time.monotonic()
            opening = gevent.spawn(crowd.open)
            watching = gevent.spawn(crowd.watch, started, started + CLOSE_DEADLINE)
            scrapes = gevent.spawn(timed_scrapes, child, SCRAPES, 0.2)
            gevent.sleep(0.3)
            dropped = sim.faults.drop_connections()
            opening.join(timeout=60)
            opened_after = time.monotonic() - started
            latencies = scrapes.get(timeout=60)

            # The exporter reconnected with a new token and resubscribed, seen through a scrape.
            wait_for(lambda: metric(scrape_text(child), "websocket_connects_total")
                     > connects_before and metric(scrape_text(child), "websocket_connected") == 1,
                     timeout=15, what="the exporter reconnected")
            new_tokens = sim.tokens_seen[len(tokens_before):]
            watching.join(timeout=CLOSE_DEADLINE + 10)
            during = scrape_text(child)
            added_lines = child.output().splitlines()[log_lines_before:]
            log_lines_added = len(added_lines)
            crowd.close()
            assert child.stop() == 0
        output = child.output()
    finally:
        sim.stop()

    closed_times = sorted(crowd.closed_at.values())
    held = len(crowd.clients)
    share_closed = len(closed_times) / max(held, 1)
    ninety = closed_times[int(CLOSED_SHARE * held) - 1] if share_closed >= CLOSED_SHARE else None
    refused = {reason: metric(during, "http_connections_refused_total", reason=reason)
               for reason in ("limit", "descriptors")}
    print(f"\n[{kind}] clients held {held} (connect failures {crowd.connect_failures}, opened in "
          f"{opened_after:.1f}s); connection limit {limit:.0f}; exchange connections dropped "
          f"{dropped}; scrapes: {len(latencies)}, max {max(latencies):.3f}s, median "
          f"{statistics.median(latencies):.3f}s; closed by the exporter {share_closed:.1%}, "
          f"90% by {ninety}s, last at {closed_times[-1] if closed_times else None}s; "
          f"evicted {metric(during, 'http_connections_evicted_total', phase='headers'):.0f}, "
          f"timed out {metric(during, 'http_connections_timed_out_total', phase='headers'):.0f}, "
          f"refused {refused}; log lines added {log_lines_added}:")
    print("\n".join(added_lines))

    assert held >= HALF_OPEN_CLIENTS
    assert max(latencies) <= SCRAPE_DEADLINE, latencies
    assert dropped >= 1
    assert new_tokens and not set(new_tokens) & set(tokens_before)
    for channel in ALL_CHANNELS:
        assert sim.stats.subscribe_requests[channel] >= 2, channel
    assert ninety is not None and ninety <= CLOSE_DEADLINE, (share_closed, closed_times[-5:])
    assert refused["descriptors"] == 0
    assert log_lines_added <= MAX_LOG_LINES_ADDED, output[-4000:]
    assert sum("HTTP port under pressure" in line for line in added_lines) == 1
    assert "Traceback" not in output
