"""Helpers shared by the integration and end-to-end tests (no fakes of our own code)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import gevent
import pytest
import requests

OPENSSL = shutil.which("openssl")

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOMUS_")}


def make_self_signed(directory: Path, name: str = "server") -> tuple[Path, Path]:
    """A fresh self-signed certificate for localhost and 127.0.0.1, usable as its own CA:
    (``<name>.crt``, ``<name>.key``) in ``directory``, PEM, subject ``CN=<name>``. Made
    with the openssl command: the test is skipped without it, except in CI (a failure
    there: ``.ci/run`` installs it)."""
    if OPENSSL is None:
        if os.environ.get("CI"):
            pytest.fail("the openssl command is required in CI: apt-get install -y openssl")
        pytest.skip("the openssl command is needed to make a test certificate; in CI this fails")
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", f"/CN={name}",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


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


def terminate(process: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """SIGTERM a child still running, SIGKILL it after ``timeout`` s, and reap it."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate(timeout=10)


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
    """The exporter as a child process on a free loopback port: ``python -m exporter``,
    or a driver ``script`` taking the same flags.

    Its output goes to a file (``output``, or a temporary one): a pipe nobody reads
    until the end would block a chatty debug log once 64 KiB are written.
    """

    def __init__(self, *args: str, env: dict[str, str] | None = None,
                 output: Path | None = None, script: Path | None = None,
                 scheme: str = "http", verify: object = True) -> None:
        self.port = free_port()
        self.scheme = scheme
        self.verify = verify
        command = [sys.executable, str(script)] if script else exporter_command()
        self.command = [*command, *args, "--web.listen-address", f"127.0.0.1:{self.port}"]
        self.env = {**CLEAN_ENV, **(env or {})}
        self._scratch = None if output else tempfile.TemporaryDirectory(prefix="exporter-")
        self.output_path = output or Path(self._scratch.name) / "output.log"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> ExporterProcess:
        with self.output_path.open("w") as output:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=output,
                                            stderr=subprocess.STDOUT)
        try:
            wait_for(self._answers, timeout=20, what="the exporter's HTTP port")
        except BaseException:
            self.__exit__()
            raise
        return self

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"exporter exited early:\n{self.output()}")
        try:
            return self.get("/healthz").status_code == 200
        except requests.RequestException:
            return False

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(f"{self.scheme}://127.0.0.1:{self.port}{path}", timeout=5,
                            verify=self.verify, **kwargs)

    def metrics(self) -> str:
        return self.get("/metrics").text

    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, then the exit status (a clean stop is 0)."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=15)

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        if self._scratch is not None:
            self._scratch.cleanup()


SIMULATOR_BANNER = re.compile(r"REST (?P<base_url>http://\S+) WebSocket (?P<ws_url>ws://\S+)")


class SimulatorProcess:
    """``python -m exporter simulate`` as a child process on loopback.

    It listens on port 0 and the port it bound is read from its banner line, so no other
    process can take the port in between. ``exporter_env()`` points an exporter at it;
    ``fault(name, **params)`` injects a fault through its control endpoint.
    """

    USER_ID = "demo-user"
    API_KEY = "demo-api-key"

    def __init__(self, *args: str) -> None:
        self.args = ["simulate", "--listen", "127.0.0.1:0", *args]
        self.process: subprocess.Popen | None = None
        self.base_url = ""
        self.ws_url = ""

    def __enter__(self) -> SimulatorProcess:
        self.process = subprocess.Popen(exporter_command(*self.args), env=CLEAN_ENV,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True)
        try:
            with gevent.Timeout(20, AssertionError("the simulator printed no banner in 20 s")):
                banner = self.process.stdout.readline()
            match = SIMULATOR_BANNER.search(banner)
            if match is None:
                raise AssertionError(f"the simulator did not start: {banner!r}")
        except BaseException:
            self.__exit__()
            raise
        self.base_url, self.ws_url = match["base_url"], match["ws_url"]
        return self

    def exporter_env(self) -> dict[str, str]:
        """The environment that points an exporter at this simulator."""
        return {
            "CRYPTOMUS_USER_ID": self.USER_ID,
            "CRYPTOMUS_API_KEY": self.API_KEY,
            "CRYPTOMUS_WS_URL": self.ws_url,
            "CRYPTOMUS_API_URL": self.base_url,
            "CRYPTOMUS_MARKET_API_URL": self.base_url,
            "CRYPTOMUS_SCALES_API_URL": self.base_url,
        }

    def fault(self, name: str, **params: object) -> dict:
        """Inject fault ``name`` (``POST /_sim/faults/<name>``); returns the simulator's answer."""
        response = requests.post(f"{self.base_url}/_sim/faults/{name}", params=params, timeout=5)
        if response.status_code != 200:
            raise AssertionError(
                f"fault {name} {params}: HTTP {response.status_code} {response.text}")
        return response.json()

    def __exit__(self, *exc) -> None:
        terminate(self.process)


class ManualClock:
    """A clock the test moves by hand: ``clock.now += 5``."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now
