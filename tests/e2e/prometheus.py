"""A real Prometheus server (Debian package) for the end-to-end tests, and its HTTP API.

    with PrometheusServer(find_prometheus(), "my-job", ["127.0.0.1:9841"], [rules]) as prom:
        prom.wait_for_series('up{job="my-job"} == 1', timeout=30)
        prom.query("rate(x_total[1m])")

The server listens on a free loopback port with its configuration and TSDB in a temporary
directory, removed on exit; the process is ended by its pid.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import requests
import yaml

from tests.support import free_port, terminate, wait_for

DEBIAN_PROMETHEUS = "/usr/bin/prometheus"
HTTP_TIMEOUT = 5.0


def find_prometheus() -> str | None:
    if os.access(DEBIAN_PROMETHEUS, os.X_OK):
        return DEBIAN_PROMETHEUS
    return shutil.which("prometheus")


class PrometheusQueryError(AssertionError):
    """Prometheus rejected a query (parse or evaluation error)."""


def has_finite_value(samples: list[dict]) -> bool:
    """True if some sample of an instant query result is a number (not NaN or +-Inf)."""
    return any(math.isfinite(float(sample["value"][1])) for sample in samples)


def describe(samples: list[dict], limit: int = 5) -> str:
    """Samples as ``{labels} value`` lines, for assertion messages."""
    lines = [f"{sample['metric']} {sample['value'][1]}" for sample in samples[:limit]]
    if len(samples) > limit:
        lines.append(f"... {len(samples) - limit} more")
    return "\n".join(lines) or "(no samples)"


class PrometheusServer:
    """``prometheus`` scraping ``targets`` as job ``job`` every second, with ``rule_files``
    evaluated every second."""

    def __init__(self, binary: str, job: str, targets: Sequence[str],
                 rule_files: Sequence[Path] = (), interval: str = "1s") -> None:
        self.binary = binary
        self.job = job
        self.targets = list(targets)
        self.rule_files = [str(path) for path in rule_files]
        self.interval = interval
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.directory: Path | None = None
        self.process: subprocess.Popen | None = None
        self._log = None

    def config(self) -> dict:
        return {
            "global": {"scrape_interval": self.interval, "scrape_timeout": self.interval,
                       "evaluation_interval": self.interval},
            "rule_files": self.rule_files,
            "scrape_configs": [{"job_name": self.job,
                                "static_configs": [{"targets": self.targets}]}],
        }

    def __enter__(self) -> PrometheusServer:
        self.directory = Path(tempfile.mkdtemp(prefix="e2e-prometheus-"))
        config_path = self.directory / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(self.config()), encoding="utf-8")
        self._log = (self.directory / "prometheus.log").open("w+", encoding="utf-8")
        try:
            self.process = subprocess.Popen(
                [self.binary, f"--config.file={config_path}",
                 f"--storage.tsdb.path={self.directory / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=self._log, stderr=subprocess.STDOUT, cwd=self.directory)
            wait_for(self._ready, timeout=30, what="Prometheus to be ready")
        except BaseException:
            self.__exit__()
            raise
        return self

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited with {self.process.returncode}:\n"
                                 f"{self.log_tail()}")
        try:
            return requests.get(f"{self.url}/-/ready", timeout=1).ok
        except requests.RequestException:
            return False

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = (self.directory / "prometheus.log").read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def __exit__(self, *exc) -> None:
        terminate(self.process, timeout=15)
        if self._log is not None:
            self._log.close()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    # --- HTTP API -------------------------------------------------------------------

    def api(self, path: str, **params: str) -> dict:
        """The ``data`` of ``GET /api/v1/<path>``; raises PrometheusQueryError on an error."""
        response = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=HTTP_TIMEOUT)
        try:
            body = response.json()
        except ValueError:
            raise PrometheusQueryError(f"HTTP {response.status_code}: {response.text}") from None
        if body.get("status") != "success":
            raise PrometheusQueryError(f"{body.get('errorType')}: {body.get('error')} "
                                       f"(params {params})")
        if body.get("warnings"):
            raise PrometheusQueryError(f"warnings {body['warnings']} (params {params})")
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """An instant query: its samples as ``{"metric": {...}, "value": [t, "v"]}``."""
        data = self.api("query", query=expr)
        if data["resultType"] == "vector":
            return data["result"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        raise PrometheusQueryError(f"{expr!r} returned a {data['resultType']}, not a vector")

    def wait_for_samples(self, expr: str, timeout: float,
                         accept: Callable[[list[dict]], bool] = bool) -> list[dict]:
        """Poll ``expr`` until ``accept(samples)``; at least one query even if ``timeout`` is 0.

        Raises with the last result if the time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            samples = self.query(expr)
            if accept(samples):
                return samples
            if time.monotonic() >= deadline:
                raise AssertionError(f"no acceptable result for {expr!r} within {timeout:.0f} s; "
                                     f"last result:\n{describe(samples)}")
            time.sleep(0.25)

    def wait_for_series(self, expr: str, timeout: float) -> list[dict]:
        """Poll until ``expr`` returns at least one series."""
        return self.wait_for_samples(expr, timeout)

    def alerts(self) -> list[dict]:
        """Active (pending or firing) alerts."""
        return self.api("alerts")["alerts"]

    def rule_groups(self) -> list[dict]:
        return self.api("rules")["groups"]

    def wait_for_rule_evaluation(self, timeout: float = 15) -> list[dict]:
        """Wait until every rule group has been evaluated after this call; its groups."""
        since = datetime.now(UTC)

        def evaluated_groups() -> list[dict] | None:
            groups = self.rule_groups()
            evaluated = groups and all(
                datetime.fromisoformat(group["lastEvaluation"]) > since for group in groups)
            return groups if evaluated else None

        return wait_for(evaluated_groups, timeout=timeout, interval=0.2,
                        what="every rule group to be evaluated once more")
