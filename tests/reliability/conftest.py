"""Fault, reconnect and secret tests: the in-process harness plus a counter watch."""

from __future__ import annotations

import pytest

from tests.integration.conftest import make_harness  # noqa: F401 (the shared fixture)
from tests.reliability.monitor import CounterWatch


@pytest.fixture
def monitored(make_harness):  # noqa: F811 (the fixture imported above)
    """Like ``make_harness``, and every counter is watched from start to teardown: a
    counter that goes backwards or disappears at any sample fails the test."""
    watches: list[CounterWatch] = []

    def build(**kwargs):
        harness = make_harness(**kwargs)
        harness.watch = CounterWatch(harness.exporter.registry).start()
        watches.append(harness.watch)
        return harness

    yield build
    for watch in watches:
        watch.stop()
        watch.assert_monotonic()
