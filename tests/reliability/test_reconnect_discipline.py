"""Reconnect discipline during an outage of known length: the exchange sees no more
token requests than the backoff allows, the delay is visible in
``websocket_reconnect_backoff_seconds`` (within its bounds, growing as the policy
says), and once the exchange is back the exporter is connected within one backoff
step (plus a small slack). Covers token 500 and 429 storms and refused upgrades
(HTTP status and TCP reset).

The bound: every delay is at least ``backoff_min`` (full jitter between the minimum
and the current ceiling), so in ``T`` seconds there are at most ``1 + T / backoff_min``
attempts, each of which asks for one token. A 429 carrying ``Retry-After: 1`` raises
the floor of the next delay to 1 s (capped at ``backoff_max``).
"""

from __future__ import annotations

import math
import time

import gevent
import pytest

from exporter.rest import retry_after_seconds
from tests.reliability.checks import (
    assert_one_token_per_attempt,
    connect_failures,
    probe,
    push_sentinel,
)
from tests.reliability.monitor import BackoffSampler

BACKOFF_MIN, BACKOFF_MAX = 0.2, 1.0
OUTAGE = 2.5
SLACK = 1.5  # a connection set-up on a loaded CI machine, beyond the one backoff step
SIM_RETRY_AFTER = 1.0  # the simulator's 429 carries Retry-After: 1


def token_requests(sim) -> int:
    return sim.stats.tokens_issued + sim.stats.token_failures


def ceiling(attempt: int) -> float:
    return min(BACKOFF_MAX, BACKOFF_MIN * 2 ** attempt)


def run_outage(harness, start_outage, end_outage, *, floor: float | None = None) -> dict:
    """Start an outage, hold it ``OUTAGE`` seconds, end it, wait for the reconnect.

    Returns what was measured; asserts the token bound (every delay is at least
    ``floor``, by default backoff_min), the gauge bounds and the recovery bound."""
    sim = harness.sim
    minimum, maximum = harness.exporter.settings.backoff_min, harness.exporter.settings.backoff_max
    push_sentinel(harness)
    sampler = BackoffSampler(harness.exporter.registry).start()
    try:
        requests_before = token_requests(sim)
        started = time.monotonic()
        start_outage()
        sim.faults.drop_connections()
        harness.wait_value("websocket_connected", 0, timeout=OUTAGE)
        gevent.sleep(max(0.0, OUTAGE - (time.monotonic() - started)))
        assert harness.value("websocket_connected") == 0
        assert probe(harness, "/readyz") == 503
        assert probe(harness, "/healthz") == 200
        end_outage()
        elapsed = time.monotonic() - started
        requests = token_requests(sim) - requests_before
        harness.wait_connected(connects=2, timeout=maximum + SLACK)
        recovery = time.monotonic() - started - elapsed
    finally:
        sampler.stop()
    bound = 1 + math.floor(elapsed / (floor or minimum))
    assert 1 <= requests <= bound, f"{requests} token requests in {elapsed:.2f} s (bound {bound})"
    outage = sampler.outage_values()
    assert outage, "the backoff gauge was never seen during the outage"
    assert all(minimum <= value <= maximum for value in outage), outage
    assert harness.value("websocket_reconnect_backoff_seconds") == 0
    assert_one_token_per_attempt(harness)
    push_sentinel(harness)
    return {"requests": requests, "bound": bound, "recovery": recovery,
            "delays": sampler.delays()}


def assert_delays_follow_the_policy(delays: list[float]) -> None:
    """Delay k (the first after the drop is k = 0) lies in [min, min(max, min * 2**k)]."""
    assert len(delays) >= 2
    for attempt, delay in enumerate(delays):
        assert BACKOFF_MIN <= delay <= ceiling(attempt) + 1e-9, (attempt, delays)


def test_token_500_storm(monitored):
    h = monitored(backoff_min=BACKOFF_MIN, backoff_max=BACKOFF_MAX)
    measured = run_outage(h, lambda: h.sim.faults.fail_token(10**6, 500), h.sim.faults.clear)
    assert_delays_follow_the_policy(measured["delays"])
    failures = connect_failures(h)["token"]
    assert failures == h.sim.stats.token_failures == measured["requests"]
    assert h.value("api_requests_total", endpoint="token", code="500") == failures


def test_token_429_storm_honours_retry_after(monitored):
    h = monitored(backoff_min=0.05, backoff_max=BACKOFF_MAX)
    measured = run_outage(h, lambda: h.sim.faults.fail_token(10**6, 429), h.sim.faults.clear,
                          floor=min(SIM_RETRY_AFTER, BACKOFF_MAX))
    # After each 429 the delay is max(jitter, min(Retry-After, backoff_max)) = 1 s here.
    assert measured["delays"][-1] == pytest.approx(min(SIM_RETRY_AFTER, BACKOFF_MAX))
    assert h.value("api_requests_total", endpoint="token", code="429") == \
        h.sim.stats.token_failures == connect_failures(h)["token"] >= 1


@pytest.mark.parametrize("mode", ["status", "reset"])
def test_refused_upgrades(monitored, mode):
    h = monitored(backoff_min=BACKOFF_MIN, backoff_max=BACKOFF_MAX)
    measured = run_outage(h, lambda: h.sim.faults.refuse_connections(OUTAGE, mode=mode),
                          lambda: None)
    assert_delays_follow_the_policy(measured["delays"])
    # Each refused upgrade is one connect failure, and its token is spent.
    assert connect_failures(h)["connect"] == h.sim.stats.connections_rejected >= 1
    assert connect_failures(h)["token"] == 0


@pytest.mark.parametrize(("header", "seconds"), [
    ("1", 1.0), (" 30 ", 30.0), ("0", 0.0), (None, None), ("", None), ("-1", None),
    ("1.5", None), ("²", None), ("Wed, 21 Oct 2015 07:28:00 GMT", None),
])
def test_retry_after_is_read_in_delta_seconds_only(header, seconds):
    assert retry_after_seconds(header) == seconds
