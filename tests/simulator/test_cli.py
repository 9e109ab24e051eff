"""The ``simulate`` command: in-process fault client, and a real subprocess run."""

from __future__ import annotations

import argparse
import signal

import gevent
import orjson
import pytest
import requests
import websocket

from exporter.simulator import cli

from .conftest import HTTP_TIMEOUT, open_process_ws, process_urls, simulate_process


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults_and_listen_parsing() -> None:
    args = parse()
    assert (args.listen, args.markets, args.rate, args.seed) == ("127.0.0.1:8765", 3, 20.0, 1)
    assert cli.parse_listen("[::1]:9000") == ("::1", 9000)
    assert parse("--markets", "BTC_USDT,ETH_USDT").markets == ["BTC_USDT", "ETH_USDT"]
    for bad in ("8765", "host:port", "127.0.0.1:70000"):
        with pytest.raises(argparse.ArgumentTypeError):
            cli.parse_listen(bad)


def test_switch_flags_make_the_config(tmp_path) -> None:
    defaults = cli.config_from_args(parse())
    assert defaults.depth_scales == (0,) and defaults.ack_failure_channels == ()
    assert not defaults.pong_id_zero and defaults.repeat_subscription == "reject"
    assert defaults.tls_cert is None and defaults.replay is None and defaults.replay_speed == 1
    config = cli.config_from_args(
        parse("--depth-scales", "0,2", "--ack-failure", "trade,deal", "--pong-id-zero",
              "--repeat-subscription", "replace", "--tls-cert", "c.pem", "--tls-key", "k.pem",
              "--replay", "s.jsonl", "--speed", "max")
    )  # fmt: skip
    assert config.depth_scales == (0, 2) and config.ack_failure_channels == ("trade", "deal")
    assert config.pong_id_zero and config.repeat_subscription == "replace"
    assert (config.tls_cert, config.tls_key) == ("c.pem", "k.pem")
    assert (config.replay, config.replay_speed) == ("s.jsonl", 0.0)
    assert parse("--speed", "2.5").speed == 2.5
    assert defaults.late_book == 0
    assert cli.config_from_args(parse("--late-book", "2")).late_book == 2
    for flag, bad in (("--depth-scales", "a"), ("--ack-failure", "candles"), ("--speed", "-1"),
                      ("--repeat-subscription", "keep"), ("--late-book", "soon")):  # fmt: skip
        with pytest.raises(SystemExit):
            parse(flag, bad)
    assert cli.run(parse("--listen", "127.0.0.1:0", "--depth-scales", "7")) == 2
    assert cli.run(parse("--listen", "127.0.0.1:0", "--tls-cert", "c.pem")) == 2
    missing = str(tmp_path / "missing.jsonl")
    assert cli.run(parse("--listen", "127.0.0.1:0", "--replay", missing)) == 2


def test_fault_and_stats_commands(start_sim, capsys) -> None:
    sim = start_sim(autogen=False)
    target = ("--target", sim.base_url)
    assert cli.run(parse("--fault", "go_silent", "--seconds", "5", *target)) == 0
    assert sim.faults.silent
    assert cli.run(parse("--fault", "fail_token", "--count", "2", "--status", "502", *target)) == 0
    assert sim.faults.token_failures_left == 2
    assert cli.run(parse("--fault", "crossed_book", "--market", "NOPE", *target)) == 1
    capsys.readouterr()
    assert cli.run(parse("--stats", *target)) == 0
    assert orjson.loads(capsys.readouterr().out)["connections"] == 0
    assert cli.run(parse("--stats", "--listen", "127.0.0.1:9")) == 1  # nothing listens there


def test_simulate_subprocess_serves_and_stops_on_sigterm() -> None:
    switches = ("--pong-id-zero", "--repeat-subscription", "replace", "--ack-failure", "deal")
    argv = ("--markets", "2", "--rate", "50", "--seed", "3", *switches)
    with simulate_process(*argv, command=("exporter.simulator",)) as (process, line):
        base_url, _ = process_urls(line)
        assert "userId=demo-user" in line and "apiKey=demo-api-key" in line
        markets = requests.get(f"{base_url}/v1/exchange/market", timeout=HTTP_TIMEOUT).json()
        assert [m["symbol"] for m in markets["result"]] == ["BTC_USDT", "ETH_USDT"]
        ws = open_process_ws(line)
        ws.send('{"id": 1, "method": "deal_subscribe", "params": ["all"]}')
        assert orjson.loads(ws.recv()) == {"id": 1, "data": {"status": "failure"}, "error": None}
        ws.send('{"id": 2, "method": "ping", "params": []}')
        assert orjson.loads(ws.recv())["id"] == 0
        for request_id in (3, 4):  # the second replaces the first
            ws.send(f'{{"id": {request_id}, "method": "trade_subscribe", "params": ["all"]}}')
            ack = next(
                reply for reply in (orjson.loads(ws.recv()) for _ in range(10_000))
                if reply["id"] == request_id
            )  # fmt: skip
            assert ack["data"] == {"status": "success"}
        process.send_signal(signal.SIGTERM)
        with gevent.Timeout(15):
            assert process.wait() == 0
        closing = None
        for _ in range(10_000):
            opcode, data = ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                closing = int.from_bytes(data[:2], "big")
                break
        assert closing == 1001
