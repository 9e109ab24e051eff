"""The exporter as a child process (``python -m exporter`` or a driver script), with
its output in a file (a pipe nobody reads would block a chatty debug log)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import requests

from tests.support import CLEAN_ENV, exporter_command, free_port, wait_for

FAST_FLAGS = (
    "--websocket.ping-interval", "0.3", "--websocket.pong-timeout", "0.5",
    "--websocket.idle-timeout", "1.5", "--websocket.subscribe-timeout", "1",
    "--websocket.backoff-min", "0.05", "--websocket.backoff-max", "0.2",
    "--collector.reconcile-interval", "0.5", "--cryptomus.request-timeout", "2",
)


def simulator_env(sim, api_key: str, ws_url: str | None = None) -> dict[str, str]:
    """Secrets through the environment, as the exporter requires (never a flag)."""
    return {
        "CRYPTOMUS_USER_ID": sim.config.user_id,
        "CRYPTOMUS_API_KEY": api_key,
        "CRYPTOMUS_WS_URL": ws_url or sim.ws_url,
        "CRYPTOMUS_API_URL": sim.base_url,
        "CRYPTOMUS_MARKET_API_URL": sim.base_url,
        "CRYPTOMUS_SCALES_API_URL": sim.base_url,
    }


class ExporterChild:
    def __init__(self, output: Path, *args: str, env: dict[str, str], script: Path | None = None,
                 scheme: str = "http", verify: object = True) -> None:
        self.port = free_port()
        self.output_path = output
        self.scheme = scheme
        self.verify = verify
        command = [sys.executable, str(script)] if script else exporter_command()
        self.command = [*command, *args, "--web.listen-address", f"127.0.0.1:{self.port}"]
        self.env = {**CLEAN_ENV, **env}
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> ExporterChild:
        with self.output_path.open("w") as output:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=output,
                                            stderr=subprocess.STDOUT)
        wait_for(self._answers, timeout=20, what="the exporter's HTTP port")
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

    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, then the exit status (a clean stop is 0)."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=15)

    def __exit__(self, *exc) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
