"""Child processes of the benchmark, each speaking one JSON object per stdout line."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
# Children import the exporter of this checkout, not whichever one pip installed in editable
# mode (a script's own folder, not the working directory, comes first on its sys.path).
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    filter(None, (str(HERE.parent), os.environ.get("PYTHONPATH"))))}
REPLY_TIMEOUT = 300.0


def say(payload: dict) -> None:
    """One JSON line to the parent (children call this)."""
    sys.stdout.write(orjson.dumps(payload).decode() + "\n")
    sys.stdout.flush()


class Child:
    """``python benchmarks/<script> args...`` with a line protocol on stdin/stdout."""

    def __init__(self, script: str, *args: Any) -> None:
        self.name = script
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / script), *map(str, args)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, env=CHILD_ENV,
        )

    def read(self) -> dict:
        """The next JSON line; raises if the child died or reported an error."""
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait(timeout=REPLY_TIMEOUT)
            raise RuntimeError(f"{self.name} exited with status {code} before answering")
        message = orjson.loads(line)
        if "error" in message:
            raise RuntimeError(f"{self.name}: {message['error']}")
        return message

    def send(self, command: str) -> None:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def ask(self, command: str) -> dict:
        self.send(command)
        return self.read()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.send("quit")
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(timeout=10)
        self.process.stdin.close()
        self.process.stdout.close()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Sender(Child):
    """``sender.py``: the simulator on a loopback port, blasting the frame set."""

    def __init__(self, markets: int, frames: int, depth_levels: int) -> None:
        super().__init__("sender.py", "--markets", markets, "--frames", frames,
                         "--depth-levels", depth_levels)
        self.info = self.read()
        self.info_json = orjson.dumps(self.info).decode()

    def blast(self, repeat: int) -> dict:
        return self.ask(f"blast {repeat}")

    def drop(self) -> dict:
        return self.ask("drop")


# What Prometheus 2.x sends: it prefers OpenMetrics and accepts gzip.
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
              "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}


def scrape(port: int, headers: dict[str, str] | None = None) -> tuple[float, bytes]:
    """(seconds, body) of one GET /metrics on a new connection, timed until the last byte.

    Without headers the exporter answers in the text format 0.0.4, uncompressed.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    started = time.perf_counter()
    conn.request("GET", "/metrics", headers=headers or {})
    response = conn.getresponse()
    body = response.read()
    seconds = time.perf_counter() - started
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"/metrics answered {response.status}")
    return seconds, body


def series(body: bytes) -> int:
    """Sample lines in a text exposition."""
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


class Pipeline(Child):
    """``throughput.py pipeline``: the real exporter, connected to the sender and ready."""

    def __init__(self, sender: Sender) -> None:
        super().__init__("throughput.py", "pipeline", sender.info_json)
        self.http_port = self.read()["http_port"]
