"""The connection guard's rules with an exact clock: phases, deadlines, eviction,
refusal, the request limit and the rate-limited summary line."""

from __future__ import annotations

import pytest

from exporter.httpguard import (
    EVICTED,
    HEADERS,
    IDLE,
    REFUSED,
    REJECTED,
    REQUEST,
    SUMMARY_INTERVAL,
    TIMED_OUT,
    ConnectionGuard,
    HttpLimits,
)
from tests.support import ManualClock


@pytest.fixture
def clock():
    return ManualClock()


def guard_with(clock, closed: list, **limits) -> ConnectionGuard:
    return ConnectionGuard(HttpLimits(**limits), closed.append, clock=clock)


def test_each_phase_has_its_own_deadline_counted_from_entering_it(clock):
    closed: list = []
    guard = guard_with(clock, closed, read_header_timeout=5, write_timeout=30, idle_timeout=20)
    connection = guard.admit("a")
    assert (connection.phase, connection.deadline) == (HEADERS, 105.0)
    clock.now = 104.0
    guard.headers_done(connection)
    assert (connection.phase, connection.deadline) == (REQUEST, 134.0)
    clock.now = 110.0
    guard.request_done(connection)
    assert (connection.phase, connection.deadline) == (IDLE, 130.0)
    clock.now = 129.9
    assert guard.expire() == 0
    clock.now = 130.0
    assert guard.expire() == 1
    assert closed == ["a"] and connection.closing and len(guard) == 0
    assert guard.events == {(TIMED_OUT, "idle"): 1}


@pytest.mark.parametrize(("phase_steps", "label"), [
    ((), "headers"), (("headers_done",), "write"), (("headers_done", "request_done"), "idle")])
def test_timeouts_are_counted_by_phase(clock, phase_steps, label):
    guard = guard_with(clock, [])
    connection = guard.admit("a")
    for step in phase_steps:
        getattr(guard, step)(connection)
    clock.now += 1000
    guard.expire()
    assert guard.events == {(TIMED_OUT, label): 1}


def test_over_the_limit_the_oldest_waiting_connection_makes_room(clock):
    closed: list = []
    guard = guard_with(clock, closed, max_connections=3)
    first, second, third = (guard.admit(name) for name in "abc")
    guard.headers_done(first)  # in a request: never evicted
    clock.now += 1
    guard.request_done(first)  # now idle, but entered idle after b and c were accepted
    assert guard.admit("d") is not None
    assert closed == ["b"] and second.closing and not third.closing
    assert guard.admit("e") is not None
    assert closed == ["b", "c"]
    assert guard.admit("f") is not None
    assert closed == ["b", "c", "a"]
    assert len(guard) == 3
    assert guard.events == {(EVICTED, "headers"): 2, (EVICTED, "idle"): 1}


def test_when_every_connection_is_in_a_request_a_new_one_is_refused(clock):
    closed: list = []
    guard = guard_with(clock, closed, max_connections=2)
    for name in "ab":
        guard.headers_done(guard.admit(name))
    assert guard.admit("c") is None
    assert closed == [] and len(guard) == 2
    assert guard.events == {(REFUSED, "limit"): 1}


def test_release_is_idempotent_and_frees_the_slot(clock):
    guard = guard_with(clock, [], max_connections=1)
    connection = guard.admit("a")
    guard.headers_done(connection)
    guard.release(connection)
    guard.release(connection)
    assert len(guard) == 0
    assert guard.admit("b") is not None
    assert not guard.events


def test_requests_over_the_limit_are_rejected_and_zero_means_no_limit(clock):
    guard = guard_with(clock, [], max_requests=2)
    assert guard.begin_request() and guard.begin_request()
    assert not guard.begin_request()
    guard.end_request()
    assert guard.begin_request()
    assert guard.events == {(REJECTED, "max_requests"): 1}
    unlimited = guard_with(clock, [], max_requests=0)
    assert all(unlimited.begin_request() for _ in range(1000))


def test_the_summary_comes_at_once_then_at_most_once_per_interval(clock):
    guard = guard_with(clock, [], max_connections=1)
    assert guard.report() is None  # nothing happened
    guard.headers_done(guard.admit("a"))
    guard.admit("b")
    line = guard.report()
    assert line is not None and "1 connections refused (limit 1)" in line
    assert "1 of 1 connections open" in line
    for _ in range(50):
        guard.admit("c")
    guard.refused_for_descriptors()
    guard.rejected("bad_request")
    clock.now += SUMMARY_INTERVAL - 0.1
    assert guard.report() is None
    clock.now += 0.1
    line = guard.report()
    assert "51 connections refused (descriptors 1, limit 50)" in line
    assert "1 requests rejected (bad_request 1)" in line
    assert "timed out" not in line
    clock.now += SUMMARY_INTERVAL
    assert guard.report() is None  # nothing new


def test_idle_timeouts_are_routine_and_start_no_report(clock):
    guard = guard_with(clock, [], idle_timeout=1)
    for name in "ab":
        connection = guard.admit(name)
        guard.headers_done(connection)
        guard.request_done(connection)
    clock.now += 1
    assert guard.expire() == 2
    assert guard.events == {(TIMED_OUT, "idle"): 2}
    assert guard.report() is None
    guard.admit("c")
    clock.now += 10
    guard.expire()
    assert guard.report().startswith(
        "HTTP port under pressure, since the last report: 1 timed out (headers 1);")


def test_close_all_closes_every_open_connection(clock):
    closed: list = []
    guard = guard_with(clock, closed)
    for name in "abc":
        guard.admit(name)
    guard.close_all()
    assert sorted(closed) == ["a", "b", "c"] and len(guard) == 0
    assert not guard.events  # shutting down is not an attack


def test_the_deadline_check_runs_several_times_per_shortest_deadline():
    assert HttpLimits().tick == 0.25
    assert HttpLimits(read_header_timeout=0.2).tick == pytest.approx(0.05)
    assert HttpLimits(idle_timeout=0.01).tick == 0.02


def test_a_guard_needs_room_for_one_connection():
    with pytest.raises(ValueError, match="max_connections"):
        ConnectionGuard(HttpLimits(max_connections=0), lambda sock: None)
