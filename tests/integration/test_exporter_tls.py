"""The exporter over TLS: https:// REST and wss:// WebSocket to the simulator on loopback,
trusting a self-signed certificate made for the test. An SSLSocket hands the reader at
most one TLS record per recv and may hold decrypted bytes the kernel socket does not show
(issue 14): the frames the simulator writes back to back are cut across records
wherever a record ends."""

from __future__ import annotations

from exporter.protocol import ERROR_REASONS

LEVELS = 200  # the simulator's largest books


def test_the_exporter_reads_the_feed_over_tls(make_harness, tmp_path, tls_files, monkeypatch):
    cert, key = tls_files
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # the token and market list
    monkeypatch.setenv("WEBSOCKET_CLIENT_CA_BUNDLE", str(cert))  # the stream
    h = make_harness(sim_config={"tls_cert": str(cert), "tls_key": str(key),
                                 "depth_levels": LEVELS, "rate": 500.0, "autogen": True})
    assert h.sim.ws_url.startswith("wss://") and h.sim.base_url.startswith("https://")
    for method in ("depth_update", "lastprice_update", "trade_update"):
        h.wait_value("websocket_messages_total", lambda v: (v or 0) >= 50, timeout=20,
                     method=method)
    for market in h.sim.markets:
        h.wait_value("orderbook_levels", lambda v: (v or 0) >= LEVELS // 2, market=market,
                     side="bid")
        assert h.value("orderbook_best_bid_price", market=market) < h.value(
            "orderbook_best_ask_price", market=market)
    assert h.value("websocket_connects_total") == 1
    assert h.value("websocket_subscriptions", channel="depth") == 1
    assert {reason: h.value("websocket_message_errors_total", reason=reason)
            for reason in ERROR_REASONS} == dict.fromkeys(ERROR_REASONS, 0.0)
