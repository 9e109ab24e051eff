"""The exchange behaviour switches (the protocol's open points), on the wire:
real loopback sockets and websocket-client, as the exporter would see them."""

from __future__ import annotations

import itertools
import time
from decimal import Decimal

import pytest

from exporter.simulator import SimulatorConfig

from .conftest import apply_levels, get
from .test_protocol import apply_depth

SCALES_PATH = "/api/v2/symbol-scales"


def scale_of(sim, symbol: str, index: int) -> Decimal:
    scales = get(sim, SCALES_PATH, params={"symbol": symbol}).json()["data"]
    return Decimal(next(s["scale"] for s in scales if s["index"] == index))


def crossed(book: dict[str, dict[Decimal, Decimal]]) -> bool:
    return bool(book["bids"] and book["asks"]) and max(book["bids"]) >= min(book["asks"])


def test_several_depth_scales_interleave_each_a_sound_book(start_sim, connect) -> None:
    sim = start_sim(markets=2, depth_levels=20, depth_scales=(0, 1))
    everything, per_market = connect(sim), connect(sim)
    sim.pause()
    everything.subscribe("depth", ["all"])
    per_market.subscribe("depth", ["BTC_USDT:0", "BTC_USDT:2"])
    books: dict[tuple[str, int], dict] = {}
    naive = {symbol: {"asks": {}, "bids": {}} for symbol in sim.markets}
    for frame in everything.drain():  # the reloads follow the ack
        data = frame["data"]
        apply_levels(naive[data["symbol"]], data)
        assert data["full_reload"] is True
        books[(data["symbol"], data["scale_index"])] = {}
        apply_depth(books[(data["symbol"], data["scale_index"])], data)
    assert list(books) == [(s, i) for s in sim.markets for i in (0, 1)]  # reloads in order
    assert {(f["data"]["symbol"], f["data"]["scale_index"]) for f in per_market.drain()} == {
        ("BTC_USDT", 0),
        ("BTC_USDT", 2),
    }
    scales = {key: scale_of(sim, *key) for key in books}
    sim.resume()
    order: dict[str, list[int]] = {symbol: [] for symbol in sim.markets}
    naive_crossings = 0
    for frame in everything.events(1500, "depth_update"):
        data = frame["data"]
        key = (data["symbol"], data["scale_index"])
        assert key in books, f"a scale that was not subscribed: {key}"
        order[data["symbol"]].append(data["scale_index"])
        for price, _ in data["asks"] + data["bids"]:
            assert Decimal(price) % scales[key] == 0, f"{price} not on the {scales[key]} grid"
        apply_depth(books[key], data)
        assert max(books[key]["bids"]) < min(books[key]["asks"]), f"crossed book {key}"
        apply_levels(naive[data["symbol"]], data)
        naive_crossings += crossed(naive[data["symbol"]])
    for indices in order.values():  # interleaved, not one scale after the other
        changes = sum(a != b for a, b in itertools.pairwise(indices))
        assert set(indices) == {0, 1} and changes > 10
    assert naive_crossings > 0, "a client mixing the scales should see a crossed book"
    per_market_scales = {f["data"]["scale_index"] for f in per_market.events(200, "depth_update")}
    assert per_market_scales == {0, 2}


@pytest.mark.parametrize("channel", ["trade", "deal", "depth"])
def test_ack_failure_for_a_chosen_channel(start_sim, connect, channel: str) -> None:
    sim = start_sim(autogen=False, ack_failure_channels=(channel,))
    client = connect(sim)
    params = ["BTC_USDT:0"] if channel == "depth" else ["all"]
    for _ in range(2):  # nothing was subscribed, so a retry fails the same way
        ack = client.request(f"{channel}_subscribe", params)
        expected = {"id": client.next_id, "method": f"{channel}_subscribe"}
        if channel == "deal":  # the deal ack omits "method", as its success ack does
            del expected["method"]
        assert ack == {**expected, "data": {"status": "failure"}, "error": None}
    assert client.drain() == []  # no book reload either
    assert sim.push(channel, {"symbol": "BTC_USDT"}) == 0
    assert client.subscribe("lastprice")["data"] == {"status": "success"}
    assert sim.stats.ack_failures_sent == {channel: 2}
    assert sim.stats.duplicate_subscribes == 0


def test_pongs_with_id_zero(start_sim, connect) -> None:
    sim = start_sim(autogen=False, pong_id_zero=True)
    client = connect(sim)
    for _ in range(3):
        ping_id = client.send("ping")
        assert ping_id != 0
        assert client.recv() == {"id": 0, "method": "pong", "data": None, "error": None}
    assert sim.stats.pings == 3


def test_repeated_subscription_replaces_the_old_one(start_sim, connect) -> None:
    sim = start_sim(markets=3, repeat_subscription="replace")
    client = connect(sim)
    sim.pause()
    client.subscribe("trade", ["BTC_USDT"])
    client.subscribe("depth", ["BTC_USDT:0"])
    assert [f["data"]["symbol"] for f in client.drain()] == ["BTC_USDT"]
    again = client.request("trade_subscribe", ["ETH_USDT"])
    assert again == {
        "id": client.next_id,
        "method": "trade_subscribe",
        "data": {"status": "success"},
        "error": None,
    }
    client.subscribe("depth", ["all"])  # the full book reload comes again, now of every market
    reloads = [f["data"] for f in client.drain()]
    assert [(d["symbol"], d["full_reload"]) for d in reloads] == [(s, True) for s in sim.markets]
    sim.resume()
    trades = {f["data"]["symbol"] for f in client.events(100, "trade_update")}
    assert trades == {"ETH_USDT"}
    assert sim.stats.duplicate_subscribes == sim.stats.subscriptions_replaced == 2
    assert sim.stats.errors_sent == {}


def test_repeated_subscription_is_rejected_by_default(start_sim, connect) -> None:
    sim = start_sim(autogen=False)
    client = connect(sim)
    client.subscribe("depth", ["BTC_USDT:0"])
    client.drain()
    again = client.request("depth_subscribe", ["all"])
    assert again["data"] is None and again["error"]["code"] == 2
    assert client.drain() == []  # no reload
    assert sim.stats.subscriptions_replaced == 0


def _depth_until_full_reload(client) -> list[dict]:
    """Depth updates up to and including the first full reload."""
    frames = []
    while not frames or not frames[-1]["full_reload"]:
        frames.append(client.events(1, "depth_update")[0]["data"])
    return frames


def test_a_late_book_comes_after_partial_updates_each_time_depth_is_subscribed(
    start_sim, connect
) -> None:
    sim = start_sim(autogen=False, late_book=0.5)
    client = connect(sim)
    for _ in range(2):  # a new subscription waits for its book again
        client.subscribe("depth", ["BTC_USDT:0", "ETH_USDT:0"])
        started = time.monotonic()
        frames = _depth_until_full_reload(client)
        waited = time.monotonic() - started
        partials = [f for f in frames if not f["full_reload"]]
        assert {f["symbol"] for f in partials} == {"BTC_USDT", "ETH_USDT"}
        assert len(partials) >= 4 and waited >= 0.4  # about 0.5 s of partials, every 0.2 s
        assert client.events(1, "depth_update")[0]["data"]["full_reload"]  # ETH_USDT's
        assert client.request("depth_unsubscribe", ["all"])["error"] is None
    assert sim.stats.late_book_reloads == {"BTC_USDT": 2, "ETH_USDT": 2}
    assert sim.stats.late_book_partials["BTC_USDT"] >= 4


@pytest.mark.parametrize(
    "bad",
    [
        {"depth_scales": ()},
        {"depth_scales": (0, 0)},
        {"depth_scales": (4,)},
        {"ack_failure_channels": ("candles",)},
        {"repeat_subscription": "ignore"},
        {"tls_cert": "cert.pem"},
        {"replay_speed": -1},
        {"late_book": -1},
        {"late_book": 1, "replay": "session.jsonl"},
    ],
)
def test_switch_values_are_validated(bad: dict) -> None:
    with pytest.raises(ValueError):
        SimulatorConfig(**bad)
