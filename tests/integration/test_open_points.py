"""The exporter under every reading of the protocol's open points (issue 13), each one a
switch of the simulator, over loopback."""

from __future__ import annotations

from tests.support import wait_for


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
