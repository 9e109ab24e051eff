"""Protocol-faithful fake Cryptomus exchange (REST + WebSocket on one loopback port).

Implemented from ``cryptomus-protocol.md`` independently of the exporter's own
protocol code, so that each checks the other. Runs on gevent.
"""

from __future__ import annotations

from typing import Any

from .config import SimulatorConfig

__all__ = ["Simulator", "SimulatorConfig"]


def __getattr__(name: str) -> Any:
    # The exchange itself (wsproto, h11, the market model) loads only when used: the
    # exporter's CLI offers `simulate` and --demo, but production never runs them.
    if name == "Simulator":
        from .simulator import Simulator  # noqa: PLC0415

        return Simulator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
