"""protocol.subscribe_failure: a subscription reply is a success only when ``error`` is null
AND ``data.status`` is "success"; otherwise it says what the exchange said, in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter import protocol
from exporter.protocol import MAX_REPLY_TEXT, subscribe_failure

FRAMES = json.loads((Path(__file__).parents[1] / "fixtures" / "golden_frames.json")
                    .read_text())["frames"]


@pytest.mark.parametrize("name", ["subscribe_ack", "unsubscribe_ack", "deal_subscribe_ack"])
def test_the_spec_acknowledgements_are_successes(name):
    assert subscribe_failure(FRAMES[name]) is None


@pytest.mark.parametrize(("name", "expected"), [
    ("subscribe_error", "already subscribed (code 2)"),
    ("malformed_request_error", "invalid message format (code 1)"),
])
def test_the_spec_errors_give_the_exchanges_message(name, expected):
    assert subscribe_failure(FRAMES[name]) == expected


@pytest.mark.parametrize(("reply", "expected"), [
    # The open point: error null, but the status is not "success".
    ({"id": 7, "data": {"status": "failure"}, "error": None}, 'status "failure"'),
    ({"id": 7, "method": "depth_subscribe", "data": {"status": "failure"}, "error": None},
     'status "failure"'),
    ({"id": 7, "data": {"status": "failure", "message": "no such market"}, "error": None},
     'status "failure": no such market'),
    ({"id": 7, "data": {"status": "Success"}, "error": None}, 'status "Success"'),
    ({"id": 7, "data": {"status": 1}, "error": None}, "status 1"),
    ({"id": 7, "data": {"status": ["success"]}, "error": None}, "status ['success']"),
    ({"id": 7, "data": {"status": 10 ** 30}, "error": None}, f"status {10 ** 30}"),
    ({"id": 7, "data": {"status": None}, "error": None}, "reply without a status"),
    ({"id": 7, "data": {}, "error": None}, "reply without a status"),
    ({"id": 7, "data": {"result": "ok"}}, "reply without a status"),
    # Missing or non-object data.
    ({"id": 7, "data": None, "error": None}, "reply without data"),
    ({"id": 7, "error": None}, "reply without data"),
    ({"id": 7}, "reply without data"),
    ({"id": 7, "data": "success", "error": None}, "data is a JSON str, not an object"),
    ({"id": 7, "data": ["success"], "error": None}, "data is a JSON list, not an object"),
    # Error objects win over a data.status of "success".
    ({"id": 7, "data": {"status": "success"}, "error": {"message": "denied", "code": 2}},
     "denied (code 2)"),
    ({"id": 7, "data": None, "error": {"message": "denied"}}, "denied"),
    ({"id": 7, "data": None, "error": {"message": "denied", "code": "2"}}, "denied"),
    ({"id": 7, "data": None, "error": {"code": 2}}, "error without a message (code 2)"),
    ({"id": 7, "data": None, "error": {"message": ""}}, "error without a message"),
    ({"id": 7, "data": None, "error": {}}, "error without a message"),
    ({"id": 7, "data": None, "error": "rate limited"}, "rate limited"),
    ({"id": 7, "data": None, "error": 2}, "error is a JSON int, not an object"),
    ({"id": 7, "data": None, "error": False}, "error is a JSON bool, not an object"),
    # The exchange's text is shown, but as one printable line.
    ({"id": 7, "data": None, "error": {"message": "bad\nmarket\x1b[31m"}},
     "bad\\nmarket\\x1b[31m"),
    ({"id": 7, "data": {"status": "fail\r\nure"}}, 'status "fail\\r\\nure"'),
])
def test_replies(reply, expected):
    assert subscribe_failure(reply) == expected


def test_a_long_message_is_cut():
    text = subscribe_failure({"error": {"message": "x" * 5000, "code": 2}})
    assert text == "x" * MAX_REPLY_TEXT + "... (code 2)"


def test_parse_response_applies_the_stricter_rule():
    """parse_response decides Response.ok with subscribe_failure (issue 13, item 3)."""
    reply = {"id": 7, "method": "trade_subscribe", "data": {"status": "failure"}, "error": None}
    response = protocol.parse_response(reply)
    assert not response.ok
    assert response.error == subscribe_failure(reply) == 'status "failure"'


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional={
    "id": JSON, "method": JSON, "error": JSON,
    "data": JSON | st.fixed_dictionaries({"status": JSON}, optional={"message": JSON})}))
def test_any_reply_decides_and_gives_one_bounded_printable_line(reply):
    failure = subscribe_failure(reply)
    data = reply.get("data")
    success = reply.get("error") is None and type(data) is dict and data.get(
        "status") == "success"
    assert (failure is None) == success
    if failure is not None:
        assert failure.isprintable()
        assert len(failure) <= 3 * MAX_REPLY_TEXT
