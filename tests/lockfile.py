"""requirements/*.txt (pip-compile output, see .ci/lock) read back: pins, hashes, origins."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[1]
RUNTIME_LOCK = REPO_ROOT / "requirements" / "runtime.txt"
BUILD_LOCK = REPO_ROOT / "requirements" / "build.txt"
PROJECT = "cryptomus-exporter"

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)(?:\s*;\s*(.+?))?\s*\\?$")


@dataclass
class Pin:
    name: str
    version: str
    marker: str | None = None
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)


def read_lock(path: Path) -> dict[str, Pin]:
    """Every pinned package (canonical name -> Pin) with its hashes and ``# via`` origins."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    in_via = False
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        pin = _PIN.match(raw)
        if pin:
            current = Pin(canonicalize_name(pin[1]), pin[2], pin[3])
            pins[current.name] = current
            in_via = False
        elif current and line.startswith("--hash="):
            current.hashes.append(line.removeprefix("--hash=").rstrip(" \\"))
        elif current and line.startswith("# via"):
            rest = line.removeprefix("# via").strip()
            in_via = not rest
            if rest:
                current.via.append(rest)
        elif current and in_via and line.startswith("#   "):
            current.via.append(line.removeprefix("#").strip())
        elif not line.startswith("#"):
            in_via = False
    return pins
