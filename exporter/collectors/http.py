"""The metrics port's own health: connections open against the limit, and what the
connection guard refused, timed out, evicted or rejected (its books, read at scrape time)."""

from __future__ import annotations

import time

from prometheus_client.core import Metric

from ..httpguard import (
    EVICTABLE_PHASES,
    EVICTED,
    REFUSE_REASONS,
    REFUSED,
    REJECT_REASONS,
    REJECTED,
    TIMED_OUT,
    TIMEOUT_PHASES,
    ConnectionGuard,
)
from .families import TableCollector, add_counter, families

# Every labelled series from the start (at 0), so increase() sees the first event.
_COUNTED = ((REFUSED, "reason", REFUSE_REASONS),
            (TIMED_OUT, "phase", tuple(TIMEOUT_PHASES.values())),
            (EVICTED, "phase", EVICTABLE_PHASES),
            (REJECTED, "reason", REJECT_REASONS))


class HttpCollector(TableCollector):
    NAMES = ("http_connections_open", "http_connections_limit",
             "http_connections_refused_total", "http_connections_timed_out_total",
             "http_connections_evicted_total", "http_requests_rejected_total")

    def __init__(self, guard: ConnectionGuard, created: float | None = None) -> None:
        self.guard = guard
        self.created = time.time() if created is None else created
        self._labels = {event: [(value, {label: value}) for value in values]
                        for event, label, values in _COUNTED}

    def collect(self) -> list[Metric]:
        guard = self.guard
        result = families(self.NAMES)
        open_now, limit, *counters = result
        open_now.add_metric([], float(len(guard)))
        limit.add_metric([], float(guard.limits.max_connections))
        events = guard.events
        for metric, (event, _, _) in zip(counters, _COUNTED, strict=True):
            for value, labels in self._labels[event]:
                add_counter(metric, labels, float(events[(event, value)]), self.created)
        return result
