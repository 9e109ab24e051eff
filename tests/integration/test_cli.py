"""The command line as a user meets it: help, bad configuration, demo, clean stop."""

from __future__ import annotations

from tests.support import ExporterProcess, run_exporter, sample_value, wait_for


def test_help_lists_options_with_their_environment_variables():
    result = run_exporter(["--help"])
    assert result.returncode == 0
    for text in ("--demo", "--web.listen-address", "CRYPTOMUS_LISTEN_ADDRESS",
                 "--cryptomus.markets", "check-config", "simulate"):
        assert text in result.stdout


def test_version():
    result = run_exporter(["--version"])
    assert result.returncode == 0
    assert result.stdout.startswith("cryptomus-exporter ")


def _one_error_line(result) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_missing_credentials_without_demo_is_one_line():
    line = _one_error_line(run_exporter([]))
    assert "CRYPTOMUS_USER_ID" in line
    assert "--demo" in line


def test_empty_market_list_is_one_line():
    line = _one_error_line(run_exporter(["--demo"], env={"CRYPTOMUS_MARKETS": ""}))
    assert "CRYPTOMUS_MARKETS (--cryptomus.markets)" in line


def test_non_numeric_interval_flag_is_one_line():
    line = _one_error_line(run_exporter(["--demo", "--websocket.ping-interval", "soon"]))
    assert "CRYPTOMUS_PING_INTERVAL (--websocket.ping-interval)" in line


def test_bad_web_config_is_one_line(tmp_path):
    config = tmp_path / "web.yml"
    config.write_text("basic_auth_users:\n  admin: not-a-bcrypt-hash\n")
    line = _one_error_line(run_exporter(["check-config", "--demo", "--web.config.file",
                                         str(config)]))
    assert "CRYPTOMUS_WEB_CONFIG_FILE (--web.config.file)" in line


def test_check_config_accepts_a_good_configuration():
    result = run_exporter(["check-config"], env={"CRYPTOMUS_USER_ID": "u",
                                                 "CRYPTOMUS_API_KEY": "key-value-1234"})
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout
    assert "key-value-1234" not in result.stdout + result.stderr


def test_demo_fills_every_channel_and_stops_cleanly_on_sigterm():
    with ExporterProcess("--demo", env={"CRYPTOMUS_LOG_LEVEL": "debug"}) as exporter:
        def every_channel_flowing():
            text = exporter.metrics()
            wanted = ("lastprice_update", "ticker_update", "depth_update", "trade_update",
                      "order_update", "balance_update", "deal_update")
            return all(sample_value(text, "cryptomus_websocket_messages_total",
                                    {"method": m}) for m in wanted) and text
        text = wait_for(every_channel_flowing, timeout=30, what="every channel's events")
        assert sample_value(text, "cryptomus_websocket_connected") == 1
        assert "cryptomus_orderbook_best_bid_price{" in text
        assert "cryptomus_balance{" in text
        status = exporter.stop()  # bounded: waits 15 s at most
        output = exporter.output()
        assert status == 0, output
        assert "demo-api-key" not in output
