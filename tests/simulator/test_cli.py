"""The ``simulate`` command: in-process fault client, and a real subprocess run."""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
from pathlib import Path

import gevent
import orjson
import pytest
import requests
import websocket

from exporter.simulator import cli

from .conftest import HTTP_TIMEOUT, TOKEN_PATH, signed_headers

REPO = Path(__file__).resolve().parents[2]


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
    process = subprocess.Popen(
        [sys.executable, "-m", "exporter.simulator", "--listen", "127.0.0.1:0",
         "--markets", "2", "--rate", "50", "--seed", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, text=True,
    )  # fmt: skip
    try:
        with gevent.Timeout(15):
            line = process.stdout.readline()
        match = re.search(r"REST (http://127\.0\.0\.1:\d+) WebSocket (ws://\S+)", line)
        assert match, line
        base_url, ws_url = match.groups()
        assert "userId=demo-user" in line and "apiKey=demo-api-key" in line
        markets = requests.get(f"{base_url}/v1/exchange/market", timeout=HTTP_TIMEOUT).json()
        assert [m["symbol"] for m in markets["result"]] == ["BTC_USDT", "ETH_USDT"]
        headers = signed_headers("demo-user", "demo-api-key")
        token = requests.get(base_url + TOKEN_PATH, headers=headers, timeout=HTTP_TIMEOUT).json()[
            "token"
        ]
        ws = websocket.create_connection(f"{ws_url}?token={token}", timeout=5)
        ws.send('{"id": 1, "method": "trade_subscribe", "params": ["all"]}')
        assert orjson.loads(ws.recv())["data"] == {"status": "success"}
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
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
