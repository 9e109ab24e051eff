"""The pure market/account model behind the simulator (no sockets)."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from exporter.simulator.config import SimulatorConfig
from exporter.simulator.world import World

EPOCH = 1750000000


@pytest.mark.parametrize(
    ("seed", "markets", "levels"),
    [(1, 3, 50), (2, 12, 1), (3, ["FOO_BTC", "SHIB_USDT", "BTC_USDT"], 200), (4, 40, 3)],
)
def test_books_accounts_and_views_stay_consistent(seed: int, markets, levels: int) -> None:
    world = World(SimulatorConfig(seed=seed, markets=markets, depth_levels=levels), EPOCH)
    for market in world.markets.values():
        for index in (1, 2, 3):
            market.activate_scale(index)
    for step in range(1500):
        world.step(EPOCH + step)
    for market in world.markets.values():
        bids, asks = market.books
        assert max(bids) < min(asks)
        assert 1 <= len(bids) <= levels and 1 <= len(asks) <= levels
        for view_bids, view_asks in market.views.values():
            assert max(view_bids) < min(view_asks)
            assert sum(view_bids.values()) == sum(bids.values())
            assert sum(view_asks.values()) == sum(asks.values())
        assert market.low <= market.last <= market.high
    # every held amount is exactly what the open orders still reserve
    reserved: Counter[str] = Counter()
    for order in world.account.open_orders():
        base, quote = order["symbol"].split("_")
        if order["direction"] == "buy":
            reserved[quote] += Decimal(order["value"]) - Decimal(order["filledValue"])
        else:
            reserved[base] += Decimal(order["quantity"]) - Decimal(order["filledQuantity"])
    for row in world.account.balances():
        assert Decimal(row["available"]) >= 0
        assert Decimal(row["held"]) == reserved[row["ticker"]]


def test_events_depend_on_the_seed_only() -> None:
    def events(seed: int) -> list:
        world = World(SimulatorConfig(seed=seed, markets=5), EPOCH)
        return [event for step in range(500) for event in world.step(EPOCH + step)]

    assert events(7) == events(7)
    assert events(7) != events(8)
    assert {event.channel for event in events(7)} == {
        "lastprice", "ticker", "depth", "trade", "order", "balance", "deal"
    }  # fmt: skip
