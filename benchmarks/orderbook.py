"""Order book: level updates per second on 200-level books, OrderBook vs a naive book.

The updates are the simulator's own depth updates for books kept 200 levels deep
(quantity changes, new levels, removed levels, trades sweeping the best level),
applied with ``OrderBook.apply`` exactly as the exporter does (decimal strings in,
validated and converted). The naive baseline gets the same updates as strings and
keeps each side as a list of (price, quantity) pairs, sorted again after every
update; its best price is the first pair. Both run in the same process, one after
the other, several times; the best run of each is reported.
"""

from __future__ import annotations

import math
import time

import frames as frame_set

from exporter.book import OrderBook
from exporter.simulator.world import World

LEVELS = 200
MARKETS = 10


class NaiveBook:
    """The baseline: sorted lists of (price, quantity), re-sorted on every change."""

    def __init__(self) -> None:
        self.bids: list[tuple[float, float]] = []
        self.asks: list[tuple[float, float]] = []

    def reload(self, bids: list, asks: list) -> None:
        self.bids = sorted(_parse(bids), reverse=True)
        self.asks = sorted(_parse(asks))

    def apply(self, bids: list, asks: list) -> None:
        self.bids = _update(self.bids, _parse(bids), reverse=True)
        self.asks = _update(self.asks, _parse(asks), reverse=False)

    @property
    def best_bid(self) -> float | None:
        return self.bids[0][0] if self.bids else None

    @property
    def best_ask(self) -> float | None:
        return self.asks[0][0] if self.asks else None


def _parse(levels: list) -> list[tuple[float, float]]:
    parsed = [(float(price), float(quantity)) for price, quantity in levels]
    if not all(0 < price < math.inf and 0 <= quantity < math.inf for price, quantity in parsed):
        raise ValueError("bad level")
    return parsed


def _update(side: list, levels: list, reverse: bool) -> list:
    for price, quantity in levels:
        side = [level for level in side if level[0] != price]
        if quantity:
            side.append((price, quantity))
        side.sort(reverse=reverse)
    return side


def depth_updates(count: int) -> tuple[list[dict], list[dict]]:
    """(full reloads of every book, ``count`` partial updates after them)."""
    world = World(frame_set.simulator_config(MARKETS, LEVELS), frame_set.EPOCH)
    reloads = [market.full_reload(0, frame_set.EPOCH) for market in world.markets.values()]
    updates: list[dict] = []
    while len(updates) < count:
        updates.extend(event.data for event in world.step(frame_set.EPOCH)
                       if event.channel == "depth")
    return reloads, updates[:count]


def run_once(book_type: type, reloads: list[dict], updates: list[dict]) -> tuple[float, object]:
    books = {}
    for data in reloads:
        book = books[data["symbol"]] = book_type()
        book.reload(data["bids"], data["asks"])
    started = time.perf_counter()
    for data in updates:
        books[data["symbol"]].apply(data["bids"], data["asks"])
    return time.perf_counter() - started, books


def measure(updates_count: int, rounds: int) -> dict:
    reloads, updates = depth_updates(updates_count)
    levels = sum(len(data["bids"]) + len(data["asks"]) for data in updates)
    best = {"orderbook": math.inf, "naive": math.inf}
    final = {}
    for _ in range(rounds):
        for name, book_type in (("orderbook", OrderBook), ("naive", NaiveBook)):
            seconds, final[name] = run_once(book_type, reloads, updates)
            best[name] = min(best[name], seconds)
    # Both books must agree, or the comparison means nothing.
    for symbol, book in final["orderbook"].items():
        naive = final["naive"][symbol]
        if (book.best_bid, book.best_ask) != (naive.best_bid, naive.best_ask):
            raise AssertionError(f"OrderBook and the naive book disagree on {symbol}")
    return {
        "books": len(reloads),
        "levels_per_side": LEVELS,
        "updates": len(updates),
        "level_updates": levels,
        "orderbook_rate": levels / best["orderbook"],
        "naive_rate": levels / best["naive"],
    }
