"""Every fault the exchange or the network throws, one level deeper than
tests/integration/test_exporter.py: exact error accounting, the exporter's state
while the fault lasts (connected, readiness), recovery within a computed bound, and,
through the ``monitored`` fixture, no counter ever going backwards or disappearing.

Token storms and refused connections are in test_reconnect_discipline.py.
"""

from __future__ import annotations

import time

import gevent
import orjson
import pytest
from prometheus_client import CollectorRegistry, Counter

from exporter import protocol
from exporter.session import CONNECT_STAGES, DISCONNECT_REASONS
from exporter.simulator.faults import Faults
from exporter.simulator.wire import ALL, CHANNELS
from exporter.state import ERROR_REASONS
from tests.reliability.checks import (
    assert_one_token_per_attempt,
    connect_failures,
    disconnects,
    labelled,
    probe,
    push_sentinel,
    sim_top_of_book,
)
from tests.reliability.hostile import HostileWsServer
from tests.reliability.monitor import CounterWatch, monotonic_samples
from tests.support import wait_for

# Beyond each computed recovery bound, for a loaded two-core CI machine.
SLACK = 2.0
NO_DISCONNECTS = dict.fromkeys(DISCONNECT_REASONS, 0.0)
NO_FAILURES = dict.fromkeys(CONNECT_STAGES, 0.0)
# Counters a fault may legitimately move: the error counter itself, frames received
# (the sentinels), keep-alive and REST traffic.
MOVING = ("message_errors", "messages_total", "api_request", "ping_rtt")


def trade(price: float, quantity: float, side: str = "buy", market: str = "BTC_USDT") -> dict:
    return {"symbol": market, "timestamp": 1, "trades": [
        {"price": price, "quantity": quantity, "timestamp": 1, "direction": side}]}


def steady_counters(harness) -> dict:
    return {key: value for key, value in monotonic_samples(harness.exporter.registry).items()
            if key[0].startswith("cryptomus_") and not any(part in key[0] for part in MOVING)}


def errors(harness) -> dict[str, float]:
    return labelled(harness, "websocket_message_errors_total", "reason", ERROR_REASONS)


def assert_still_on_first_connection(harness) -> None:
    assert harness.value("websocket_connected") == 1
    assert harness.value("websocket_connects_total") == 1
    assert disconnects(harness) == NO_DISCONNECTS
    assert connect_failures(harness) == NO_FAILURES


def test_the_counter_watch_fails_on_a_counter_that_goes_away():
    registry = CollectorRegistry()
    counter = Counter("probe", "A probe.", ["market"], registry=registry)
    counter.labels("BTC_USDT").inc(3)
    watch = CounterWatch(registry, interval=0.01).start()
    gevent.sleep(0.05)
    counter.remove("BTC_USDT")  # what an exporter must never do to a counter
    gevent.sleep(0.05)
    watch.stop()
    with pytest.raises(AssertionError, match=r"probe_total.*disappeared"):
        watch.assert_monotonic()


# --- drop -------------------------------------------------------------------------------


def test_each_drop_costs_one_reconnect_one_token_and_loses_no_later_event(monitored):
    h = monitored()
    backoff_max = h.exporter.settings.backoff_max
    for round_ in range(1, 4):
        h.sim.faults.drop_connections()
        h.wait_connected(connects=round_ + 1, timeout=backoff_max + SLACK)
        h.sim.push("trade", trade(10.0, 1.0))
        h.wait_value("trades_total", float(round_), market="BTC_USDT", side="buy")
    assert disconnects(h) == {**NO_DISCONNECTS, "server_closed": 3.0}
    assert connect_failures(h) == NO_FAILURES
    assert h.value("traded_quote_volume_total", market="BTC_USDT", side="buy") == 30.0
    for channel in CHANNELS:  # one subscribe per channel per connection, never a duplicate
        assert h.sim.stats.subscribe_requests[channel] == 4
    assert h.sim.stats.duplicate_subscribes == 0
    assert_one_token_per_attempt(h)
    push_sentinel(h)
    assert probe(h, "/readyz") == 200


# --- silent socket ----------------------------------------------------------------------


@pytest.mark.parametrize(("detector", "settings", "sim_config"), [
    # pings every 0.3 s: the missing pong gives the silence away
    ("pong_timeout", {"subscribe_timeout": 0.5}, {}),
    # no ping due for 30 s, but a steady feed: the idle watchdog notices the silence
    ("idle_timeout", {"ping_interval": 30.0, "pong_timeout": 0.5, "idle_timeout": 1.0,
                      "subscribe_timeout": 0.5}, {"autogen": True, "rate": 50.0}),
])
def test_silent_socket_is_detected_not_ready_and_replaced_after_the_silence(
        monitored, detector, settings, sim_config):
    h = monitored(sim_config=sim_config, **settings)
    push_sentinel(h)
    silence = 2.5
    silent_until = time.monotonic() + silence
    h.sim.faults.go_silent(silence)
    h.wait_value("websocket_disconnects_total", 1.0, timeout=silence, reason=detector)
    assert h.value("websocket_connected") == 0
    assert probe(h, "/readyz") == 503
    assert probe(h, "/healthz") == 200
    # Attempts during the silence connect but never get their acknowledgements.
    bound = silent_until - time.monotonic() + settings["subscribe_timeout"] + 0.2 + SLACK
    h.wait_connected(connects=2, timeout=max(bound, 0.1))
    assert connect_failures(h)["subscribe"] >= 1
    assert disconnects(h) == {**NO_DISCONNECTS, detector: 1.0}
    assert_one_token_per_attempt(h)
    push_sentinel(h)
    wait_for(lambda: probe(h, "/readyz") == 200, what="ready again")


# --- garbage ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", Faults.GARBAGE_KINDS)
def test_garbage_counts_one_error_per_frame_and_changes_nothing_else(monitored, kind):
    h = monitored()
    push_sentinel(h)
    wait_for(lambda: h.exporter.reconciler.rounds >= 1, what="the reconciliation at connect")
    errors_before, counters_before = errors(h), steady_counters(h)
    sent = h.sim.faults.send_garbage(kind)
    push_sentinel(h, "ETH_USDT")  # every garbage frame before it has been handled
    delta = {reason: count - errors_before[reason] for reason, count in errors(h).items()
             if count != errors_before[reason]}
    assert sum(delta.values()) == sent > 0
    if kind in ("not_json", "truncated"):
        assert delta == {"invalid_json": sent}
    elif kind == "unknown_method":
        assert delta == {"unknown_method": sent}
    elif kind == "huge":  # a 2 MiB ticker without its fields: too large or incomplete
        assert delta in ({"bad_field": 1}, {"too_large": 1})
    else:  # wrong_types: one frame is a JSON array, one has a numeric method
        assert delta["not_an_object"] == 1
        assert delta["bad_field"] >= sent - 2
        assert set(delta) <= {"not_an_object", "bad_field", "unknown_method"}
    assert steady_counters(h) == counters_before
    assert_still_on_first_connection(h)
    assert probe(h, "/readyz") == 200


def test_frame_over_the_size_limit_is_rejected_unparsed_and_the_connection_survives(monitored):
    h = monitored()
    push_sentinel(h)
    price_before = h.value("last_price", market="ETH_USDT")
    oversized = orjson.dumps({"id": 0, "method": "lastprice_update", "error": None, "data": {
        "symbol": "ETH_USDT", "timestamp": 1, "price": "7",
        "padding": "x" * protocol.MAX_FRAME_BYTES}})
    assert h.sim.push_raw(oversized) == 1
    push_sentinel(h)
    assert h.value("websocket_message_errors_total", reason="too_large") == 1
    assert h.value("last_price", market="ETH_USDT") == price_before  # 7 was never applied
    assert_still_on_first_connection(h)


# --- server closing for idleness --------------------------------------------------------


def test_each_idle_close_by_the_server_is_one_clean_disconnect(monitored):
    # Pings every 5 s, the server closes after 0.6 s without a request: it keeps closing.
    h = monitored(sim_config={"idle_timeout": 0.6}, ping_interval=5.0, pong_timeout=1.0,
                  idle_timeout=6.0)
    h.wait_connected(connects=3, timeout=10)

    def settled():
        closes = h.sim.stats.idle_closes
        return (closes >= 2 and h.value("websocket_connected") == 1
                and h.value("websocket_disconnects_total", reason="server_closed") == closes
                and h.value("websocket_connects_total") == closes + 1
                and h.sim.stats.tokens_issued == closes + 1)

    wait_for(settled, timeout=10, what="each idle close: one server_closed, one new token")
    assert disconnects(h)["error"] == 0
    assert disconnects(h)["pong_timeout"] == 0
    assert connect_failures(h) == NO_FAILURES


# --- subscriptions rejected -------------------------------------------------------------


def test_rejected_channel_is_counted_and_the_others_keep_the_connection(monitored):
    # The exchange answers depth_subscribe with data.status "failure", the rest accepted.
    h = monitored(markets="BTC_USDT,ETH_USDT", sim_config={"ack_failure_channels": ("depth",)})
    for connection in (1, 2):
        assert h.value("websocket_subscribe_failures_total", channel="depth") == connection
        assert h.value("websocket_subscriptions", channel="depth") == 0
        for channel in ("lastprice", "ticker", "trade", "order", "balance", "deal"):
            assert h.value("websocket_subscriptions", channel=channel) == 1
            assert h.value("websocket_subscribe_failures_total", channel=channel) == 0
        push_sentinel(h)
        wait_for(lambda: probe(h, "/readyz") == 200, what="ready without depth")
        if connection == 1:
            h.sim.faults.drop_connections()
            h.wait_connected(connects=2)
    assert connect_failures(h) == NO_FAILURES
    assert "subscription to depth rejected" in h.logs.getvalue()


def test_duplicate_subscription_rejected_by_the_exchange_keeps_the_connection(
        monitored, monkeypatch):
    h = monitored()
    register = h.sim.hub.register

    def with_a_stale_trade_subscription(conn):  # as if the exchange kept an old one
        conn.subs["trade"] = ALL
        register(conn)

    monkeypatch.setattr(h.sim.hub, "register", with_a_stale_trade_subscription)
    h.sim.faults.drop_connections()
    h.wait_connected(connects=2)
    assert h.sim.stats.duplicate_subscribes == 1
    assert h.value("websocket_subscribe_failures_total", channel="trade") == 1
    assert h.value("websocket_subscriptions", channel="trade") == 0
    for channel in ("lastprice", "ticker", "depth", "order", "balance", "deal"):
        assert h.value("websocket_subscriptions", channel=channel) == 1
    assert connect_failures(h) == NO_FAILURES
    push_sentinel(h)
    assert h.value("websocket_connected") == 1
    assert "subscription to trade rejected" in h.logs.getvalue()


def test_every_channel_rejected_is_a_subscribe_failure_that_backs_off(monitored):
    h = monitored(wait=False, markets="BTC_USDT", channels="depth",
                  sim_config={"ack_failure_channels": ("depth",)})
    h.wait_value("websocket_connect_failures_total", lambda v: (v or 0) >= 3, stage="subscribe")
    assert h.value("websocket_connects_total") == 0
    assert h.value("websocket_connected") == 0
    assert probe(h, "/readyz") == 503
    assert probe(h, "/healthz") == 200
    assert 0.05 <= h.value("websocket_reconnect_backoff_seconds") <= 0.2


# --- order book faults ------------------------------------------------------------------


def test_partial_depth_before_reload_is_waited_out_and_books_match_the_exchange(monitored):
    h = monitored(wait=False, markets="BTC_USDT,ETH_USDT", channels="depth,lastprice")
    h.wait_connected()
    h.sim.faults.partial_depth_before_reload("BTC_USDT")
    h.sim.faults.drop_connections()
    h.wait_connected(connects=2)
    for market in ("BTC_USDT", "ETH_USDT"):
        wait_for(lambda market=market: (h.value("orderbook_best_bid_price", market=market),
                                        h.value("orderbook_best_ask_price", market=market))
                 == sim_top_of_book(h.sim, market), what=f"{market} book equal to the exchange's")
    push_sentinel(h)
    for market in ("BTC_USDT", "ETH_USDT"):  # created at 0, never incremented: the full
        assert h.value("orderbook_resyncs_total", market=market,  # book came right after
                       reason="partial_before_reload") == 0
    assert h.sim.stats.duplicate_subscribes == 0
    assert disconnects(h) == {**NO_DISCONNECTS, "server_closed": 1.0}
    assert probe(h, "/readyz") == 200


def test_crossed_books_resync_on_the_same_connection_rate_limited_and_never_shown(monitored):
    h = monitored(markets="BTC_USDT", channels="depth,lastprice", resync_min_interval=1.0)
    loaded = lambda: (h.value("orderbook_best_bid_price", market="BTC_USDT"),  # noqa: E731
                      h.value("orderbook_best_ask_price", market="BTC_USDT"))
    wait_for(lambda: loaded() == sim_top_of_book(h.sim, "BTC_USDT"), what="the first book")
    for burst in (1, 2):
        for _ in range(3):  # a burst: the 2nd and 3rd hit a book already dropped
            assert h.sim.faults.crossed_book("BTC_USDT") == 1
        h.wait_value("orderbook_resyncs_total", float(burst), market="BTC_USDT",
                     reason="crossed")
        if burst == 2:  # within resync_min_interval of the first resync: it has to wait
            assert loaded() == (None, None)
            assert h.sim.stats.unsubscribe_requests["depth"] == 1
        wait_for(lambda: loaded() == sim_top_of_book(h.sim, "BTC_USDT"), timeout=1.0 + SLACK,
                 what="the book reloaded and equal to the exchange's")
        assert h.sim.stats.unsubscribe_requests["depth"] == burst
        assert h.sim.stats.subscribe_requests["depth"] == burst + 1
    push_sentinel(h)
    assert h.value("orderbook_resyncs_total", market="BTC_USDT", reason="crossed") == 2
    assert h.sim.stats.duplicate_subscribes == 0
    assert_still_on_first_connection(h)
    assert probe(h, "/readyz") == 200


# --- a broken endpoint in front of the exchange -----------------------------------------


def test_reset_right_after_the_upgrade_is_a_subscribe_failure_and_the_loop_lives(monitored):
    h = monitored()
    with HostileWsServer("reset_after_upgrade") as hostile:
        # The load balancer in front of the exchange goes bad; REST still works.
        h.exporter.settings = h.exporter.settings.model_copy(update={"ws_url": hostile.url})
        h.sim.faults.drop_connections()
        h.wait_value("websocket_connect_failures_total", lambda v: (v or 0) >= 3,
                     stage="subscribe")
        assert h.exporter.health.live() == (True, "ok")
        assert probe(h, "/healthz") == 200
        assert probe(h, "/readyz") == 503
        h.exporter.settings = h.exporter.settings.model_copy(update={"ws_url": h.sim.ws_url})
        h.wait_connected(connects=2, timeout=0.2 + SLACK)
    assert connect_failures(h)["subscribe"] == len(hostile.targets)
    assert_one_token_per_attempt(h)
