"""An in-process exporter wired to an in-process simulator, over real loopback sockets."""

from __future__ import annotations

import io
import logging

import pytest
from prometheus_client import CollectorRegistry

from exporter.app import Exporter
from exporter.logs import Redactor, setup_logging
from exporter.settings import Settings
from exporter.simulator import Simulator, SimulatorConfig
from tests.support import wait_for

FAST = {
    "ping_interval": 0.3,
    "pong_timeout": 0.5,
    "idle_timeout": 1.5,
    "subscribe_timeout": 2.0,
    "request_timeout": 2.0,
    "backoff_min": 0.05,
    "backoff_max": 0.2,
    "backoff_reset_after": 30.0,
    "resync_min_interval": 0.1,
    "stale_after": 60.0,
    "reconcile_interval": 60.0,
}


class Harness:
    def __init__(self, sim: Simulator, exporter: Exporter, logs: io.StringIO) -> None:
        self.sim = sim
        self.exporter = exporter
        self.logs = logs

    def value(self, name: str, **labels: str) -> float | None:
        return self.exporter.registry.get_sample_value(f"cryptomus_{name}", labels)

    def wait_value(self, name: str, expected, timeout: float = 10.0, **labels: str):
        def matches():
            value = self.value(name, **labels)
            ok = expected(value) if callable(expected) else value == expected
            return ok
        wait_for(matches, timeout=timeout,
                 what=f"{name}{labels} == {expected} (now {self.value(name, **labels)})")

    def wait_connected(self, connects: int = 1, timeout: float = 10.0) -> None:
        self.wait_value("websocket_connects_total", lambda v: (v or 0) >= connects, timeout)
        self.wait_value("websocket_connected", 1, timeout)


@pytest.fixture
def make_harness():
    started: list[tuple[Simulator, Exporter]] = []
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)

    def build(sim_config: dict | None = None, wait: bool = True, **settings) -> Harness:
        sim = Simulator(SimulatorConfig(**{"host": "127.0.0.1", "port": 0, "seed": 7,
                                           "markets": ["BTC_USDT", "ETH_USDT", "TRX_USDT"],
                                           "rate": 0.0, "autogen": False,
                                           **(sim_config or {})}))
        sim.start()
        config = Settings(
            user_id=sim.config.user_id,
            api_key=sim.config.api_key,
            ws_url=sim.ws_url,
            api_url=sim.base_url,
            market_api_url=sim.base_url,
            scales_api_url=sim.base_url,
            listen_address="127.0.0.1:0",
            log_level="debug",
            **{**FAST, **settings},
        )
        logs = io.StringIO()
        redactor = Redactor()
        setup_logging("debug", "text", redactor, stream=logs)
        exporter = Exporter(config, registry=CollectorRegistry(), redactor=redactor)
        exporter.start()
        started.append((sim, exporter))
        harness = Harness(sim, exporter, logs)
        if wait:
            harness.wait_connected()
        return harness

    yield build
    for sim, exporter in reversed(started):
        exporter.stop()
        sim.stop()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
