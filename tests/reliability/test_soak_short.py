"""The soak's short form (60 s), run in CI: ``benchmarks/soak.py --duration 60``.

Deselect it locally with ``-m "not slow"``; the full soak is
``python benchmarks/soak.py`` (600 s by default).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import CLEAN_ENV

ROOT = Path(__file__).resolve().parents[2]
SOAK = ROOT / "benchmarks" / "soak.py"
DURATION = 60


@pytest.mark.slow
@pytest.mark.timeout(DURATION + 150)
def test_short_soak_survives_leaks_nothing_and_accounts_for_every_event(tmp_path):
    summary_path = tmp_path / "soak.json"
    result = subprocess.run(
        [sys.executable, str(SOAK), "--duration", str(DURATION), "--json", str(summary_path)],
        cwd=ROOT, env={**CLEAN_ENV, "PYTHONPATH": str(ROOT)},  # this checkout's exporter
        capture_output=True, text=True, timeout=DURATION + 140,
        check=False)
    report = result.stdout[-6000:] + result.stderr[-3000:]
    assert result.returncode == 0, report
    summary = json.loads(summary_path.read_text())
    assert summary["result"] == "pass", report
    assert summary["failures"] == []
    # Every kind of fault was injected, destructive ones both drained and under load.
    assert len(summary["faults_by_kind"]) == 13, summary["faults_by_kind"]
    assert summary["windows"]["exact"] >= 10 and summary["windows"]["under_load"] >= 2
    accounting = summary["accounting"]
    for title in ("trades", "fills", "order events", "balance changes", "frame errors"):
        assert accounting[title]["sent"] > 0, title
        assert accounting[title]["counted"] == \
            accounting[title]["sent"] - accounting[title]["lost_under_load"], title
    assert summary["reconnects"] >= 5
