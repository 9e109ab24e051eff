"""Protocol-faithful fake Cryptomus exchange (REST + WebSocket on one loopback port).

Implemented from ``cryptomus-protocol.md`` independently of the exporter's own
protocol code, so that each checks the other. Runs on gevent.

Modules, leaves first (each part gets what it needs at construction; only
``simulator.py`` composes them, and only the entry points import it):

- ``wire``, ``config``, ``stats``: channel tables and frame encoding; the validated
  configuration (switches included); counters.
- ``market``, ``account``, ``catalog``, ``world``: the pure model (books, the account's
  activity, what is listed and subscribable, the seeded event generator).
- ``connection``: one WebSocket (reader, batching writer); ``hub``: all of them, and
  everything sent to several (events, pushes, blasts, idle closes).
- ``faults``: injected misbehaviour; ``dispatch``: client requests (ping, subscribe,
  unsubscribe) and the book reloads after a depth subscribe.
- ``generator`` (clock and paced generation) and ``replay`` (a recording served back):
  the two feeds.
- ``replies``, ``rest`` (the exchange's REST hosts), ``control`` (the loopback-only
  ``/_sim/`` control plane), ``server`` (HTTP/1.1, TLS, WebSocket upgrade).
- ``simulator``: the composition and the in-process API; ``cli``: ``simulate``.
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
