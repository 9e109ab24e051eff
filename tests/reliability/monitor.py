"""Watchers the reliability tests run beside the exporter (greenlets in the same hub)."""

from __future__ import annotations

import math
import time

import gevent
from prometheus_client import CollectorRegistry

MONOTONIC_FAMILIES = ("counter", "histogram")
LIFETIME = 120.0  # a watcher left running by a failed test stops by itself
SampleKey = tuple[str, tuple[tuple[str, str], ...]]


def monotonic_samples(registry: CollectorRegistry) -> dict[SampleKey, float]:
    """Every sample that may only grow: counters, and histogram buckets, counts and sums."""
    values = {}
    for family in registry.collect():
        if family.type not in MONOTONIC_FAMILIES:
            continue
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


class CounterWatch:
    """Samples every counter of a registry before, during (every ``interval``) and after
    a test, and records each sample that went backwards or disappeared."""

    def __init__(self, registry: CollectorRegistry, interval: float = 0.02) -> None:
        self.registry = registry
        self.interval = interval
        self.samples = 0
        self.violations: list[str] = []
        self._last: dict[SampleKey, float] = {}
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> CounterWatch:
        self._take()
        self._greenlet = gevent.spawn(self._loop)
        return self

    def _loop(self) -> None:
        deadline = time.monotonic() + LIFETIME
        while time.monotonic() < deadline:
            gevent.sleep(self.interval)
            self._take()

    def _take(self) -> None:
        current = monotonic_samples(self.registry)
        for key, old in self._last.items():
            new = current.get(key)
            if new is None:
                self.violations.append(f"{key} disappeared (was {old})")
                current[key] = old
            elif new < old:
                self.violations.append(f"{key} went back from {old} to {new}")
        self._last = current
        self.samples += 1

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None
        self._take()

    def assert_monotonic(self) -> None:
        assert self.samples >= 3, "the counter watch did not sample before, during and after"
        assert not self.violations, "counters went backwards:\n" + "\n".join(self.violations[:20])


class BackoffSampler:
    """Records (time, connected, backoff gauge) every ``interval`` seconds."""

    def __init__(self, registry: CollectorRegistry, interval: float = 0.01) -> None:
        self.registry = registry
        self.interval = interval
        self.rows: list[tuple[float, float, float]] = []
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> BackoffSampler:
        self._greenlet = gevent.spawn(self._loop)
        return self

    def _loop(self) -> None:
        value = self.registry.get_sample_value
        deadline = time.monotonic() + LIFETIME
        while time.monotonic() < deadline:
            self.rows.append((time.monotonic(), value("cryptomus_websocket_connected"),
                              value("cryptomus_websocket_reconnect_backoff_seconds")))
            gevent.sleep(self.interval)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None

    def outage_values(self) -> list[float]:
        """Backoff gauge values seen while disconnected, once the first delay was set."""
        values = [backoff for _, connected, backoff in self.rows if connected == 0]
        first = next((i for i, backoff in enumerate(values) if backoff > 0), len(values))
        return values[first:]

    def delays(self) -> list[float]:
        """The successive delays handed out (each delay holds the gauge for its duration)."""
        delays: list[float] = []
        for backoff in self.outage_values():
            if not delays or not math.isclose(backoff, delays[-1], rel_tol=0, abs_tol=1e-12):
                delays.append(backoff)
        return delays
