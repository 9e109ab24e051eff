"""``simulate --replay``: a recording served back over the WebSocket, in order,
time-scaled, with the client's own requests answered live."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import gevent
import orjson
import pytest

from exporter.recording import RecordingWriter
from exporter.simulator import Simulator, SimulatorConfig, replay

from .conftest import REPO, Client, get, open_process_ws, simulate_process

T0 = 1750953000.0


def frame(method: str, data: object, event_id: object = 0, error: object = None) -> str:
    return orjson.dumps({"id": event_id, "method": method, "data": data, "error": error}).decode()


DEPTH_RELOAD = {"symbol": "BTC_USDT", "timestamp": 1750953001, "full_reload": True,
                "scale_index": 0, "asks": [["107043.93", "0.304313"]],
                "bids": [["106976.11", "0.5"]]}  # fmt: skip
ORDER = {"type": "created", "info": {"id": "01JYET5DQ772MPYHHE417FQF1J", "symbol": "TRX_USDT",
                                     "direction": "sell", "price": "0.2200"}}  # fmt: skip
# What a recorder subscribed to lastprice, depth, trade, order and balance received.
RECORDED = [
    (True, frame("lastprice_subscribe", {"status": "success"}, 1)),
    (True, frame("depth_subscribe", {"status": "success"}, 2)),
    (False, frame("depth_update", DEPTH_RELOAD)),
    (True, frame("trade_subscribe", {"status": "success"}, 3)),
    (True, frame("order_subscribe", {"status": "success"}, 4)),
    (True, frame("balance_subscribe", {"status": "success"}, 5)),
    (False, frame("lastprice_update", {"symbol": "BTC_USDT", "timestamp": 1, "price": "107152.5"})),
    (False, frame("trade_update", {"symbol": "ETH_USDT", "timestamp": 1, "trades": []})),
    (True, frame("pong", None, 6)),
    (False, "this is not json {"),
    (False, frame("candles_update", {"symbol": "BTC_USDT"})),
    (True, frame("pong", None, 0)),
    (False, frame("order_update", ORDER, "3")),
    (True, '{"id": 9, "data": {"status": "success"}, "error": null}'),  # an unsubscribe ack
    (True, frame("depth_subscribe", None, 10, {"message": "already subscribed", "code": 2})),
    (False, frame("balance_update", {"info": {"currencyCode": "USDT", "newBalance": "1"}}, "4")),
    (False, '{"id": [], "method": 12, "data": null, "error": "bad"}'),
    (False, frame("lastprice_update", {"symbol": "ETH_USDT", "timestamp": 2, "price": "2450.1"})),
]
UPDATES = [text for is_reply, text in RECORDED if not is_reply]
SUBSCRIBED = ("lastprice", "depth", "trade", "order", "balance")


def write_recording(path: Path, step: float = 0.01) -> Path:
    with RecordingWriter(path) as recording:
        for number, (_, text) in enumerate(RECORDED):
            recording.write(text, t=T0 + number * step)
    return path


@pytest.fixture
def replaying(tmp_path):
    sims: list[Simulator] = []

    def start(name: str = "session.jsonl.gz", step: float = 0.01, **options: object) -> Simulator:
        path = write_recording(tmp_path / name, step)
        sim = Simulator(SimulatorConfig(replay=str(path), **{"replay_speed": 0, **options}))
        sims.append(sim.start())
        return sim

    yield start
    for sim in sims:
        sim.stop()


def receive_texts(client: Client, count: int) -> list[str]:
    return [client.ws.recv() for _ in range(count)]


def test_the_classifier_tells_replies_from_updates() -> None:
    assert [replay.classify(0.0, text).is_reply for _, text in RECORDED] == [
        is_reply for is_reply, _ in RECORDED
    ]
    assert replay.classify(0.0, UPDATES[0]).channel == "depth"
    assert replay.classify(0.0, frame("candles_update", {})).channel is None


def test_a_client_receives_exactly_the_recorded_updates_in_order(replaying) -> None:
    sim = replaying()
    markets = get(sim, "/v1/exchange/market").json()["result"]
    assert [m["symbol"] for m in markets] == ["BTC_USDT", "ETH_USDT", "TRX_USDT"]
    assert markets[0]["quotePrec"] == "2" and markets[0]["basePrec"] == "6"
    scales = get(sim, "/api/v2/symbol-scales", params={"symbol": "BTC_USDT"}).json()["data"]
    assert scales[0] == {"scale": "0.01", "index": 0}
    client = Client(sim)
    for number, channel in enumerate(SUBSCRIBED):  # answered live, with the client's ids
        ack = client.request(f"{channel}_subscribe", ["all"])
        assert ack == {"id": 101 + number, "method": f"{channel}_subscribe",
                       "data": {"status": "success"}, "error": None}  # fmt: skip
    assert receive_texts(client, len(UPDATES)) == UPDATES
    assert client.request("ping") == {"id": client.next_id, "method": "pong", "data": None,
                                      "error": None}  # fmt: skip
    stats = sim.stats
    assert stats.replays_completed == 1
    assert stats.replay_frames_queued == len(UPDATES)
    assert stats.replay_replies_skipped == len(RECORDED) - len(UPDATES)
    assert client.request("depth_unsubscribe", ["all"])["error"] is None
    client.subscribe("depth", ["all"])  # a resync does not start the replay again
    assert client.drain() == []
    assert stats.replays_completed == 1


def test_updates_of_unsubscribed_channels_are_left_out(replaying, monkeypatch) -> None:
    monkeypatch.setattr(replay, "SETTLE_SECONDS", 0.1)
    sim = replaying()
    client = Client(sim)
    client.subscribe("lastprice", ["BTC_USDT", "ETH_USDT"])
    client.subscribe("trade", ["ETH_USDT"])
    expected = [
        text for text in UPDATES
        if replay.classify(0.0, text).channel in (None, "lastprice", "trade")
    ]  # fmt: skip
    assert receive_texts(client, len(expected)) == expected
    assert client.request("ping")["id"] == client.next_id
    assert sim.stats.replay_unsubscribed_skipped == len(UPDATES) - len(expected)


def test_replay_keeps_the_recorded_pace_scaled_by_speed(replaying) -> None:
    sim = replaying(step=0.1, replay_speed=2.0)  # 1.7 s recorded: 0.85 s at speed 2
    client = Client(sim)
    for channel in SUBSCRIBED:
        client.subscribe(channel, ["all"])
    first = client.ws.recv()
    started = time.monotonic()
    rest = receive_texts(client, len(UPDATES) - 1)
    elapsed = time.monotonic() - started
    assert [first, *rest] == UPDATES
    recorded_span = (len(RECORDED) - 1 - 2) * 0.1  # from the first update to the last
    assert elapsed >= recorded_span / 2 - 0.05


def test_every_connection_gets_the_whole_recording(replaying) -> None:
    sim = replaying(name="plain.jsonl")
    for _ in range(2):
        client = Client(sim)
        for channel in SUBSCRIBED:
            client.subscribe(channel, ["all"])
        assert receive_texts(client, len(UPDATES)) == UPDATES
        client.close()
    assert sim.stats.replays_completed == 2


def test_a_malformed_recording_is_refused_with_its_line(tmp_path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"t": 1, "frame": "{}"}\n{"t": 2}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: \"frame\" must be"):
        Simulator(SimulatorConfig(replay=str(path)))


def test_simulate_replay_subprocess(tmp_path) -> None:
    path = write_recording(tmp_path / "session.jsonl.gz")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("nope\n")
    failed = subprocess.run(
        [sys.executable, "-m", "exporter", "simulate", "--listen", "127.0.0.1:0",
         "--replay", str(bad)],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert failed.returncode == 2
    assert f"simulate: {bad}:1: not JSON" in failed.stderr
    with simulate_process("--replay", str(path), "--speed", "max") as (process, line):
        assert f"replay={path} frames={len(RECORDED)} speed=max" in line
        ws = open_process_ws(line)
        for number, channel in enumerate(SUBSCRIBED, start=1):
            ws.send(orjson.dumps({"id": number, "method": f"{channel}_subscribe",
                                  "params": ["all"]}))  # fmt: skip
            assert orjson.loads(ws.recv())["id"] == number
        assert [ws.recv() for _ in UPDATES] == UPDATES
        ws.close()
        process.send_signal(signal.SIGTERM)
        with gevent.Timeout(15):
            assert process.wait() == 0


def test_a_recording_broken_after_start_stops_that_replay_with_a_warning(
    replaying, tmp_path, caplog
) -> None:
    sim = replaying(name="growing.jsonl")
    with (tmp_path / "growing.jsonl").open("a") as file:
        file.write('{"t": 1, "frame": "cut sh')  # a writer still busy with its last line
    client = Client(sim)
    for channel in SUBSCRIBED:
        client.subscribe(channel, ["all"])
    assert receive_texts(client, len(UPDATES)) == UPDATES
    assert client.drain() == []
    assert sim.stats.replays_completed == 0
    assert f"replay stopped: {tmp_path / 'growing.jsonl'}:{len(RECORDED) + 1}: not JSON" in (
        caplog.text
    )
