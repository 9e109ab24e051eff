"""Property tests: OrderBook against a naive reference model (dicts + max/min + sums)."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.book import BookNotLoaded, OrderBook

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class InvalidLevel(Exception):
    pass


def reference_level(level) -> tuple[float, float]:
    """The documented rules for one level, written out plainly."""
    if type(level) not in (list, tuple) or len(level) != 2:
        raise InvalidLevel
    values = []
    for item in level:
        if type(item) not in (str, int, float):
            raise InvalidLevel
        try:
            value = float(item)
        except (ValueError, OverflowError):
            raise InvalidLevel from None
        if not math.isfinite(value):
            raise InvalidLevel
        values.append(value)
    price, quantity = values
    if price <= 0 or quantity < 0:
        raise InvalidLevel
    return price, quantity


class ReferenceBook:
    """Obviously correct and slow: a dict per side, best prices by max/min."""

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.loaded = False

    @staticmethod
    def parse(levels) -> list[tuple[float, float]]:
        if type(levels) not in (list, tuple):
            raise InvalidLevel
        return [reference_level(level) for level in levels]

    @staticmethod
    def write(side: dict[float, float], levels) -> None:
        for price, quantity in levels:
            if quantity == 0:
                side.pop(price, None)
            else:
                side[price] = quantity

    def reload(self, bids, asks) -> None:
        bids, asks = self.parse(bids), self.parse(asks)
        self.bids, self.asks = {}, {}
        self.write(self.bids, bids)
        self.write(self.asks, asks)
        self.loaded = True

    def apply(self, bids, asks) -> None:
        if not self.loaded:
            raise BookNotLoaded
        bids, asks = self.parse(bids), self.parse(asks)
        self.write(self.bids, bids)
        self.write(self.asks, asks)

    def clear(self) -> None:
        self.bids, self.asks = {}, {}
        self.loaded = False

    def best_bid(self) -> float | None:
        return max(self.bids) if self.bids else None

    def best_ask(self) -> float | None:
        return min(self.asks) if self.asks else None

    def depth(self, bands) -> tuple[list[float], list[float]]:
        if not (self.bids and self.asks):
            return [0.0] * len(bands), [0.0] * len(bands)
        mid = (self.best_bid() + self.best_ask()) / 2.0
        bid_depth = [
            math.fsum(q for p, q in self.bids.items() if p >= mid * (1.0 - band)) for band in bands
        ]
        ask_depth = [
            math.fsum(q for p, q in self.asks.items() if p <= mid * (1.0 + band)) for band in bands
        ]
        return bid_depth, ask_depth


def assert_same(book: OrderBook, reference: ReferenceBook) -> None:
    assert book.loaded == reference.loaded
    assert book.snapshot() == (reference.bids, reference.asks)
    assert book.best_bid == reference.best_bid()
    assert book.best_ask == reference.best_ask()
    assert book.levels() == (len(reference.bids), len(reference.asks))
    crossed = bool(reference.bids and reference.asks) and max(reference.bids) >= min(reference.asks)
    assert book.is_crossed() == crossed


def assert_same_depth(book: OrderBook, reference: ReferenceBook, bands) -> None:
    actual = book.depth(bands)
    expected = reference.depth(bands)
    for actual_side, expected_side in zip(actual, expected, strict=True):
        assert len(actual_side) == len(expected_side)
        for got, want in zip(actual_side, expected_side, strict=True):
            assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9), (actual, expected)
    # A second call is served from the cache and must not differ.
    assert book.depth(bands) == actual


def run(book: OrderBook, reference: ReferenceBook, operation) -> None:
    """Apply one operation to both; they must fail the same way or agree afterwards."""
    kind, *arguments = operation
    if kind == "depth":
        assert_same_depth(book, reference, arguments[0])
        return
    version = book.version
    try:
        getattr(reference, kind)(*arguments)
    except InvalidLevel:
        expected_error = ValueError
    except BookNotLoaded:
        expected_error = BookNotLoaded
    else:
        expected_error = None
    try:
        getattr(book, kind)(*arguments)
    except (ValueError, BookNotLoaded) as error:
        assert type(error) is expected_error, (operation, error)
        assert book.version == version
    else:
        assert expected_error is None, operation
        assert book.version >= version
    assert_same(book, reference)


# Prices on a small grid of quarter ticks, so updates hit existing levels, remove
# the best level and cross the book often; several spellings per price.
price_texts = st.builds(
    lambda ticks, spelling: spelling.format(ticks / 4),
    st.integers(min_value=1, max_value=40),
    st.sampled_from(["{}", "{:.2f}", "{:.6f}", "{:g}"]),
)
zero_texts = st.sampled_from(["0", "0.000", "0.0", "-0", "0e0", "0E-8"])
positive_texts = st.one_of(
    st.sampled_from(["1", "0.5", "2.25", "0.000001", "1000000"]),
    st.floats(min_value=1e-6, max_value=1e6).map(repr),
    st.floats(min_value=1e-6, max_value=1e6).map("{:.8f}".format),
)
quantity_texts = st.one_of(zero_texts, positive_texts)
valid_levels = st.lists(st.tuples(price_texts, quantity_texts).map(list), max_size=12)
bands = st.lists(
    st.one_of(
        st.sampled_from([0.0, 0.005, 0.01, 0.02, 0.015625, 0.25, 0.5, 1.0, 3.0]),
        st.floats(min_value=0.0, max_value=2.0),
    ),
    max_size=4,
)


def operations(levels):
    return st.lists(
        st.one_of(
            st.tuples(st.just("reload"), levels, levels),
            st.tuples(st.just("apply"), levels, levels),
            st.tuples(st.just("apply"), levels, levels),
            st.tuples(st.just("apply"), levels, levels),
            st.tuples(st.just("clear")),
            st.tuples(st.just("depth"), bands),
        ),
        max_size=40,
    )


@SETTINGS
@given(operations(valid_levels))
def test_matches_the_reference_model(ops):
    book, reference = OrderBook(), ReferenceBook()
    for operation in ops:
        run(book, reference, operation)


@SETTINGS
@given(
    st.lists(
        st.lists(st.tuples(price_texts, positive_texts).map(list), max_size=8),
        min_size=1,
        max_size=30,
    )
)
def test_removing_best_levels_one_by_one(deltas):
    """Build up a book, then peel off the best level repeatedly: the hardest case."""
    book, reference = OrderBook(), ReferenceBook()
    book.reload([], [])
    reference.reload([], [])
    for delta in deltas:
        run(book, reference, ("apply", delta, delta))
    while reference.bids or reference.asks:
        removal = (
            [[repr(reference.best_bid()), "0"]] if reference.bids else [],
            [[repr(reference.best_ask()), "0"]] if reference.asks else [],
        )
        run(book, reference, ("apply", *removal))
        run(book, reference, ("depth", [0.01, 0.5, 2.0]))


garbage_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["nan", "inf", "-inf", "1e999", "-1", "-0.5", "0", "", " 1 ", "1_0", "abc"]),
    st.binary(max_size=4),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)
garbage_level = st.one_of(
    st.lists(st.one_of(price_texts, quantity_texts, garbage_scalars), max_size=3),
    st.tuples(st.one_of(price_texts, garbage_scalars), st.one_of(quantity_texts, garbage_scalars)),
    garbage_scalars,
)
mixed_levels = st.lists(
    st.one_of(st.tuples(price_texts, quantity_texts).map(list), garbage_level), max_size=6
)
garbage_sides = st.one_of(mixed_levels, garbage_scalars)


@SETTINGS
@given(operations(garbage_sides))
def test_garbage_only_raises_value_error_and_changes_nothing(ops):
    book, reference = OrderBook(), ReferenceBook()
    for operation in ops:
        run(book, reference, operation)
