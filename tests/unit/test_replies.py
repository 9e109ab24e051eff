"""Replies to our requests: matched by id, else to the oldest request that fits."""

from __future__ import annotations

import pytest

from exporter.protocol import Response
from exporter.replies import Replies
from tests.support import ManualClock


@pytest.fixture
def replies():
    clock = ManualClock()
    rtts: list[float] = []
    unexpected: list[str] = []
    return Replies(on_rtt=rtts.append, on_unexpected=unexpected.append, clock=clock), (
        clock, rtts, unexpected)


def ok(request_id, method):
    return Response(request_id, method, True, None, None)


def test_a_reply_goes_to_the_request_with_its_id(replies):
    matcher, _ = replies
    first = matcher.expect(1, "trade_subscribe")
    second = matcher.expect(2, "depth_subscribe")
    matcher.match(ok(2, "depth_subscribe"))
    assert second.get(block=False) == ok(2, "depth_subscribe")
    assert not first.ready()


def test_an_ack_without_id_or_method_goes_to_the_oldest_request(replies):
    matcher, _ = replies
    first = matcher.expect(1, "depth_unsubscribe")
    second = matcher.expect(2, "trade_subscribe")
    matcher.match(ok(0, None))
    assert first.ready() and not second.ready()
    matcher.match(ok(0, "trade_subscribe"))  # id 0, but the method says which
    assert second.ready()


def test_pongs_give_round_trips_and_strays_are_reported(replies):
    matcher, (clock, rtts, unexpected) = replies
    matcher.ping_sent(5)
    clock.now += 0.25
    assert matcher.oldest_ping_age() == 0.25
    matcher.match(ok(5, "pong"))
    assert rtts == [0.25]
    assert matcher.oldest_ping_age() is None
    matcher.match(ok(9, "trade_subscribe"))
    assert unexpected == ["reply to no pending request"]


def test_closing_fails_every_waiting_request(replies):
    matcher, _ = replies
    waiting = matcher.expect(1, "trade_subscribe")
    matcher.fail_all(ConnectionError("connection closed"))
    with pytest.raises(ConnectionError):
        waiting.get(block=False)


@pytest.mark.parametrize("pong_id", [0, None, 77])
def test_a_pong_with_id_0_missing_or_unknown_answers_the_oldest_ping(replies, pong_id):
    matcher, (clock, rtts, unexpected) = replies
    matcher.ping_sent(5)
    clock.now += 1.0
    matcher.ping_sent(6)
    clock.now += 0.5
    matcher.match(ok(pong_id, "pong"))
    assert rtts == [1.5]  # the ping sent first
    assert matcher.oldest_ping_age() == 0.5
    matcher.match(ok(pong_id, "pong"))
    assert rtts == [1.5, 0.5]
    assert matcher.oldest_ping_age() is None
    matcher.match(ok(pong_id, "pong"))  # nothing waits: ignored, not an error
    assert rtts == [1.5, 0.5] and unexpected == []


def test_a_pong_with_a_known_id_answers_that_ping(replies):
    matcher, (clock, rtts, _) = replies
    matcher.ping_sent(5)
    clock.now += 1.0
    matcher.ping_sent(6)
    clock.now += 0.5
    matcher.match(ok(6, "pong"))
    assert rtts == [0.5]
    assert matcher.oldest_ping_age() == 1.5
