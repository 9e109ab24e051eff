"""``cryptomus-exporter record`` and ``simulate --replay``: a session recorded from the
simulator, replayed through the exporter, gives the recorded session's metrics."""

from __future__ import annotations

import gzip
import hashlib
import signal
import subprocess

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter import channels, collectors
from exporter.frames import FrameHandler
from exporter.recording import read_recording
from exporter.simulator import Simulator, SimulatorConfig
from tests.support import (
    CLEAN_ENV,
    ExporterProcess,
    SimulatorProcess,
    exporter_command,
    run_exporter,
    wait_for,
)

# What the stream alone decides (REST reconciliation and arrival times left out).
STREAM_FAMILIES = (
    "cryptomus_last_price", "cryptomus_ticker_open_price", "cryptomus_ticker_high_price",
    "cryptomus_ticker_low_price", "cryptomus_ticker_base_volume",
    "cryptomus_ticker_quote_volume", "cryptomus_ticker_price_change_ratio",
    "cryptomus_orderbook_best_bid_price", "cryptomus_orderbook_best_ask_price",
    "cryptomus_orderbook_spread", "cryptomus_orderbook_spread_ratio",
    "cryptomus_orderbook_levels", "cryptomus_orderbook_depth", "cryptomus_trades",
    "cryptomus_traded_base_volume", "cryptomus_traded_quote_volume",
)


def stream_samples(text: str) -> dict:
    """{(sample name, labels): value} of the stream-derived families, and the update
    events counted by method."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            if name.endswith("_created"):
                continue
            if family.name in STREAM_FAMILIES or (
                    family.name == "cryptomus_websocket_messages"
                    and sample.labels["method"].endswith("_update")):
                samples[(name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def expected_from(frames: list[str]) -> dict:
    """The recorded session, fed straight to the exporter's frame handler and state."""
    registry = CollectorRegistry()
    state = channels.new_state()
    collectors.register(registry, state, version="test", process=False)
    handler = FrameHandler(state, on_reply=lambda reply: None,
                           on_resync=lambda channel, market: None)
    for frame in frames:
        handler.handle(frame)
    return stream_samples(generate_latest(registry).decode())


def simulator_env(sim: Simulator) -> dict[str, str]:
    return {"CRYPTOMUS_USER_ID": sim.config.user_id, "CRYPTOMUS_API_KEY": sim.config.api_key,
            "CRYPTOMUS_WS_URL": sim.ws_url, "CRYPTOMUS_API_URL": sim.base_url,
            "CRYPTOMUS_MARKET_API_URL": sim.base_url, "CRYPTOMUS_SCALES_API_URL": sim.base_url}


def test_a_recorded_session_replays_to_the_same_metrics(tmp_path):
    recording = tmp_path / "session.jsonl.gz"
    with SimulatorProcess("--markets", "BTC_USDT,ETH_USDT,TRX_USDT", "--rate", "300",
                          "--seed", "5") as sim:
        result = run_exporter(["record", "--output", str(recording), "--seconds", "3"],
                              env=sim.exporter_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    frames = [frame for _, frame in read_recording(recording)]
    assert len(frames) > 200
    expected = expected_from(frames)
    assert any(name == "cryptomus_trades_total" for name, _ in expected)
    assert any(name == "cryptomus_orderbook_best_bid_price" for name, _ in expected)
    updates = {key: value for key, value in expected.items()
               if key[0] == "cryptomus_websocket_messages_total"}
    assert len(updates) >= 4

    with SimulatorProcess("--replay", str(recording), "--speed", "max") as replay, \
            ExporterProcess(env=replay.exporter_env()) as exporter:
        def replayed() -> dict | None:
            got = stream_samples(exporter.metrics())
            counts = {key: value for key, value in got.items() if key in updates}
            return got if counts == updates else None

        got = wait_for(replayed, timeout=30, what="every recorded update replayed")
    assert got == expected


def test_record_stops_on_sigterm_with_a_complete_file_and_no_secrets(tmp_path):
    recording = tmp_path / "session.jsonl"
    with Simulator(SimulatorConfig(port=0, seed=3, rate=100.0,
                                   markets=["BTC_USDT", "ETH_USDT"])) as sim:
        process = subprocess.Popen(exporter_command("record", "--output", str(recording)),
                                   env={**CLEAN_ENV, **simulator_env(sim)},
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            wait_for(lambda: sim.stats.subscribe_requests["depth"] >= 1, timeout=20,
                     what="the recorder subscribed")
            token = sim.tokens_seen[-1]
            sign = hashlib.md5(sim.config.api_key.encode()).hexdigest()
            # were the exchange ever to echo a secret, the file holds <redacted> instead
            sim.push_raw(f'{{"echo": "{sim.config.api_key} {sign} {token}"}}')
            wait_for(lambda: recording.exists() and b"echo" in recording.read_bytes(),
                     timeout=10, what="the echo recorded")
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 0, output
    data = recording.read_bytes()
    assert data.endswith(b"\n")
    frames = [frame for _, frame in read_recording(recording)]  # every line complete
    assert any('"lastprice_update"' in frame for frame in frames)
    assert any('"lastprice_subscribe"' in frame for frame in frames)  # the acks too
    for secret in [sim.config.api_key, sign, *sim.tokens_seen]:
        assert secret.encode() not in data
    assert '{"echo": "<redacted> <redacted> <redacted>"}' in frames
    assert "recorded" in output


def test_record_with_seconds_writes_gzip_and_exits_0(tmp_path):
    recording = tmp_path / "short.jsonl.gz"
    with Simulator(SimulatorConfig(port=0, rate=50.0, markets=["BTC_USDT"])) as sim:
        result = run_exporter(["record", "--output", str(recording), "--seconds", "1.5",
                               "--cryptomus.channels", "lastprice,trade"],
                              env=simulator_env(sim), timeout=60)
        assert sim.stats.subscribe_requests["depth"] == 0  # the configuration is honoured
    assert result.returncode == 0, result.stderr
    assert gzip.decompress(recording.read_bytes()).count(b"\n") == len(
        list(read_recording(recording))) > 5


def test_record_refuses_a_bad_seconds_value_and_an_unwritable_file(tmp_path):
    result = run_exporter(["record", "--output", str(tmp_path / "x"), "--seconds", "-1"])
    assert result.returncode == 2 and "--seconds" in result.stderr
    result = run_exporter(["record", "--output", str(tmp_path / "no" / "dir" / "x"),
                           "--seconds", "1"],
                          env={"CRYPTOMUS_USER_ID": "u", "CRYPTOMUS_API_KEY": "k"})
    assert result.returncode == 1 and "cannot write" in result.stderr
