"""Helpers for the simulator tests: real loopback sockets, websocket-client and requests."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import gevent
import orjson
import pytest
import requests
import websocket

from exporter.simulator import Simulator, SimulatorConfig

REPO = Path(__file__).resolve().parents[2]
WS_TIMEOUT = 3.0
HTTP_TIMEOUT = 3.0
TOKEN_PATH = "/v2/user-api/exchange/account/web-socket/token"
GOLDEN_PATH = Path(__file__).parent.parent / "fixtures" / "golden_frames.json"
PUBLIC = ("lastprice", "ticker", "depth", "trade")
PRIVATE = ("order", "balance", "deal")
CHANNELS = PUBLIC + PRIVATE


def apply_levels(book: dict[str, dict[Decimal, Decimal]], data: dict) -> None:
    """Apply a depth_update leniently (no checks): what a naive client does."""
    if data["full_reload"]:
        book["asks"], book["bids"] = {}, {}
    for side in ("asks", "bids"):
        for price, quantity in data[side]:
            if quantity == "0":
                book[side].pop(Decimal(price), None)
            else:
                book[side][Decimal(price)] = Decimal(quantity)


def golden() -> dict:
    return json.loads(GOLDEN_PATH.read_text())["frames"]


def sign(api_key: str, body: bytes = b"") -> str:
    return hashlib.md5((base64.b64encode(body).decode() + api_key).encode()).hexdigest()


def signed_headers(user_id: str, api_key: str) -> dict[str, str]:
    return {"userId": user_id, "sign": sign(api_key)}


def auth_headers(sim: Simulator) -> dict[str, str]:
    return signed_headers(sim.config.user_id, sim.config.api_key)


def get(
    sim: Simulator, path: str, signed: bool = False, headers: dict | None = None, **kwargs: object
) -> requests.Response:
    """GET on the simulator; ``signed`` adds valid userId/sign headers."""
    all_headers = {**(auth_headers(sim) if signed else {}), **(headers or {})}
    return requests.get(sim.base_url + path, headers=all_headers, timeout=HTTP_TIMEOUT, **kwargs)


def get_token(sim: Simulator, **kwargs: object) -> str:
    response = get(sim, TOKEN_PATH, signed=True, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()["token"]


class Client:
    """A websocket-client connection with request/response helpers."""

    def __init__(self, sim: Simulator, token: str | None = None, **options: object) -> None:
        self.token = token or get_token(sim)
        self.ws = websocket.create_connection(
            f"{sim.ws_url}?token={self.token}",
            timeout=WS_TIMEOUT,
            skip_utf8_validation=True,
            **options,
        )
        self.next_id = 100
        self.skipped: list[dict] = []

    def send(self, method: str, params: list | None = None) -> int:
        self.next_id += 1
        self.ws.send(orjson.dumps({"id": self.next_id, "method": method, "params": params or []}))
        return self.next_id

    def recv(self) -> dict:
        return orjson.loads(self.ws.recv())

    def recv_frame(self) -> tuple[int, bytes]:
        opcode, data = self.ws.recv_data(control_frame=True)
        return opcode, data

    def request(self, method: str, params: list | None = None, limit: int = 100_000) -> dict:
        """Send a request and return its response; events read meanwhile go to ``skipped``."""
        request_id = self.send(method, params)
        for _ in range(limit):
            frame = self.recv()
            if frame.get("id") == request_id:
                return frame
            self.skipped.append(frame)
        raise AssertionError(f"no response to {method} within {limit} frames")

    def subscribe(self, channel: str, params: list | None = None) -> dict:
        response = self.request(f"{channel}_subscribe", params or ["all"])
        assert response["error"] is None, response
        return response

    def events(self, count: int, method: str | None = None, limit: int = 50000) -> list[dict]:
        """The next ``count`` events (of ``method`` if given), reading at most ``limit`` frames."""
        found = []
        for _ in range(limit):
            frame = self.recv()
            if method is None or frame.get("method") == method:
                found.append(frame)
                if len(found) == count:
                    return found
        raise AssertionError(f"only {len(found)} of {count} {method or 'events'} in {limit} frames")

    def drain(self) -> list[dict]:
        """Every frame sent before now: ping, and read up to the pong."""
        request_id = self.send("ping")
        frames = []
        for _ in range(1_000_000):
            frame = self.recv()
            if frame.get("id") == request_id and frame.get("method") == "pong":
                return frames
            frames.append(frame)
        raise AssertionError("no pong")

    def close(self) -> None:
        self.ws.close(timeout=0.2)


@pytest.fixture
def start_sim() -> Iterator[Callable[..., Simulator]]:
    """Start simulators on free loopback ports; all are stopped after the test."""
    sims: list[Simulator] = []

    def start(**overrides: object) -> Simulator:
        options: dict = {"seed": 1, "rate": 0.0, "markets": 3}
        options.update(overrides)
        sim = Simulator(SimulatorConfig(**options)).start()
        sims.append(sim)
        return sim

    yield start
    for sim in sims:
        sim.stop()


@pytest.fixture
def connect() -> Iterator[Callable[..., Client]]:
    """Open clients (closed after the test)."""
    clients: list[Client] = []

    def open_client(sim: Simulator, token: str | None = None) -> Client:
        client = Client(sim, token)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()


@contextlib.contextmanager
def simulate_process(
    *argv: str, command: tuple[str, ...] = ("exporter", "simulate")
) -> Iterator[tuple[subprocess.Popen, str]]:
    """``python -m exporter simulate --listen 127.0.0.1:0 *argv`` in a child process
    and its first output line; killed (if still running) and reaped afterwards."""
    process = subprocess.Popen(
        [sys.executable, "-m", *command, "--listen", "127.0.0.1:0", *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, text=True,
    )  # fmt: skip
    try:
        with gevent.Timeout(15):
            line = process.stdout.readline()
        yield process, line
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


def process_urls(line: str) -> tuple[str, str]:
    """(REST base URL, WebSocket URL) from the simulator's start-up line."""
    match = re.search(r"REST (http://127\.0\.0\.1:\d+) WebSocket (ws://\S+)", line)
    assert match, line
    return match.group(1), match.group(2)


def open_process_ws(line: str) -> websocket.WebSocket:
    """A WebSocket to a simulator child process, with a token of the demo user."""
    base_url, ws_url = process_urls(line)
    headers = signed_headers("demo-user", "demo-api-key")
    response = requests.get(base_url + TOKEN_PATH, headers=headers, timeout=HTTP_TIMEOUT)
    return websocket.create_connection(f"{ws_url}?token={response.json()['token']}", timeout=5)
