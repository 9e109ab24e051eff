"""Frames -> state -> exact metric values, on a fresh registry per test: the frame
handler, the channels' apply functions and the collectors together."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from exporter import protocol
from exporter.frames import FrameHandler
from exporter.logs import Redactor
from exporter.samples import FrameSamples
from exporter.state import account, market
from exporter.state import link as records

from . import feed as feed_module

NOW = 1_750_953_400.0


class Feed(feed_module.Feed):
    def __init__(self, **state_options) -> None:
        super().__init__(NOW, **state_options)

    @property
    def resyncs(self) -> int:
        assert set(self.resubscribed) <= {"depth"}
        return len(self.resubscribed)

    def depth(self, symbol: str, bids, asks, full_reload: bool, scale_index=0) -> None:
        self.send("depth_update", {"symbol": symbol, "timestamp": 1750952911,
                                   "full_reload": full_reload, "scale_index": scale_index,
                                   "bids": bids, "asks": asks})


@pytest.fixture
def feed() -> Feed:
    return Feed()


def test_lastprice_sets_price_and_update_time(feed):
    feed.send("lastprice_update", {"symbol": "BTC_USDT", "timestamp": 1750953362,
                                   "price": "107152.55"})
    assert feed.value("last_price", market="BTC_USDT") == 107152.55
    assert feed.value("market_last_update_timestamp_seconds", market="BTC_USDT",
                      channel="lastprice") == NOW
    assert feed.value("websocket_messages_total", method="lastprice_update") == 1


def test_ticker_maps_every_field_and_percent_to_ratio(feed):
    feed.send("ticker_update", {
        "symbol": "BTC_USDT", "timestamp": 1750953144, "price": "107090.35",
        "open": "107042.21", "high": "108248.15", "low": "106573.19",
        "volume": "1531.027982", "quote_volume": "164564314.80174687", "price_change": "0.04"})
    assert feed.value("ticker_open_price", market="BTC_USDT") == 107042.21
    assert feed.value("ticker_high_price", market="BTC_USDT") == 108248.15
    assert feed.value("ticker_low_price", market="BTC_USDT") == 106573.19
    assert feed.value("ticker_base_volume", market="BTC_USDT") == 1531.027982
    assert feed.value("ticker_quote_volume", market="BTC_USDT") == 164564314.80174687
    assert feed.value("ticker_price_change_ratio", market="BTC_USDT") == pytest.approx(0.0004)


def test_book_spread_levels_and_depth_bands(feed):
    feed.depth("BTC_USDT",
               bids=[["99", "1"], ["98.5", "2"], ["97", "4"]],
               asks=[["101", "1.5"], ["101.5", "3"], ["103", "5"]], full_reload=True)
    # mid 100; bands 0.005 -> [99.5, 100.5] (nothing), 0.01 -> [99, 101], 0.02 -> [98, 102]
    assert feed.value("orderbook_best_bid_price", market="BTC_USDT") == 99
    assert feed.value("orderbook_best_ask_price", market="BTC_USDT") == 101
    assert feed.value("orderbook_spread", market="BTC_USDT") == 2
    assert feed.value("orderbook_spread_ratio", market="BTC_USDT") == pytest.approx(0.02)
    assert feed.value("orderbook_levels", market="BTC_USDT", side="bid") == 3
    expected = {("bid", "0.005"): 0, ("bid", "0.01"): 1, ("bid", "0.02"): 3,
                ("ask", "0.005"): 0, ("ask", "0.01"): 1.5, ("ask", "0.02"): 4.5}
    for (side, band), quantity in expected.items():
        assert feed.value("orderbook_depth", market="BTC_USDT", side=side,
                          band=band) == pytest.approx(quantity), (side, band)
    feed.depth("BTC_USDT", bids=[["99", "0"], ["99.5", "2"]], asks=[], full_reload=False)
    assert feed.value("orderbook_best_bid_price", market="BTC_USDT") == 99.5
    assert feed.value("orderbook_levels", market="BTC_USDT", side="bid") == 3
    assert feed.resyncs == 0


def test_partial_before_reload_resyncs_once_until_resubscribed(feed):
    feed.depth("BTC_USDT", bids=[["99", "1"]], asks=[], full_reload=False)
    feed.depth("BTC_USDT", bids=[["98", "1"]], asks=[], full_reload=False)
    assert feed.resyncs == 1
    assert feed.value("orderbook_resyncs_total", market="BTC_USDT",
                      reason="partial_before_reload") == 1
    assert feed.value("orderbook_levels", market="BTC_USDT", side="bid") is None
    records.resubscribed(feed.state.link, "depth")
    feed.depth("BTC_USDT", bids=[["99", "1"]], asks=[["100", "1"]], full_reload=True)
    assert feed.value("orderbook_best_bid_price", market="BTC_USDT") == 99


def test_crossed_book_is_dropped_and_resynced(feed):
    feed.depth("ETH_USDT", bids=[["10", "1"]], asks=[["11", "1"]], full_reload=True)
    feed.depth("ETH_USDT", bids=[["12", "1"]], asks=[], full_reload=False)
    assert feed.resyncs == 1
    assert feed.value("orderbook_resyncs_total", market="ETH_USDT", reason="crossed") == 1
    assert feed.value("orderbook_best_bid_price", market="ETH_USDT") is None
    assert feed.resync_markets == ["ETH_USDT"]


def test_a_broken_book_leaves_the_others_until_the_resubscription(feed):
    feed.depth("BTC_USDT", bids=[["99", "1"]], asks=[["100", "1"]], full_reload=True)
    feed.depth("ETH_USDT", bids=[["10", "1"]], asks=[["11", "1"]], full_reload=True)
    feed.depth("ETH_USDT", bids=[["12", "1"]], asks=[], full_reload=False)  # crossed
    assert feed.value("orderbook_best_bid_price", market="ETH_USDT") is None
    feed.depth("BTC_USDT", bids=[["99.5", "1"]], asks=[], full_reload=False)
    assert feed.value("orderbook_best_bid_price", market="BTC_USDT") == 99.5
    market.depth_subscribing(feed.state, feed.now)  # the session unsubscribes depth: all reload
    assert feed.value("orderbook_best_bid_price", market="BTC_USDT") is None


def test_partials_before_a_late_full_book_are_dropped_without_a_resync(feed):
    market.depth_subscribing(feed.state, feed.now)  # just subscribed: the book may be late
    feed.depth("BTC_USDT", bids=[["99", "1"]], asks=[], full_reload=False)
    assert feed.value("orderbook_best_bid_price", market="BTC_USDT") is None
    assert feed.resubscribed == []
    feed.depth("BTC_USDT", bids=[["99", "1"]], asks=[["100", "1"]], full_reload=True)
    assert feed.value("orderbook_best_bid_price", market="BTC_USDT") == 99


def test_a_full_book_still_missing_after_the_grace_is_resubscribed(feed):
    market.depth_subscribing(feed.state, feed.now - market.LATE_BOOK_GRACE)
    feed.depth("BTC_USDT", bids=[["99", "1"]], asks=[], full_reload=False)
    assert feed.resync_markets == ["BTC_USDT"]
    assert feed.value("orderbook_resyncs_total", market="BTC_USDT",
                      reason="partial_before_reload") == 1


def test_a_resync_is_moot_once_every_broken_book_reloaded(feed):
    feed.depth("BTC_USDT", bids=[["99", "1"]], asks=[["100", "1"]], full_reload=True)
    feed.depth("ETH_USDT", bids=[["10", "1"]], asks=[["11", "1"]], full_reload=True)
    feed.depth("ETH_USDT", bids=[["12", "1"]], asks=[], full_reload=False)  # crossed
    assert market.still_broken(feed.state, ["ETH_USDT", "BTC_USDT", "NEW_USDT"]) == [
        "ETH_USDT", "NEW_USDT"]
    feed.depth("ETH_USDT", bids=[["10", "1"]], asks=[["11", "1"]], full_reload=True)
    assert market.still_broken(feed.state, ["ETH_USDT"]) == []


def test_malformed_level_is_counted_and_resyncs(feed):
    feed.depth("ETH_USDT", bids=[["10", "1"]], asks=[["11", "1"]], full_reload=True)
    feed.depth("ETH_USDT", bids=[["ten", "1"]], asks=[], full_reload=False)
    assert feed.value("websocket_message_errors_total", reason="bad_field") == 1
    assert feed.value("orderbook_resyncs_total", market="ETH_USDT", reason="invalid") == 1


def test_trades_count_and_sum_volumes_by_side(feed):
    feed.send("trade_update", {"symbol": "BTC_USDT", "timestamp": 1750953177, "trades": [
        {"price": 100.0, "quantity": 0.5, "timestamp": 1750953177, "direction": "buy"},
        {"price": 102.0, "quantity": 0.25, "timestamp": 1750953177, "direction": "buy"},
        {"price": 99.0, "quantity": 2, "timestamp": 1750953177, "direction": "sell"}]})
    assert feed.value("trades_total", market="BTC_USDT", side="buy") == 2
    assert feed.value("trades_total", market="BTC_USDT", side="sell") == 1
    assert feed.value("traded_base_volume_total", market="BTC_USDT", side="buy") == 0.75
    assert feed.value("traded_quote_volume_total", market="BTC_USDT", side="buy") == 75.5
    assert feed.value("traded_quote_volume_total", market="BTC_USDT", side="sell") == 198


def _order(kind: str, order_id: str, side: str = "sell", **extra):
    info = {"id": order_id, "symbol": "TRX_USDT", "orderType": "limit", "direction": side,
            "price": "0.22", "quantity": "50", "value": "11", "filledQuantity": "0",
            "filledValue": "0", "clientOid": None, "createTs": 1750696376, **extra}
    return {"type": kind, "info": info}


def test_open_orders_follow_created_and_finished(feed):
    feed.send("order_update", _order("created", "A"), frame_id="3")
    feed.send("order_update", _order("created", "B"), frame_id="3")
    feed.send("order_update", _order("updated", "B", updateTs=1750696400), frame_id="3")
    assert feed.value("open_orders", market="TRX_USDT", side="sell") == 2
    feed.send("order_update", _order("finished", "A", state="completed",
                                     internalState="filled", finishTs=1750696417), frame_id="3")
    assert feed.value("open_orders", market="TRX_USDT", side="sell") == 1
    assert feed.value("order_events_total", market="TRX_USDT", side="sell", event="created") == 2
    assert feed.value("orders_finished_total", market="TRX_USDT", side="sell",
                      state="completed") == 1
    feed.send("order_update", _order("finished", "B", state="weird"), frame_id="3")
    assert feed.value("orders_finished_total", market="TRX_USDT", side="sell", state="other") == 1
    assert feed.value("open_orders", market="TRX_USDT", side="sell") == 0


def test_rest_reconciliation_corrects_open_orders_and_balances(feed):
    feed.send("order_update", _order("created", "A"), frame_id="3")
    account.reconcile_open_orders(feed.state, [protocol.OpenOrder("X", "BTC_USDT", "buy"),
                                               protocol.OpenOrder("Y", "BTC_USDT", "buy")],
                                  NOW)
    assert feed.value("open_orders", market="TRX_USDT", side="sell") == 0
    assert feed.value("open_orders", market="BTC_USDT", side="buy") == 2
    account.reconcile_balances(feed.state, [protocol.Balance("USDT", 39950.0, 12.5)], NOW)
    assert feed.value("balance", currency="USDT") == 39950
    assert feed.value("balance_held", currency="USDT") == 12.5


def test_balance_update_sets_new_balance(feed):
    feed.send("balance_update", {"info": {
        "walletId": "01J7E836F6K5KCX5DP2W0F6FAG", "currencyCode": "USDT",
        "amount": "50.0000000000000000", "oldBalance": "40000.0000000000000000",
        "newBalance": "39950.00000000"}}, frame_id="4")
    assert feed.value("balance", currency="USDT") == 39950
    assert feed.value("balance_changes_total", currency="USDT") == 1


def _deal(deal_id: str, role: str, quantity: str, value: str, fee: str):
    return {"info": {"dealId": deal_id, "symbol": "BTC_USDT", "dealState": "completed",
                     "transactionId": "t" + deal_id, "filledPrice": "100",
                     "filledQuantity": quantity, "filledValue": value, "fee": fee,
                     "feeCurrency": "USDT", "tradeRole": role, "committedAt": 1750696417}}


def test_fills_sum_by_role_and_duplicates_count_once(feed):
    feed.send("deal_update", _deal("1", "taker", "0.5", "50", "0.05"), frame_id="1")
    feed.send("deal_update", _deal("2", "taker", "0.25", "25", "0.025"), frame_id="1")
    feed.send("deal_update", _deal("3", "maker", "1", "100", "0"), frame_id="1")
    feed.send("deal_update", _deal("3", "maker", "1", "100", "0"), frame_id="1")
    assert feed.value("fills_total", market="BTC_USDT", role="taker") == 2
    assert feed.value("fills_total", market="BTC_USDT", role="maker") == 1
    assert feed.value("filled_base_volume_total", market="BTC_USDT", role="taker") == 0.75
    assert feed.value("filled_quote_volume_total", market="BTC_USDT", role="taker") == 75
    assert feed.value("fees_total", currency="USDT") == pytest.approx(0.075)


@pytest.mark.parametrize(("frame", "reason"), [
    (b"not json", "invalid_json"),
    (b"[1, 2]", "not_an_object"),
    (b'{"id": 0, "method": "mystery_update", "data": {}}', "unknown_method"),
    (b'{"id": 0, "method": "lastprice_update", "data": {"symbol": "BTC_USDT", "price": []}}',
     "bad_field"),
    (b'{"id": 0, "method": "lastprice_update", "data": {"symbol": "BTC_USDT", "price": "NaN"}}',
     "bad_field"),
    (b'{"id": 0, "method": "lastprice_update", "data": null, "error": {"code": 2}}',
     "error_event"),
    (b'{"id": 0, "method": "trade_update", "data": {"symbol": "BTC_USDT", "trades": '
     b'[{"price": 1, "quantity": 1, "direction": "up"}]}}', "bad_field"),
])
def test_garbage_is_counted_and_later_frames_still_apply(feed, frame, reason):
    assert feed.handle(frame) is None
    assert feed.value("websocket_message_errors_total", reason=reason) == 1
    feed.send("lastprice_update", {"symbol": "BTC_USDT", "timestamp": 1, "price": "5"})
    assert feed.value("last_price", market="BTC_USDT") == 5


def test_replies_are_returned_to_the_session_with_either_id_type(feed):
    pong = feed.handle(b'{"id": 7, "method": "pong", "data": null, "error": null}')
    assert pong == protocol.Response(7, "pong", True, None, None)
    ack = feed.handle(b'{"id": "9", "data": {"status": "success"}, "error": null}')
    assert ack == protocol.Response(9, None, True, None, None)
    rejected = feed.handle(
        b'{"id": 3, "method": "trade_subscribe", "data": null, '
        b'"error": {"message": "already subscribed", "code": 2}}')
    assert rejected == protocol.Response(3, "trade_subscribe", False,
                                         "already subscribed (code 2)", 2)


@pytest.mark.parametrize(("frame", "why"), [
    (b'{"id": 7, "data": {"status": "failure"}, "error": null}', 'status "failure"'),
    (b'{"id": 7, "method": "trade_subscribe", "data": {"status": "failure", '
     b'"message": "market closed"}, "error": null}', 'status "failure": market closed'),
    (b'{"id": 7, "method": "trade_subscribe", "data": {}, "error": null}',
     "reply without a status"),
    (b'{"id": 7, "method": "trade_subscribe", "data": null, "error": null}',
     "reply without data"),
])
def test_an_ack_without_error_but_not_status_success_is_a_rejection(feed, frame, why):
    response = feed.handle(frame)
    assert response.ok is False
    assert response.error == why
    assert feed.value("websocket_message_errors_total", reason="bad_field") == 0


@pytest.mark.parametrize("subscribed", [0, 2])
def test_depth_of_another_scale_is_counted_and_never_touches_the_book(subscribed):
    feed = Feed(depth_scale=subscribed)
    other = 1
    feed.depth("BTC_USDT", [["100", "1"]], [["101", "1"]], True, scale_index=subscribed)
    feed.depth("BTC_USDT", [["90", "5"]], [["95", "5"]], True, scale_index=other)
    feed.depth("BTC_USDT", [["101.5", "1"]], [], False, scale_index=other)  # would cross
    assert feed.value("orderbook_best_bid_price", market="BTC_USDT") == 100
    assert feed.value("orderbook_best_ask_price", market="BTC_USDT") == 101
    assert feed.value("websocket_message_errors_total", reason="unsubscribed_scale") == 2
    assert feed.resyncs == 0
    feed.depth("BTC_USDT", [["100.5", "1"]], [], False, scale_index=None)  # no scale: ours
    assert feed.value("orderbook_best_bid_price", market="BTC_USDT") == 100.5


def test_configured_markets_bound_labels():
    feed = Feed(markets=("BTC_USDT",))
    feed.send("lastprice_update", {"symbol": "DOGE_USDT", "timestamp": 1, "price": "1"})
    assert feed.value("last_price", market="DOGE_USDT") is None
    assert feed.value("websocket_message_errors_total", reason="unexpected_market") == 1


def test_market_limit_with_all():
    feed = Feed(max_markets=2)
    for symbol in ("A_USDT", "B_USDT", "C_USDT"):
        feed.send("lastprice_update", {"symbol": symbol, "timestamp": 1, "price": "1"})
    assert feed.value("last_price", market="B_USDT") == 1
    assert feed.value("last_price", market="C_USDT") is None
    assert feed.value("websocket_message_errors_total", reason="market_limit") == 1


def test_expiry_removes_market_gauges_but_keeps_counters(feed):
    feed.send("lastprice_update", {"symbol": "BTC_USDT", "timestamp": 1, "price": "5"})
    feed.send("trade_update", {"symbol": "BTC_USDT", "timestamp": 1, "trades": [
        {"price": 5, "quantity": 1, "timestamp": 1, "direction": "buy"}]})
    feed.depth("BTC_USDT", bids=[["4", "1"]], asks=[["6", "1"]], full_reload=True)
    market.expire(feed.state)
    text = generate_latest(feed.registry).decode()
    assert 'cryptomus_last_price{market="BTC_USDT"}' not in text
    assert "cryptomus_orderbook_best_bid_price{" not in text
    assert "cryptomus_market_last_update_timestamp_seconds{" not in text
    assert feed.value("trades_total", market="BTC_USDT", side="buy") == 1
    feed.send("lastprice_update", {"symbol": "BTC_USDT", "timestamp": 2, "price": "6"})
    assert feed.value("last_price", market="BTC_USDT") == 6


def test_an_unexpected_handler_error_costs_one_frame_not_the_reader(feed, monkeypatch):
    def broken(message, now):
        raise RuntimeError("bug")

    monkeypatch.setitem(feed.frames.routes, "ticker_update", broken)
    for _ in range(3):
        assert feed.send("ticker_update", {"symbol": "BTC_USDT"}) is None
    assert feed.value("websocket_message_errors_total", reason="internal_error") == 3
    feed.send("lastprice_update", {"symbol": "BTC_USDT", "timestamp": 1, "price": "7"})
    assert feed.value("last_price", market="BTC_USDT") == 7


def test_frames_not_understood_are_sampled_first_five_then_one_per_ten_minutes(caplog):
    redactor = Redactor()
    redactor.add("s3cret-key")
    clock = [0.0]
    state = Feed().state
    handler = FrameHandler(state, on_reply=lambda r: None, on_resync=lambda c, m: None,
                           samples=FrameSamples(redactor, clock=lambda: clock[0]))
    caplog.set_level("WARNING", logger="exporter.frames")

    def lines():
        return [r.getMessage() for r in caplog.records
                if r.getMessage().startswith("frame not understood, reason invalid_json")]

    for _ in range(7):
        handler.handle(b'{"key": "s3cret-key"')
    assert len(lines()) == 5
    clock[0] += 599.0
    handler.handle(b'{"key": "s3cret-key"')
    assert len(lines()) == 5
    clock[0] += 1.0
    handler.handle(b'{"key": "s3cret-key"')
    assert len(lines()) == 6
    assert "3 more since the last sample" in lines()[-1]
    assert all("s3cret-key" not in line and "<redacted>" in line for line in lines())
    assert state.link.errors["invalid_json"].value == 9
