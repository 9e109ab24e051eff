"""Protocol-faithful fake Cryptomus exchange (REST + WebSocket on one loopback port).

Implemented from ``cryptomus-protocol.md`` independently of the exporter's own
protocol code, so that each checks the other. Runs on gevent.
"""

from .config import SimulatorConfig
from .simulator import Simulator

__all__ = ["Simulator", "SimulatorConfig"]
