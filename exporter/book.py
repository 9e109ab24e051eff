"""Pure order book for one market: full reloads, partial deltas, best prices, depth bands.

Levels arrive as ``[price, quantity]`` pairs of decimal strings; a zero quantity
(in any spelling: "0", "0.000") removes the level. Prices are converted to float
once, so "1.50" and "1.5" are the same level.

This is the hot path of the depth channel, and a process may hold hundreds of
books of hundreds of levels. Each side is therefore two aligned sequences: its
prices, a sorted list of floats, and their quantities, an ``array('d')``. A level
is found by bisection; a new one is inserted and a removed one deleted in place;
the best bid and ask are always at the ends, so removing the best level (a trade
sweeping it: one partial update in five in the simulator's stream) never rescans
the side. A level costs about 40 bytes (about 110 as a dict entry with two float
objects), and depth bands are plain slices at scrape time.

Every update is validated completely before the book is touched: a malformed level
raises ``ValueError`` and leaves the book as it was, so the caller can count the
frame as an error and carry on.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence

_INF = math.inf
_LEVEL_TYPES = frozenset((list, tuple))  # a side and each level in it
_NUMBER_TYPES = frozenset((str, int, float))

Level = Sequence[str | float]
ParsedLevel = tuple[float, float]


class BookNotLoaded(Exception):
    """A partial update arrived before any full reload: the book needs a resync."""


def _parse_side(levels: Sequence[Level]) -> list[ParsedLevel]:
    """Convert ``[[price, quantity], ...]`` to ``[(price, quantity), ...]`` or raise ValueError."""
    if type(levels) not in _LEVEL_TYPES:
        raise ValueError("order book side is not a list of levels")
    parsed = []
    append = parsed.append
    for level in levels:
        # Identity checks first: a list of two strings (what the exchange sends) is
        # accepted without hashing a type; anything else takes the set lookups.
        kind = type(level)
        if (kind is not list and kind is not tuple) or len(level) != 2:
            raise ValueError("order book level is not a [price, quantity] pair")
        price_text, quantity_text = level
        if ((type(price_text) is not str and type(price_text) not in _NUMBER_TYPES)
                or (type(quantity_text) is not str and type(quantity_text) not in _NUMBER_TYPES)):
            raise ValueError("order book price and quantity must be decimal strings or numbers")
        try:
            price = float(price_text)
            quantity = float(quantity_text)
        except (ValueError, OverflowError):
            raise ValueError("order book level is not numeric") from None
        # Chained comparisons are False for NaN, so these also reject NaN and infinities.
        if not 0.0 < price < _INF:
            raise ValueError("order book price must be positive and finite")
        if not 0.0 <= quantity < _INF:
            raise ValueError("order book quantity must be non-negative and finite")
        append((price, quantity))
    return parsed


class OrderBook:
    """Local copy of one market's order book (one depth scale)."""

    __slots__ = (
        "_ask_prices",
        "_ask_quantities",
        "_bid_prices",
        "_bid_quantities",
        "_depth_bands",
        "_depth_result",
        "_depth_version",
        "_loaded",
        "_version",
    )

    def __init__(self) -> None:
        # Both sides ascending: the best bid is the last price, the best ask the first.
        self._bid_prices: list[float] = []
        self._bid_quantities = array("d")
        self._ask_prices: list[float] = []
        self._ask_quantities = array("d")
        self._loaded = False
        self._version = 0
        self._depth_version = -1
        self._depth_bands: tuple[float, ...] = ()
        self._depth_result: tuple[list[float], list[float]] = ([], [])

    @property
    def loaded(self) -> bool:
        """True once a full reload has arrived (and until :meth:`clear`)."""
        return self._loaded

    @property
    def version(self) -> int:
        """Increases whenever the book may have changed; equal versions mean equal books."""
        return self._version

    @property
    def best_bid(self) -> float | None:
        return self._bid_prices[-1] if self._bid_prices else None

    @property
    def best_ask(self) -> float | None:
        return self._ask_prices[0] if self._ask_prices else None

    def reload(self, bids: Sequence[Level], asks: Sequence[Level]) -> bool:
        """Replace the whole book (``full_reload: true``); returns :meth:`is_crossed`."""
        parsed_bids, parsed_asks = _parse_side(bids), _parse_side(asks)
        self._bid_prices, self._bid_quantities = _sorted_side(parsed_bids)
        self._ask_prices, self._ask_quantities = _sorted_side(parsed_asks)
        self._loaded = True
        self._version += 1
        return self.is_crossed()

    def apply(self, bids: Sequence[Level], asks: Sequence[Level]) -> bool:
        """Apply a partial update; raises BookNotLoaded before the first reload.
        Returns :meth:`is_crossed` (checked here: one call less per depth frame)."""
        if not self._loaded:
            raise BookNotLoaded("partial order book update before a full reload")
        # A delta usually changes one side: an empty list skips the parse of the other.
        parsed_bids = _parse_side(bids) if bids or type(bids) is not list else bids
        parsed_asks = _parse_side(asks) if asks or type(asks) is not list else asks
        if not (parsed_bids or parsed_asks):
            return self.is_crossed()
        bid_prices, ask_prices = self._bid_prices, self._ask_prices
        if parsed_bids:
            _write(bid_prices, self._bid_quantities, parsed_bids)
        if parsed_asks:
            _write(ask_prices, self._ask_quantities, parsed_asks)
        self._version += 1
        return bool(bid_prices and ask_prices) and bid_prices[-1] >= ask_prices[0]

    def clear(self) -> None:
        """Forget everything; the next partial update raises BookNotLoaded."""
        self._bid_prices, self._bid_quantities = [], array("d")
        self._ask_prices, self._ask_quantities = [], array("d")
        self._loaded = False
        self._version += 1

    def is_crossed(self) -> bool:
        """True when both sides exist and the best bid is at or above the best ask."""
        bid_prices, ask_prices = self._bid_prices, self._ask_prices
        return bool(bid_prices and ask_prices) and bid_prices[-1] >= ask_prices[0]

    def levels(self) -> tuple[int, int]:
        """(number of bid levels, number of ask levels)."""
        return len(self._bid_prices), len(self._ask_prices)

    def snapshot(self) -> tuple[dict[float, float], dict[float, float]]:
        """Copies of (bids, asks) as {price: quantity}, for inspection and tests."""
        return (dict(zip(self._bid_prices, self._bid_quantities, strict=True)),
                dict(zip(self._ask_prices, self._ask_quantities, strict=True)))

    def depth(self, bands: Sequence[float]) -> tuple[list[float], list[float]]:
        """Base quantity within each band (a ratio) of the mid price, per side.

        A bid counts for a band when ``price >= mid * (1 - band)``, an ask when
        ``price <= mid * (1 + band)``. Without both sides there is no mid and every
        band is 0. The result is cached until the book changes, so scraping an idle
        market repeatedly costs nothing.
        """
        bands = tuple(bands)
        if self._depth_version != self._version or self._depth_bands != bands:
            for band in bands:
                if not 0.0 <= band < _INF:
                    raise ValueError(f"depth band must be a non-negative ratio, got {band!r}")
            self._depth_result = self._compute_depth(bands)
            self._depth_bands = bands
            self._depth_version = self._version
        bid_depth, ask_depth = self._depth_result
        return list(bid_depth), list(ask_depth)

    def _compute_depth(self, bands: tuple[float, ...]) -> tuple[list[float], list[float]]:
        bid_prices, ask_prices = self._bid_prices, self._ask_prices
        if not (bid_prices and ask_prices):
            return [0.0] * len(bands), [0.0] * len(bands)
        mid = (bid_prices[-1] + ask_prices[0]) / 2.0
        bid_counts = [len(bid_prices) - bisect_left(bid_prices, mid * (1.0 - b)) for b in bands]
        ask_counts = [bisect_right(ask_prices, mid * (1.0 + b)) for b in bands]
        return (
            _sums_of_best(self._bid_quantities[::-1], bid_counts),
            _sums_of_best(self._ask_quantities, ask_counts),
        )


def _sorted_side(levels: list[ParsedLevel]) -> tuple[list[float], array]:
    """A side's (prices, quantities), ascending, from a full list of levels."""
    # dict() keeps the last quantity given for a price, as a sequence of deltas would.
    book = {price: quantity for price, quantity in dict(levels).items() if quantity}
    prices = sorted(book)
    return prices, array("d", map(book.__getitem__, prices))


def _write(prices: list[float], quantities: array, levels: list[ParsedLevel]) -> None:
    """Set (or, with quantity 0, remove) each level of one side, keeping it sorted."""
    for price, quantity in levels:
        index = bisect_left(prices, price)
        if index < len(prices) and prices[index] == price:
            if quantity:
                quantities[index] = quantity
            else:
                del prices[index]
                del quantities[index]
        elif quantity:
            prices.insert(index, price)
            quantities.insert(index, quantity)


def _sums_of_best(outward: Sequence[float], counts: list[int]) -> list[float]:
    """Total quantity of the ``counts[i]`` best levels, for each i.

    ``outward`` lists the side's quantities from the best level outwards. Bands are
    nested, so each level is added once, to the running total of the narrowest
    band that contains it.
    """
    sums = [0.0] * len(counts)
    total = 0.0
    summed = 0
    for index in sorted(range(len(counts)), key=counts.__getitem__):
        count = counts[index]
        total += sum(outward[summed:count])
        summed = count
        sums[index] = total
    return sums
