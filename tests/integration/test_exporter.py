"""The whole exporter against the simulator over loopback: values, keep-alive,
reconnects, backoff, garbage, staleness, readiness, reconciliation, secrets."""

from __future__ import annotations

import hashlib

import requests

from exporter.simulator.wire import event_payload
from tests.support import scrape, wait_for


def test_pushed_events_reach_metrics_exactly(make_harness):
    h = make_harness()
    h.sim.push("lastprice", {"symbol": "BTC_USDT", "timestamp": 1750953362, "price": "107152.55"})
    h.sim.push("ticker", {"symbol": "ETH_USDT", "timestamp": 1750953144, "price": "2500",
                          "open": "2400", "high": "2600", "low": "2300", "volume": "10",
                          "quote_volume": "25000", "price_change": "-1.5"})
    h.sim.push("trade", {"symbol": "BTC_USDT", "timestamp": 1750953177, "trades": [
        {"price": 100.5, "quantity": 2, "timestamp": 1750953177, "direction": "sell"}]})
    h.sim.push("balance", {"info": {"walletId": "w", "currencyCode": "USDT", "amount": "1",
                                    "oldBalance": "11", "newBalance": "10"}})
    h.wait_value("last_price", 107152.55, market="BTC_USDT")
    h.wait_value("ticker_price_change_ratio", -0.015, market="ETH_USDT")
    h.wait_value("traded_quote_volume_total", 201.0, market="BTC_USDT", side="sell")
    h.wait_value("balance", 10.0, currency="USDT")


def test_subscribes_every_channel_once(make_harness):
    h = make_harness()
    for channel in ("lastprice", "ticker", "depth", "trade", "order", "balance", "deal"):
        assert h.value("websocket_subscriptions", channel=channel) == 1
        assert h.sim.stats.subscribe_requests[channel] == 1
    assert h.value("websocket_subscribe_failures_total", channel="depth") == 0
    assert h.sim.stats.duplicate_subscribes == 0


def test_readyz_is_503_until_data_arrives(make_harness):
    h = make_harness(channels="lastprice,trade")  # no depth: its full reload is data
    port = h.exporter.http_port
    assert requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 503
    h.sim.push("lastprice", {"symbol": "BTC_USDT", "timestamp": 1, "price": "1"})
    wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5).ok,
             what="/readyz 200 after data")
    assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).ok


def test_readyz_is_503_while_the_exchange_refuses(make_harness):
    h = make_harness(wait=False, sim_config={})
    h.sim.faults.refuse_connections(60)
    h.sim.faults.drop_connections()
    port = h.exporter.http_port
    wait_for(lambda: h.value("websocket_connect_failures_total", stage="connect"),
             what="a refused connection")
    response = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
    assert response.status_code == 503
    assert "not connected" in response.text
    assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).ok


def test_keepalive_holds_the_connection_past_the_server_idle_limit(make_harness):
    h = make_harness(sim_config={"idle_timeout": 1.0})
    h.wait_value("websocket_ping_rtt_seconds_count", lambda v: (v or 0) >= 8, timeout=10)
    assert h.value("websocket_connects_total") == 1
    assert h.sim.stats.tokens_issued == 1


def test_without_pings_the_server_drops_us_and_we_come_back(make_harness):
    h = make_harness(sim_config={"idle_timeout": 0.5}, ping_interval=5.0, pong_timeout=1.0,
                     idle_timeout=6.0)
    h.wait_connected(connects=2, timeout=10)
    assert h.value("websocket_disconnects_total", reason="server_closed") >= 1


def test_dropped_socket_reconnects_with_a_new_token_and_resubscribes(make_harness):
    h = make_harness()
    subscribes_before = h.sim.stats.subscribe_requests["trade"]
    h.sim.faults.drop_connections()
    h.wait_connected(connects=2)
    assert h.value("websocket_disconnects_total", reason="server_closed") == 1
    assert len(h.sim.tokens_seen) == 2
    assert len(set(h.sim.tokens_seen)) == 2
    assert h.sim.stats.subscribe_requests["trade"] == subscribes_before + 1
    h.sim.push("lastprice", {"symbol": "BTC_USDT", "timestamp": 1, "price": "3"})
    h.wait_value("last_price", 3.0, market="BTC_USDT")


def test_silent_socket_is_detected_and_replaced(make_harness):
    h = make_harness()
    h.sim.faults.go_silent(2.0)  # every connection: the open one and new ones
    h.wait_value("websocket_disconnects_total", lambda v: (v or 0) >= 1, timeout=10,
                 reason="pong_timeout")
    h.wait_connected(connects=2, timeout=15)


def test_token_failures_back_off_then_recover(make_harness):
    h = make_harness()
    h.sim.faults.fail_token(3, status=500)
    h.sim.faults.drop_connections()
    h.wait_value("websocket_connect_failures_total", 3, stage="token")
    h.wait_connected(connects=2)
    assert h.value("api_requests_total", endpoint="token", code="500") == 3
    assert h.value("websocket_reconnect_backoff_seconds") == 0
    delays = [float(line.split("reconnecting in ")[1].split(" s")[0])
              for line in h.logs.getvalue().splitlines() if "reconnecting in " in line]
    assert len(delays) >= 4
    assert all(0.05 <= delay <= 0.2 for delay in delays)


def test_garbage_frames_are_counted_and_skipped(make_harness):
    h = make_harness()
    for kind in ("not_json", "wrong_types", "unknown_method", "huge", "truncated"):
        h.sim.faults.send_garbage(kind)
    h.sim.push("lastprice", {"symbol": "ETH_USDT", "timestamp": 1, "price": "42"})
    h.wait_value("last_price", 42.0, market="ETH_USDT")
    errors = {reason: h.value("websocket_message_errors_total", reason=reason)
              for reason in ("invalid_json", "bad_field", "unknown_method", "too_large")}
    assert errors["invalid_json"] >= 2  # not_json and truncated
    assert errors["bad_field"] >= 1
    assert errors["unknown_method"] >= 1
    assert h.value("websocket_connects_total") == 1


def test_fragmented_messages_and_websocket_pings_are_handled(make_harness):
    h = make_harness()
    h.wait_connected()
    [conn] = h.sim.open_connections()
    payload = event_payload("lastprice", {"symbol": "BTC_USDT", "timestamp": 1, "price": "7"})
    head, tail = payload[:20], payload[20:]
    assert len(tail) < 126  # one-byte lengths below
    conn.queue(bytes((0x01, len(head))) + head)  # text, not final
    conn.queue(bytes((0x89, 4)) + b"ping")  # a ping between the fragments, as RFC 6455 allows
    conn.queue(bytes((0x80, len(tail))) + tail)  # continuation, final
    h.wait_value("last_price", 7.0, market="BTC_USDT")
    wait_for(lambda: h.sim.stats.pongs == 1, what="the pong")
    assert h.value("websocket_messages_total", method="lastprice_update") == 1
    assert h.value("websocket_connects_total") == 1


def test_a_frame_breaking_rfc_6455_is_counted_by_rule_and_ends_the_connection(make_harness):
    h = make_harness()
    h.wait_connected()
    [conn] = h.sim.open_connections()
    conn.queue(bytes((0x81, 0x80 | 2)) + b"mask" + b"hi")  # masked: a server must not mask
    h.wait_value("websocket_message_errors_total", 1.0, reason="masked_frame")
    h.wait_value("websocket_disconnects_total", 1.0, reason="protocol_error")
    h.wait_connected(connects=2)


def test_stale_market_gauges_disappear_and_counters_survive(make_harness):
    h = make_harness(stale_after=0.5)
    h.sim.push("lastprice", {"symbol": "BTC_USDT", "timestamp": 1, "price": "9"})
    h.sim.push("trade", {"symbol": "BTC_USDT", "timestamp": 1, "trades": [
        {"price": 9, "quantity": 1, "timestamp": 1, "direction": "buy"}]})
    h.wait_value("trades_total", 1.0, market="BTC_USDT", side="buy")
    h.sim.faults.refuse_connections(60)
    h.sim.faults.drop_connections()
    h.wait_value("last_price", None, timeout=10, market="BTC_USDT")
    assert h.value("trades_total", market="BTC_USDT", side="buy") == 1
    assert h.value("websocket_connected") == 0


def test_depth_partial_before_the_full_book_is_dropped_without_a_resync(make_harness):
    """Right after a subscription the full book may come late (an open point of the
    protocol): a partial update before it is dropped, and the book waited for."""
    h = make_harness(wait=False, markets="BTC_USDT,ETH_USDT", channels="depth")
    h.sim.faults.partial_depth_before_reload("BTC_USDT")
    h.sim.faults.drop_connections()
    wait_for(lambda: "cryptomus_orderbook_best_bid_price{market=\"BTC_USDT\"}"
             in scrape(h.exporter.http_port), what="the book after its full reload")
    assert h.value("orderbook_resyncs_total", market="BTC_USDT",
                   reason="partial_before_reload") == 0
    assert h.sim.stats.unsubscribe_requests["depth"] == 0  # no resync
    assert not h.sim.faults.take_partial_before_reload("BTC_USDT")  # the partial was sent


def test_crossed_book_triggers_a_resync(make_harness):
    h = make_harness(markets="BTC_USDT", channels="depth")
    wait_for(lambda: h.value("orderbook_best_bid_price", market="BTC_USDT"),
             what="a loaded book")
    h.sim.faults.crossed_book("BTC_USDT")
    h.wait_value("orderbook_resyncs_total", 1.0, market="BTC_USDT", reason="crossed")
    wait_for(lambda: h.value("orderbook_best_bid_price", market="BTC_USDT"),
             what="the book reloaded after resync")
    bid = h.value("orderbook_best_bid_price", market="BTC_USDT")
    ask = h.value("orderbook_best_ask_price", market="BTC_USDT")
    assert bid < ask


def test_rest_reconciliation_sets_balances_and_open_orders(make_harness):
    h = make_harness(wait=False, reconcile_interval=0.3)
    h.sim.account.set_balance("USDT", available="100.5", held="1.5")
    h.wait_value("balance", 100.5, currency="USDT")
    h.wait_value("balance_held", 1.5, currency="USDT")


def test_secrets_never_reach_logs_or_metrics(make_harness):
    h = make_harness()
    h.sim.faults.drop_connections()
    h.wait_connected(connects=2)
    h.sim.faults.fail_token(1, status=401)
    h.sim.faults.drop_connections()
    h.wait_connected(connects=3)
    text = scrape(h.exporter.http_port) + h.logs.getvalue()
    api_key = h.sim.config.api_key
    sign = hashlib.md5(api_key.encode(), usedforsecurity=False).hexdigest()
    assert "DEBUG" in h.logs.getvalue()
    for secret in (api_key, sign, *h.sim.tokens_seen):
        assert secret not in text


def test_every_connect_reconciles_what_the_stream_missed(make_harness):
    h = make_harness(reconcile_interval=3600)
    h.wait_value("balance", lambda v: v is not None, currency="USDT")
    h.sim.account.set_balance("USDT", available="77", held="3")
    h.sim.account.add_open_order({
        "id": "missed-while-down", "symbol": "ETH_USDT", "orderType": "limit",
        "direction": "buy", "price": "1", "quantity": "1", "value": "1",
        "filledQuantity": "0", "filledValue": "0", "clientOid": None, "createTs": 1})
    h.sim.faults.drop_connections()
    h.wait_connected(connects=2)
    h.wait_value("balance", 77.0, currency="USDT")
    h.wait_value("balance_held", 3.0, currency="USDT")
    h.wait_value("open_orders", lambda v: (v or 0) >= 1, market="ETH_USDT", side="buy")
