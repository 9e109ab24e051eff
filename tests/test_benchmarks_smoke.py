"""Smoke test of the benchmarks: ``benchmarks/run.py --quick`` runs and reports every row.

No timing is asserted (speed belongs to the benchmark's own report, not to tests);
this only proves that every benchmark still runs against the current code.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent

# One entry per row of the table, as its name starts.
ROWS = (
    "throughput: floor",
    "throughput: limit",
    "throughput: pipeline (real exporter)",
    "throughput: pipeline / floor",
    "throughput: pipeline / limit",
    "scrape 1k (",
    "scrape 1k, nothing changed",
    "scrape 10k (",
    "scrape 10k, nothing changed",
    "scrape 50k (",
    "scrape 50k, nothing changed",
    "scrape 10k as Prometheus asks",
    "scrape while saturated",
    "order book: OrderBook",
    "order book: naive sorted list",
    "memory: 500 markets x 200 levels",
    "memory soak:",
)


@pytest.mark.timeout(600)
def test_quick_run_prints_every_row(tmp_path):
    results = tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--json", str(results)],
        cwd=ROOT, capture_output=True, text=True, timeout=540, check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    table = run.stdout.splitlines()
    rows = orjson.loads(results.read_bytes())["rows"]
    assert len(rows) == len(ROWS)
    for prefix, row in zip(ROWS, rows, strict=True):
        assert row["name"].startswith(prefix), (prefix, row["name"])
        assert row["result"]
        printed = [line for line in table if line.startswith(row["name"])]
        assert len(printed) == 1, row["name"]
        assert row["result"] in printed[0]
    assert table[0].startswith("cryptomus-exporter benchmarks")


def test_only_runs_the_named_benchmarks_and_refuses_unknown_names(tmp_path):
    results = tmp_path / "results.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick"]
    run = subprocess.run([*command, "--only", "orderbook", "--json", str(results)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert list(orjson.loads(results.read_bytes())["results"]) == ["orderbook"]
    refused = subprocess.run([*command, "--only", "orderbook,speed"], cwd=ROOT,
                             capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2
    assert "unknown benchmark(s) speed" in refused.stderr
