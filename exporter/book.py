"""Pure order book for one market: full reloads, partial deltas, best prices, depth bands.

Levels arrive as ``[price, quantity]`` pairs of decimal strings; a zero quantity
(in any spelling: "0", "0.000") removes the level. Prices are converted to float
once and used as dict keys, so "1.50" and "1.5" are the same level.

This is the hot path of the depth channel, so the best bid and ask are maintained
incrementally: a new level only has to be compared with the current best, and the
side is scanned again only when an update removes its best level.

Every update is validated completely before the book is touched: a malformed level
raises ``ValueError`` and leaves the book as it was, so the caller can count the
frame as an error and carry on.
"""

from __future__ import annotations

import math
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
        if type(level) not in _LEVEL_TYPES or len(level) != 2:
            raise ValueError("order book level is not a [price, quantity] pair")
        price_text, quantity_text = level
        if type(price_text) not in _NUMBER_TYPES or type(quantity_text) not in _NUMBER_TYPES:
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
        "_asks",
        "_best_ask",
        "_best_bid",
        "_bids",
        "_depth_bands",
        "_depth_result",
        "_depth_version",
        "_loaded",
        "_version",
    )

    def __init__(self) -> None:
        self._bids: dict[float, float] = {}
        self._asks: dict[float, float] = {}
        # Internal sentinels keep the hot loop free of None checks; the
        # properties turn an empty side into None.
        self._best_bid = -_INF
        self._best_ask = _INF
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
        return self._best_bid if self._bids else None

    @property
    def best_ask(self) -> float | None:
        return self._best_ask if self._asks else None

    def reload(self, bids: Sequence[Level], asks: Sequence[Level]) -> None:
        """Replace the whole book (``full_reload: true``)."""
        parsed_bids, parsed_asks = _parse_side(bids), _parse_side(asks)
        # dict() keeps the last quantity given for a price, as a sequence of deltas would.
        self._bids = {price: quantity for price, quantity in dict(parsed_bids).items() if quantity}
        self._asks = {price: quantity for price, quantity in dict(parsed_asks).items() if quantity}
        self._best_bid = max(self._bids, default=-_INF)
        self._best_ask = min(self._asks, default=_INF)
        self._loaded = True
        self._version += 1

    def apply(self, bids: Sequence[Level], asks: Sequence[Level]) -> None:
        """Apply a partial update; raises BookNotLoaded before the first reload."""
        if not self._loaded:
            raise BookNotLoaded("partial order book update before a full reload")
        parsed_bids, parsed_asks = _parse_side(bids), _parse_side(asks)
        if not (parsed_bids or parsed_asks):
            return
        # The two sides are written out: one shared loop would need a comparison
        # callable, i.e. an extra call per level on the hot path.
        if parsed_bids:
            book = self._bids
            best = self._best_bid
            lost_best = False
            for price, quantity in parsed_bids:
                if quantity:
                    book[price] = quantity
                    if price > best:  # noqa: PLR1730 - max() costs a call per level
                        best = price
                elif book.pop(price, None) is not None and price == best:
                    lost_best = True
            self._best_bid = max(book, default=-_INF) if lost_best else best
        if parsed_asks:
            book = self._asks
            best = self._best_ask
            lost_best = False
            for price, quantity in parsed_asks:
                if quantity:
                    book[price] = quantity
                    if price < best:  # noqa: PLR1730 - min() costs a call per level
                        best = price
                elif book.pop(price, None) is not None and price == best:
                    lost_best = True
            self._best_ask = min(book, default=_INF) if lost_best else best
        self._version += 1

    def clear(self) -> None:
        """Forget everything; the next partial update raises BookNotLoaded."""
        self._bids = {}
        self._asks = {}
        self._best_bid = -_INF
        self._best_ask = _INF
        self._loaded = False
        self._version += 1

    def is_crossed(self) -> bool:
        """True when both sides exist and the best bid is at or above the best ask."""
        return bool(self._bids and self._asks) and self._best_bid >= self._best_ask

    def levels(self) -> tuple[int, int]:
        """(number of bid levels, number of ask levels)."""
        return len(self._bids), len(self._asks)

    def snapshot(self) -> tuple[dict[float, float], dict[float, float]]:
        """Copies of (bids, asks) as {price: quantity}, for inspection and tests."""
        return dict(self._bids), dict(self._asks)

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
        if not (self._bids and self._asks):
            return [0.0] * len(bands), [0.0] * len(bands)
        mid = (self._best_bid + self._best_ask) / 2.0
        bid_prices = sorted(self._bids)
        ask_prices = sorted(self._asks)
        bid_counts = [len(bid_prices) - bisect_left(bid_prices, mid * (1.0 - b)) for b in bands]
        ask_counts = [bisect_right(ask_prices, mid * (1.0 + b)) for b in bands]
        bid_prices.reverse()
        return (
            _sums_of_best(self._bids, bid_prices, bid_counts),
            _sums_of_best(self._asks, ask_prices, ask_counts),
        )


def _sums_of_best(book: dict[float, float], outward: list[float], counts: list[int]) -> list[float]:
    """Total quantity of the ``counts[i]`` best levels, for each i.

    ``outward`` lists the side's prices from the best one outwards. Bands are
    nested, so each level is added once, to the running total of the narrowest
    band that contains it.
    """
    sums = [0.0] * len(counts)
    total = 0.0
    summed = 0
    for index in sorted(range(len(counts)), key=counts.__getitem__):
        count = counts[index]
        total += sum(map(book.__getitem__, outward[summed:count]))
        summed = count
        sums[index] = total
    return sums
