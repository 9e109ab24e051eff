"""Helpers shared by the integration and end-to-end tests (no fakes of our own code)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

import requests

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOMUS_")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout: float = 10.0, interval: float = 0.05,
             what: str = "condition"):
    """Poll until ``condition()`` is truthy; return its value. Bounded by ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def exporter_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "exporter", *args]


def run_exporter(args: Sequence[str], env: dict | None = None, timeout: float = 30.0):
    return subprocess.run(exporter_command(*args), env={**CLEAN_ENV, **(env or {})},
                          capture_output=True, text=True, timeout=timeout, check=False)


def scrape(port: int, path: str = "/metrics") -> str:
    response = requests.get(f"http://127.0.0.1:{port}{path}", timeout=5)
    return response.text


def sample_value(text: str, name: str, labels: dict[str, str] | None = None) -> float | None:
    """The value of one sample in a text exposition (exact label match)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == (labels or {}):
                return sample.value
    return None


class ExporterProcess:
    """``python -m exporter`` as a child process on a free loopback port."""

    def __init__(self, *args: str, env: dict | None = None) -> None:
        self.port = free_port()
        self.args = [*args, "--web.listen-address", f"127.0.0.1:{self.port}"]
        self.env = {**CLEAN_ENV, **(env or {})}
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> ExporterProcess:
        self.process = subprocess.Popen(exporter_command(*self.args), env=self.env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True)
        wait_for(self._answers, timeout=20, what="the exporter's HTTP port")
        return self

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"exporter exited early:\n{self.process.stdout.read()}")
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).ok
        except requests.RequestException:
            return False

    def metrics(self) -> str:
        return scrape(self.port)

    def stop(self) -> tuple[int, str]:
        self.process.terminate()
        output, _ = self.process.communicate(timeout=15)
        return self.process.returncode, output

    def __exit__(self, *exc) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=10)
