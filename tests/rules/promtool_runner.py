"""Locate and run the real promtool binary (Debian package ``prometheus``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

DEBIAN_PROMTOOL = "/usr/bin/promtool"


def find_promtool() -> str | None:
    if os.access(DEBIAN_PROMTOOL, os.X_OK):
        return DEBIAN_PROMTOOL
    return shutil.which("promtool")


def run_promtool(promtool: str, *args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([promtool, *map(str, args)], capture_output=True, text=True,
                          timeout=60, check=False)
