"""The exporter's parser against the golden frames copied from the protocol spec.

The simulator is checked against the same fixture (tests/simulator/test_golden.py), so
the two independent implementations of the spec check each other.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from exporter import protocol

FRAMES = json.loads((Path(__file__).parents[1] / "fixtures" / "golden_frames.json")
                    .read_text())["frames"]


def decoded(name: str) -> dict:
    return protocol.decode(orjson.dumps(FRAMES[name]))


def test_requests_are_byte_for_byte_the_spec_shapes():
    assert orjson.loads(protocol.ping(0)) == FRAMES["ping_request"]
    assert orjson.loads(protocol.subscribe(7, "trade", ["BTC_USDT"])) == FRAMES["subscribe_request"]
    assert orjson.loads(protocol.unsubscribe(8, "depth", ["all"])) == {
        "id": 8, "method": "depth_unsubscribe", "params": ["all"]}


@pytest.mark.parametrize(("name", "expected"), [
    ("pong_response", protocol.Response(0, "pong", True, None, None)),
    ("subscribe_ack", protocol.Response(7, "trade_subscribe", True, None, None)),
    ("unsubscribe_ack", protocol.Response(0, None, True, None, None)),
    ("deal_subscribe_ack", protocol.Response(0, None, True, None, None)),
    ("subscribe_error",
     protocol.Response(7, "trade_subscribe", False, "already subscribed (code 2)", 2)),
    ("malformed_request_error",
     protocol.Response(7, "trade_subscribe", False, "invalid message format (code 1)", 1)),
])
def test_replies(name, expected):
    message = decoded(name)
    assert protocol.is_response(message.get("method"))
    assert protocol.parse_response(message) == expected


def test_lastprice():
    data = protocol.event_data(decoded("lastprice_update"))
    assert protocol.parse_lastprice(data) == ("BTC_USDT", 1750953362.0, 107152.55)


def test_ticker_change_is_a_ratio():
    ticker = protocol.parse_ticker(protocol.event_data(decoded("ticker_update")))
    assert ticker.symbol == "BTC_USDT"
    assert (ticker.open, ticker.high, ticker.low) == (107042.21, 108248.15, 106573.19)
    assert ticker.base_volume == 1531.027982
    assert ticker.quote_volume == 164564314.80174687
    assert ticker.change_ratio == pytest.approx(0.0004)


def test_depth():
    depth = protocol.parse_depth(protocol.event_data(decoded("depth_update")))
    assert depth.symbol == "BTC_USDT"
    assert depth.full_reload is False
    assert depth.scale_index == 0
    assert depth.asks == [["107043.93", "0.304313"]]
    assert depth.bids == [["106976.11", "0"]]


def test_trades_numbers_are_json_numbers():
    trades = protocol.parse_trades(protocol.event_data(decoded("trade_update")))
    assert trades.trades == (protocol.Trade(107100.01, 0.000254, "buy"),)


@pytest.mark.parametrize(("name", "event", "state"), [
    ("order_update_created", "created", None),
    ("order_update_updated", "updated", None),
    ("order_update_finished", "finished", "completed"),
])
def test_orders_with_string_event_ids(name, event, state):
    message = decoded(name)
    assert message["id"] == "3"
    order = protocol.parse_order(protocol.event_data(message))
    assert order == (event, "01JYET5DQ772MPYHHE417FQF1J", "TRX_USDT", "sell", state)


def test_balance_and_deal():
    balance = protocol.parse_balance(protocol.event_data(decoded("balance_update")))
    assert balance == ("USDT", 39950.0)
    deal = protocol.parse_deal(protocol.event_data(decoded("deal_update")))
    assert deal.symbol == "TRX_USDT"
    assert deal.role in protocol.ROLES
    assert deal.quantity > 0 and deal.value > 0 and deal.fee >= 0


def test_rest_payloads():
    assert protocol.parse_token(FRAMES["token_response"]) == FRAMES["token_response"]["token"]
    assert protocol.parse_scales(FRAMES["symbol_scales_response"]) == {0: 0.01}
    assert protocol.parse_markets(FRAMES["market_list_response"])[0] == ("BTC_USDT", "BTC", "USDT")
    assert protocol.parse_balances(FRAMES["balance_response"]) == [
        protocol.Balance("USDT", 39950.0, 0.0)]
    assert protocol.parse_open_orders(FRAMES["orders_response"])[0] == (
        "01JYET5DQ772MPYHHE417FQF1J", "TRX_USDT", "sell")


@pytest.mark.parametrize(("payload", "parser"), [
    ({"token": 5}, protocol.parse_token),
    ({"result": "nope"}, protocol.parse_balances),
    ({"result": [{"ticker": "USDT", "available": "x", "held": "0"}]}, protocol.parse_balances),
    ({"data": [{"scale": "0.01", "index": "0"}]}, protocol.parse_scales),
    ("<html>", protocol.parse_markets),
])
def test_bad_rest_payloads_raise_protocol_errors(payload, parser):
    with pytest.raises(protocol.ProtocolError):
        parser(payload)


def test_oversized_frames_are_rejected_before_parsing():
    with pytest.raises(protocol.ProtocolError) as error:
        protocol.decode(b" " * (protocol.MAX_FRAME_BYTES + 1))
    assert error.value.reason == protocol.TOO_LARGE
