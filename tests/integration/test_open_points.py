"""The exporter under every reading of the protocol's open points (issue 13), each one a
switch of the simulator, over loopback."""

from __future__ import annotations

import itertools
import time

import pytest

from exporter.simulator.wire import fixed
from tests.support import scrape, wait_for


def test_an_ack_with_status_failure_is_a_rejected_subscription(make_harness):
    h = make_harness(sim_config={"ack_failure_channels": ("trade",)})
    assert h.sim.stats.ack_failures_sent["trade"] == 1
    assert h.value("websocket_subscribe_failures_total", channel="trade") == 1
    assert h.value("websocket_subscriptions", channel="trade") == 0
    for channel in ("lastprice", "ticker", "depth", "order", "balance", "deal"):
        assert h.value("websocket_subscriptions", channel=channel) == 1
        assert h.value("websocket_subscribe_failures_total", channel=channel) == 0
    lines = [line for line in h.logs.getvalue().splitlines() if "rejected by the exchange" in line]
    assert len(lines) == 1
    assert 'subscription to trade rejected by the exchange: status "failure"' in lines[0]
    h.sim.push("lastprice", {"symbol": "BTC_USDT", "timestamp": 1, "price": "5"})
    h.wait_value("last_price", 5.0, market="BTC_USDT")
    wait_for(lambda: h.value("websocket_connected") == 1, what="still connected")


def test_pongs_with_id_0_answer_our_pings(make_harness):
    # ping every 0.3 s, pong timeout 0.5 s: one unmatched pong would reconnect within a second
    h = make_harness(sim_config={"pong_id_zero": True}, channels="lastprice")
    h.wait_value("websocket_ping_rtt_seconds_count", lambda v: (v or 0) >= 8, timeout=15)
    assert h.sim.stats.pings >= 8
    assert h.value("websocket_disconnects_total", reason="pong_timeout") == 0
    assert h.value("websocket_connects_total") == 1
    assert h.value("websocket_connected") == 1


def _scale0_top(sim, symbol):
    """The simulator's own scale-0 book: (best bid, best ask) as the exchange prints them."""
    book = sim.market(symbol)
    decimals = book.spec.price_decimals
    return (float(fixed(book.best_bid(), decimals)), float(fixed(book.best_ask(), decimals)))


def _exporter_top(h, symbol):
    return (h.value("orderbook_best_bid_price", market=symbol),
            h.value("orderbook_best_ask_price", market=symbol))


def test_interleaved_depth_scales_leave_the_subscribed_book_alone(make_harness):
    # depth "all" delivers scales 0 and 1 for every market, interleaved
    h = make_harness(sim_config={"depth_scales": (0, 1), "autogen": True, "rate": 400.0,
                                 "markets": ["BTC_USDT", "ETH_USDT"]}, channels="depth")
    h.wait_value("websocket_message_errors_total", lambda v: (v or 0) >= 50, timeout=20,
                 reason="unsubscribed_scale")
    h.wait_value("websocket_messages_total", lambda v: (v or 0) >= 100, method="depth_update")
    h.sim.pause()
    for symbol in ("BTC_USDT", "ETH_USDT"):
        wait_for(lambda s=symbol: _exporter_top(h, s) == _scale0_top(h.sim, s),
                 what=f"{symbol}'s best bid/ask equal to the simulator's scale-0 book")
        bid, ask = _scale0_top(h.sim, symbol)
        assert h.value("orderbook_spread", market=symbol) == pytest.approx(ask - bid)
        for reason in ("crossed", "partial_before_reload", "invalid"):
            assert h.value("orderbook_resyncs_total", market=symbol, reason=reason) == 0
    assert h.sim.stats.subscribe_requests["depth"] == 1  # never resubscribed


def _sample_lines(h, reason):
    return [line for line in h.logs.getvalue().splitlines()
            if f"frame not understood, reason {reason}" in line]


def test_frames_not_understood_are_logged_with_a_redacted_sample_then_rate_limited(
        make_harness):
    h = make_harness(channels="lastprice")
    key = h.sim.config.api_key
    garbage = [f'{{"oops": "{key}", "n": {n}'.encode() for n in range(8)]  # truncated JSON
    for frame in garbage:
        h.sim.push_raw(frame)
    h.wait_value("websocket_message_errors_total", 8.0, reason="invalid_json")
    lines = _sample_lines(h, "invalid_json")
    assert len(lines) == 5  # the first five, then at most one per 10 minutes
    assert all("WARNING" in line for line in lines)
    assert '{"oops": "<redacted>", "n": 0' in lines[0]
    assert key not in h.logs.getvalue()
    assert "sample 1 of the first 5" in lines[0]
    # another reason has a budget of its own
    h.sim.push_raw(b'{"id": 0, "method": "surprise_update", "data": {}}')
    h.wait_value("websocket_message_errors_total", 1.0, reason="unknown_method")
    assert 'surprise_update' in _sample_lines(h, "unknown_method")[0]


def test_a_feed_that_keeps_crossing_the_book_backs_the_resyncs_off(make_harness):
    # resync_min_interval 0.1 s: without the backoff this storm would resubscribe ~60 times
    h = make_harness(markets="BTC_USDT,ETH_USDT", channels="depth,lastprice")
    stats = h.sim.stats
    wait_for(lambda: h.value("orderbook_best_bid_price", market="BTC_USDT"), what="a book")
    resubscribed_at: list[float] = []
    backoffs: list[float] = []
    deadline = time.monotonic() + 6.5
    while time.monotonic() < deadline:
        h.sim.faults.crossed_book("BTC_USDT")  # after every reload the book crosses again
        if stats.unsubscribe_requests["depth"] > len(resubscribed_at):
            resubscribed_at.append(time.monotonic())
        backoffs.append(h.value("orderbook_resync_backoff_seconds", market="BTC_USDT") or 0)
        time.sleep(0.05)
    # resyncs at about 0, 0.1, 1.1, 3.1 s (then 7.1 s): the gap doubles from 1 s
    assert 3 <= len(resubscribed_at) <= 5, resubscribed_at
    gaps = [later - earlier for earlier, later in itertools.pairwise(resubscribed_at)]
    for gap, floor in zip(gaps[1:], (1.0, 2.0, 4.0), strict=False):
        assert gap >= floor - 0.1, gaps
    assert max(backoffs) >= 4.0
    assert h.value("orderbook_resync_backoff_seconds", market="ETH_USDT") == 0
    # each resync asked for is counted; the last one may still be waiting
    assert h.value("orderbook_resyncs_total", market="BTC_USDT", reason="crossed") in (
        len(resubscribed_at), len(resubscribed_at) + 1)
    # the other market keeps its book while BTC_USDT waits
    assert h.value("orderbook_best_bid_price", market="ETH_USDT") is not None
    assert h.value("websocket_connects_total") == 1
    text = scrape(h.exporter.http_port)
    assert 'cryptomus_orderbook_resync_backoff_seconds{market="BTC_USDT"}' in text


def _lines(h, text):
    return [line for line in h.logs.getvalue().splitlines() if text in line]


def test_a_depth_scale_the_markets_lack_is_not_subscribed_and_is_shown(make_harness):
    # the simulator lists scales 0..3 for every market
    h = make_harness(markets="BTC_USDT,ETH_USDT", channels="depth,lastprice", depth_scale=9)
    assert h.sim.stats.subscribe_requests["depth"] == 0
    assert h.value("websocket_subscriptions", channel="depth") == 0
    assert h.value("websocket_subscribe_failures_total", channel="depth") == 0
    assert h.value("websocket_subscriptions", channel="lastprice") == 1
    for market in ("BTC_USDT", "ETH_USDT"):
        assert h.value("orderbook_scale_missing", market=market) == 1
        (line,) = _lines(h, f"depth scale 9 does not exist for {market}")
        assert "its scales are 0 (" in line and "3 (" in line
    assert h.value("api_requests_total", endpoint="scales", code="200") == 2
    h.sim.faults.drop_connections()
    h.wait_connected(connects=2)
    # the lists were fetched once: no new fetch, no new line, the gauge stays
    assert h.value("api_requests_total", endpoint="scales", code="200") == 2
    assert len(_lines(h, "depth scale 9 does not exist")) == 2
    assert h.value("orderbook_scale_missing", market="BTC_USDT") == 1
    assert h.sim.stats.subscribe_requests["depth"] == 0


def test_an_existing_depth_scale_is_checked_and_subscribed(make_harness):
    h = make_harness(markets="BTC_USDT,ETH_USDT", channels="depth", depth_scale=1)
    assert h.value("websocket_subscriptions", channel="depth") == 1
    assert h.value("orderbook_scale_missing", market="BTC_USDT") == 0
    wait_for(lambda: h.value("orderbook_best_bid_price", market="ETH_USDT"), what="a book")
    assert h.value("websocket_message_errors_total", reason="unsubscribed_scale") == 0


def test_scale_lists_that_could_not_be_fetched_are_fetched_again_at_the_next_connect(
        make_harness):
    h = make_harness(wait=False, markets="BTC_USDT", channels="depth", depth_scale=1)
    # set before the exporter's greenlets first run: the scale list fails from the start
    h.sim.fail_scale_lists(["BTC_USDT"], status=404)
    h.wait_connected()
    assert h.value("api_requests_total", endpoint="scales", code="200") is None
    assert h.value("api_requests_total", endpoint="scales", code="404") == 1
    assert h.value("websocket_subscriptions", channel="depth") == 1  # subscribed unchecked
    assert len(_lines(h, "cannot check the depth scales of BTC_USDT")) == 1
    h.sim.faults.drop_connections()
    h.wait_connected(connects=2)
    # a failure is not cached: fetched again, failing again
    assert h.value("api_requests_total", endpoint="scales", code="404") == 2
    h.sim.restore_scale_lists()
    h.sim.faults.drop_connections()
    h.wait_connected(connects=3)
    assert h.value("api_requests_total", endpoint="scales", code="200") == 1
    assert h.value("orderbook_scale_missing", market="BTC_USDT") == 0
    h.sim.faults.drop_connections()
    h.wait_connected(connects=4)
    assert h.value("api_requests_total", endpoint="scales", code="200") == 1  # cached
    assert h.value("api_requests_total", endpoint="scales", code="404") == 2


@pytest.mark.parametrize("repeat", ["reject", "replace"])
def test_the_order_book_resync_works_whether_a_repeated_subscription_is_rejected_or_replaces(
        make_harness, repeat):
    h = make_harness(sim_config={"repeat_subscription": repeat},
                     markets="BTC_USDT,ETH_USDT", channels="depth,lastprice")
    for market in ("BTC_USDT", "ETH_USDT"):
        wait_for(lambda m=market: _exporter_top(h, m) == _scale0_top(h.sim, m),
                 what=f"{market}'s first book")
    for resync in (1, 2):
        assert h.sim.faults.crossed_book("BTC_USDT") == 1
        h.wait_value("orderbook_resyncs_total", float(resync), market="BTC_USDT",
                     reason="crossed")
        wait_for(lambda n=resync: h.sim.stats.subscribe_requests["depth"] == n + 1,
                 what="depth subscribed again")
        for market in ("BTC_USDT", "ETH_USDT"):  # every book reloaded, equal to the exchange's
            wait_for(lambda m=market: _exporter_top(h, m) == _scale0_top(h.sim, m),
                     what=f"{market}'s book after resync {resync}")
    assert h.sim.stats.unsubscribe_requests["depth"] == 2
    assert h.sim.stats.duplicate_subscribes == 0  # unsubscribed first: never a repeat
    assert h.value("websocket_subscriptions", channel="depth") == 1
    assert h.value("websocket_connects_total") == 1
    assert h.value("websocket_disconnects_total", reason="resync_failed") == 0


def test_a_resync_acknowledged_with_status_failure_reconnects(make_harness):
    h = make_harness(markets="BTC_USDT", channels="depth,lastprice")
    wait_for(lambda: h.value("orderbook_best_bid_price", market="BTC_USDT"), what="a book")
    # from now on the exchange answers depth_subscribe with data.status "failure"
    h.sim.set_ack_failure(["depth"])
    h.sim.faults.crossed_book("BTC_USDT")
    h.wait_value("websocket_disconnects_total", 1.0, reason="resync_failed")
    assert _lines(h, 'order book resync failed (resync failed: depth_subscribe rejected: '
                     'status "failure")')
    h.sim.set_ack_failure(())
    h.wait_connected(connects=2)
    if h.value("websocket_subscriptions", channel="depth") == 0:  # reconnected before the reset
        assert h.value("websocket_subscribe_failures_total", channel="depth") == 1
        h.sim.faults.drop_connections()
        h.wait_connected(connects=3)
    wait_for(lambda: h.value("orderbook_best_bid_price", market="BTC_USDT"),
             what="the book after the reconnect")



LATE_BOOK = 1.5  # seconds between the depth ack and the full books; partials every 0.2 s


def _watch_late_books(h, seconds):
    """(depth subscribes, BTC_USDT full reloads sent, BTC_USDT best bid shown) every 0.05 s."""
    stats, timeline = h.sim.stats, []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        timeline.append((stats.subscribe_requests["depth"], stats.late_book_reloads["BTC_USDT"],
                         h.value("orderbook_best_bid_price", market="BTC_USDT")))
        time.sleep(0.05)
    return timeline


def _late_book_harness(make_harness):
    return make_harness(sim_config={"late_book": LATE_BOOK}, markets="BTC_USDT,ETH_USDT",
                        channels="depth,lastprice")


def test_a_full_book_that_comes_late_is_shown_only_once_it_arrived(make_harness):
    h = _late_book_harness(make_harness)
    timeline = _watch_late_books(h, 3 * LATE_BOOK)
    assert h.sim.stats.late_book_partials["BTC_USDT"] >= 5
    assert timeline[0][1] == 0 and any(reloads for _, reloads, _ in timeline), timeline
    # the partial updates before the full book are never shown
    assert [row for row in timeline if row[1] == 0 and row[2] is not None] == []
    h.sim.pause()
    for market in ("BTC_USDT", "ETH_USDT"):  # once a full book arrived, it is shown, and right
        wait_for(lambda m=market: _exporter_top(h, m) == _scale0_top(h.sim, m),
                 what=f"{market}'s book after a late full reload")
    assert h.value("websocket_connects_total") == 1


def test_a_full_book_that_comes_late_is_waited_for_without_resubscribing(make_harness):
    h = _late_book_harness(make_harness)
    timeline = _watch_late_books(h, 2 * LATE_BOOK)
    stats = h.sim.stats
    assert stats.subscribe_requests["depth"] == 1, timeline
    assert stats.unsubscribe_requests["depth"] == 0
    assert stats.late_book_reloads == {"BTC_USDT": 1, "ETH_USDT": 1}
    for market in ("BTC_USDT", "ETH_USDT"):
        assert h.value("orderbook_resyncs_total", market=market,
                       reason="partial_before_reload") == 0
