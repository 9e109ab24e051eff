"""Liveness and readiness, kept apart on purpose.

Live: the process works (the supervisor greenlet is running). Ready: connected,
subscribed, and data arrived within the idle window, so a scrape shows live
numbers. A disconnected exporter stays live (restarting the pod would not bring
the exchange back) but is not ready.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Health:
    def __init__(
        self,
        data_window: float,
        last_event_time: Callable[[], float],
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        supervisor_alive: Callable[[], bool] = lambda: True,
    ) -> None:
        self.data_window = data_window
        self.last_event_time = last_event_time
        self.clock = clock
        self.wall_clock = wall_clock
        self.connected = False
        self.subscribed = False
        self.connected_at_wall = 0.0
        self.disconnected_since: float | None = clock()
        self.supervisor_alive = supervisor_alive

    def on_connected(self) -> None:
        self.connected = True
        self.connected_at_wall = self.wall_clock()
        self.disconnected_since = None

    def on_subscribed(self) -> None:
        self.subscribed = True

    def on_disconnected(self) -> None:
        if self.connected or self.disconnected_since is None:
            self.disconnected_since = self.clock()
        self.connected = False
        self.subscribed = False

    def disconnected_for(self) -> float:
        if self.disconnected_since is None:
            return 0.0
        return self.clock() - self.disconnected_since

    def live(self) -> tuple[bool, str]:
        if not self.supervisor_alive():
            return False, "the connection supervisor has stopped"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        if not self.connected:
            return False, "not connected to the exchange"
        if not self.subscribed:
            return False, "connected, waiting for subscription acknowledgements"
        last_event = self.last_event_time()
        if last_event < self.connected_at_wall:
            return False, "subscribed, no data received on this connection yet"
        age = self.wall_clock() - last_event
        if age > self.data_window:
            return False, f"no data for {age:.0f} s"
        return True, "ok"
