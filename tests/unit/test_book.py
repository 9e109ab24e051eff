"""OrderBook: reloads, deltas, best prices, crossing, depth bands, caching, bad input."""

from __future__ import annotations

import pytest

from exporter.book import BookNotLoaded, OrderBook


def loaded_book(bids=(), asks=()) -> OrderBook:
    book = OrderBook()
    book.reload(list(bids), list(asks))
    return book


def standard_book() -> OrderBook:
    return loaded_book(
        bids=[["99", "1"], ["98", "2"], ["97", "3"]],
        asks=[["101", "4"], ["102", "5"], ["103", "6"]],
    )


def state(book: OrderBook):
    return (
        book.snapshot(),
        book.best_bid,
        book.best_ask,
        book.levels(),
        book.loaded,
        book.version,
    )


class TestNewBook:
    def test_is_empty_and_not_loaded(self):
        book = OrderBook()
        assert not book.loaded
        assert book.best_bid is None
        assert book.best_ask is None
        assert book.levels() == (0, 0)
        assert not book.is_crossed()
        assert book.version == 0
        assert book.snapshot() == ({}, {})

    def test_apply_before_reload_raises(self):
        book = OrderBook()
        with pytest.raises(BookNotLoaded):
            book.apply([["1", "1"]], [])
        assert state(book) == state(OrderBook())

    def test_apply_before_reload_raises_even_for_garbage(self):
        with pytest.raises(BookNotLoaded):
            OrderBook().apply([["x"]], None)


class TestReload:
    def test_sets_levels_and_best_prices(self):
        book = standard_book()
        assert book.loaded
        assert book.best_bid == 99.0
        assert book.best_ask == 101.0
        assert book.levels() == (3, 3)
        assert book.snapshot() == (
            {99.0: 1.0, 98.0: 2.0, 97.0: 3.0},
            {101.0: 4.0, 102.0: 5.0, 103.0: 6.0},
        )
        assert book.version == 1

    def test_replaces_everything(self):
        book = standard_book()
        book.reload([["50", "1"]], [["60", "2"], ["70", "3"]])
        assert book.snapshot() == ({50.0: 1.0}, {60.0: 2.0, 70.0: 3.0})
        assert (book.best_bid, book.best_ask) == (50.0, 60.0)
        assert book.version == 2

    def test_unsorted_input(self):
        book = loaded_book(
            bids=[["97", "1"], ["99", "1"], ["98", "1"]],
            asks=[["103", "1"], ["101", "1"], ["102", "1"]],
        )
        assert (book.best_bid, book.best_ask) == (99.0, 101.0)

    def test_zero_quantity_levels_are_not_stored(self):
        book = loaded_book(bids=[["99", "0"], ["98", "2"]], asks=[["101", "0.000"]])
        assert book.snapshot() == ({98.0: 2.0}, {})
        assert (book.best_bid, book.best_ask) == (98.0, None)

    def test_empty_sides(self):
        book = loaded_book()
        assert book.loaded
        assert (book.best_bid, book.best_ask) == (None, None)
        assert book.levels() == (0, 0)
        book.apply([["10", "1"]], [])
        assert book.best_bid == 10.0

    def test_duplicate_prices_keep_the_last_quantity(self):
        book = loaded_book(
            bids=[["99", "1"], ["99.0", "7"], ["98", "1"], ["98", "0"]],
            asks=[["101", "1"], ["101", "0"]],
        )
        assert book.snapshot() == ({99.0: 7.0}, {})
        assert book.best_ask is None


class TestApply:
    def test_new_better_level_becomes_best(self):
        book = standard_book()
        book.apply([["99.5", "1"]], [["100.5", "1"]])
        assert (book.best_bid, book.best_ask) == (99.5, 100.5)
        assert book.levels() == (4, 4)

    def test_new_worse_level_keeps_best(self):
        book = standard_book()
        book.apply([["90", "1"]], [["110", "1"]])
        assert (book.best_bid, book.best_ask) == (99.0, 101.0)
        assert book.levels() == (4, 4)

    def test_quantity_update_of_an_existing_level(self):
        book = standard_book()
        book.apply([["98", "2.5"]], [["101", "0.25"]])
        bids, asks = book.snapshot()
        assert bids[98.0] == 2.5
        assert asks[101.0] == 0.25
        assert book.levels() == (3, 3)

    def test_removing_the_best_level_finds_the_next_one(self):
        book = standard_book()
        book.apply([["99", "0"]], [["101", "0"]])
        assert (book.best_bid, book.best_ask) == (98.0, 102.0)
        assert book.levels() == (2, 2)

    def test_removing_a_level_that_is_not_best(self):
        book = standard_book()
        book.apply([["98", "0"]], [["103", "0"]])
        assert (book.best_bid, book.best_ask) == (99.0, 101.0)
        assert book.snapshot() == ({99.0: 1.0, 97.0: 3.0}, {101.0: 4.0, 102.0: 5.0})

    def test_removing_an_absent_level_is_harmless(self):
        book = standard_book()
        before = book.snapshot()
        book.apply([["42", "0"]], [["420", "0"]])
        assert book.snapshot() == before
        assert (book.best_bid, book.best_ask) == (99.0, 101.0)

    @pytest.mark.parametrize("zero", ["0", "0.000", "0.0", "-0", "0e0", "00", 0, 0.0])
    def test_every_zero_spelling_removes(self, zero):
        book = standard_book()
        book.apply([["99", zero]], [["101", zero]])
        assert book.levels() == (2, 2)
        assert (book.best_bid, book.best_ask) == (98.0, 102.0)

    def test_price_spellings_address_the_same_level(self):
        book = loaded_book(bids=[["100.10", "1"]], asks=[["200.5", "1"]])
        book.apply([["100.1", "3"]], [["200.500000", "0"]])
        assert book.snapshot() == ({100.1: 3.0}, {})

    def test_emptying_a_side(self):
        book = standard_book()
        book.apply([["99", "0"], ["98", "0"], ["97", "0"]], [])
        assert book.best_bid is None
        assert book.best_ask == 101.0
        assert book.levels() == (0, 3)
        book.apply([], [["101", "0"], ["102", "0"], ["103", "0"]])
        assert (book.best_bid, book.best_ask) == (None, None)
        book.apply([["95", "1"]], [["105", "1"]])
        assert (book.best_bid, book.best_ask) == (95.0, 105.0)

    def test_best_removed_then_lower_level_added_in_the_same_update(self):
        book = standard_book()
        book.apply([["99", "0"], ["97.5", "1"]], [["101", "0"], ["102.5", "1"]])
        assert (book.best_bid, book.best_ask) == (98.0, 102.0)

    def test_new_best_added_then_removed_in_the_same_update(self):
        book = standard_book()
        book.apply([["99.9", "1"], ["99.9", "0"]], [["100.1", "1"], ["100.1", "0"]])
        assert (book.best_bid, book.best_ask) == (99.0, 101.0)
        assert book.levels() == (3, 3)

    def test_best_removed_then_readded_in_the_same_update(self):
        book = standard_book()
        book.apply([["99", "0"], ["99", "4"]], [["101", "0"], ["101", "8"]])
        assert (book.best_bid, book.best_ask) == (99.0, 101.0)
        assert book.snapshot()[0][99.0] == 4.0

    def test_numbers_and_tuples_are_accepted(self):
        book = standard_book()
        book.apply([(99.5, 2)], [[100.5, "1.5"]])
        assert (book.best_bid, book.best_ask) == (99.5, 100.5)

    def test_updates_on_both_sides_are_independent(self):
        book = standard_book()
        book.apply([["101", "1"]], [])
        assert book.snapshot()[1] == {101.0: 4.0, 102.0: 5.0, 103.0: 6.0}
        assert book.best_bid == 101.0


class TestCrossed:
    def test_normal_book_is_not_crossed(self):
        assert not standard_book().is_crossed()

    def test_bid_above_ask_is_crossed(self):
        book = standard_book()
        book.apply([["101.5", "1"]], [])
        assert book.is_crossed()

    def test_bid_equal_to_ask_is_crossed(self):
        book = standard_book()
        book.apply([], [["99", "1"]])
        assert book.is_crossed()

    @pytest.mark.parametrize("bids, asks", [
        ([["101.5", "1"]], []), ([], [["99", "1"]]), ([["98.5", "1"]], [["100.5", "1"]]),
        ([], []), ([["99", "0"]], [["101", "0"]]), ((("99", "1"),), [])])
    def test_apply_and_reload_return_is_crossed(self, bids, asks):
        book = standard_book()
        assert book.apply(bids, asks) is book.is_crossed()
        assert OrderBook().reload(bids, asks) is OrderBook().reload(bids, asks) is (
            loaded_book(bids, asks).is_crossed())

    def test_one_empty_side_is_not_crossed(self):
        assert not loaded_book(bids=[["100", "1"]]).is_crossed()
        assert not loaded_book(asks=[["100", "1"]]).is_crossed()

    def test_uncrossing_by_removal(self):
        book = standard_book()
        book.apply([["102", "1"]], [])
        assert book.is_crossed()
        book.apply([["102", "0"]], [])
        assert not book.is_crossed()


# A book whose mid is exactly 128, with bands and quantities that are exact in
# binary floating point, so the expected depths are exact. Floors of the bands
# 1/64, 1/32, 1/4 are 126, 124, 96; ceilings 130, 132, 160.
DEPTH_BIDS = [
    ["127.5", "1"],
    ["126", "2"],  # on the narrowest floor: included
    ["125", "4"],
    ["124", "0.5"],  # on the middle floor
    ["100", "8"],
    ["90", "16"],  # outside every band
]
DEPTH_ASKS = [
    ["128.5", "0.25"],
    ["130", "1"],  # on the narrowest ceiling
    ["131", "2"],
    ["133", "4"],
    ["160", "8"],  # on the widest ceiling
    ["161", "32"],  # outside every band
]
BANDS = (0.015625, 0.03125, 0.25)


def depth_book() -> OrderBook:
    return loaded_book(DEPTH_BIDS, DEPTH_ASKS)


class TestDepth:
    def test_known_book(self):
        assert depth_book().depth(BANDS) == ([3.0, 7.5, 15.5], [1.25, 3.25, 15.25])

    def test_band_order_is_kept(self):
        assert depth_book().depth([0.25, 0.015625, 0.03125]) == (
            [15.5, 3.0, 7.5],
            [15.25, 1.25, 3.25],
        )

    def test_zero_band_and_wide_band(self):
        bid_depth, ask_depth = depth_book().depth([0.0, 0.5])
        assert bid_depth == [0.0, 31.5]
        assert ask_depth == [0.0, 47.25]

    def test_a_single_band(self):
        assert depth_book().depth([0.03125]) == ([7.5], [3.25])

    def test_no_bands(self):
        assert depth_book().depth([]) == ([], [])

    def test_without_a_mid_every_band_is_zero(self):
        assert loaded_book(bids=DEPTH_BIDS).depth(BANDS) == ([0.0] * 3, [0.0] * 3)
        assert loaded_book(asks=DEPTH_ASKS).depth(BANDS) == ([0.0] * 3, [0.0] * 3)
        assert OrderBook().depth(BANDS) == ([0.0] * 3, [0.0] * 3)

    def test_follows_changes(self):
        book = depth_book()
        assert book.depth(BANDS) == ([3.0, 7.5, 15.5], [1.25, 3.25, 15.25])
        book.apply([["126", "0"]], [["131", "6"]])
        assert book.depth(BANDS) == ([1.0, 5.5, 13.5], [1.25, 7.25, 19.25])
        book.reload([["127", "1"]], [["129", "2"]])
        assert book.depth(BANDS) == ([1.0, 1.0, 1.0], [2.0, 2.0, 2.0])
        book.clear()
        assert book.depth(BANDS) == ([0.0] * 3, [0.0] * 3)

    def test_mid_moves_with_the_best_prices(self):
        # mid 64: floors 63, 62, 48 for the same bands.
        book = loaded_book([["63.5", "1"], ["62", "2"], ["50", "4"]], [["64.5", "8"]])
        assert book.depth(BANDS) == ([1.0, 3.0, 7.0], [8.0, 8.0, 8.0])

    @pytest.mark.parametrize("band", [-0.01, float("nan"), float("inf")])
    def test_invalid_band(self, band):
        with pytest.raises(ValueError, match="band"):
            depth_book().depth([0.01, band])

    def test_result_lists_are_the_callers_own(self):
        book = depth_book()
        bid_depth, ask_depth = book.depth(BANDS)
        bid_depth[0] = -1.0
        ask_depth.clear()
        assert book.depth(BANDS) == ([3.0, 7.5, 15.5], [1.25, 3.25, 15.25])


class CountingBook(OrderBook):
    """Counts depth computations, to observe the cache from outside."""

    __slots__ = ("computations",)

    def __init__(self) -> None:
        super().__init__()
        self.computations = 0

    def _compute_depth(self, bands):
        self.computations += 1
        return super()._compute_depth(bands)


class TestDepthCache:
    def test_repeated_scrapes_compute_once(self):
        book = CountingBook()
        book.reload(DEPTH_BIDS, DEPTH_ASKS)
        results = [book.depth(BANDS) for _ in range(5)]
        assert book.computations == 1
        assert all(result == results[0] for result in results)

    def test_bands_as_list_or_tuple_share_the_cache(self):
        book = CountingBook()
        book.reload(DEPTH_BIDS, DEPTH_ASKS)
        book.depth(BANDS)
        book.depth(list(BANDS))
        assert book.computations == 1

    def test_a_change_invalidates(self):
        book = CountingBook()
        book.reload(DEPTH_BIDS, DEPTH_ASKS)
        book.depth(BANDS)
        book.apply([["90", "1"]], [])
        book.depth(BANDS)
        book.depth(BANDS)
        assert book.computations == 2

    def test_other_bands_recompute(self):
        book = CountingBook()
        book.reload(DEPTH_BIDS, DEPTH_ASKS)
        book.depth(BANDS)
        assert book.depth([0.25]) == ([15.5], [15.25])
        assert book.computations == 2

    def test_failed_and_empty_updates_keep_the_cache(self):
        book = CountingBook()
        book.reload(DEPTH_BIDS, DEPTH_ASKS)
        book.depth(BANDS)
        with pytest.raises(ValueError):
            book.apply([["90", "1"], ["bad", "1"]], [])
        book.apply([], [])
        book.depth(BANDS)
        assert book.computations == 1


class TestVersion:
    def test_increments_on_every_change(self):
        book = OrderBook()
        versions = [book.version]
        book.reload([["1", "1"]], [["2", "1"]])
        versions.append(book.version)
        book.apply([["1.5", "1"]], [])
        versions.append(book.version)
        book.apply([], [["2", "0"]])
        versions.append(book.version)
        book.clear()
        versions.append(book.version)
        assert versions == [0, 1, 2, 3, 4]

    def test_empty_update_is_not_a_change(self):
        book = standard_book()
        version = book.version
        book.apply([], [])
        assert book.version == version


class TestClear:
    def test_drops_everything(self):
        book = standard_book()
        book.clear()
        assert not book.loaded
        assert book.snapshot() == ({}, {})
        assert (book.best_bid, book.best_ask) == (None, None)
        assert book.levels() == (0, 0)
        with pytest.raises(BookNotLoaded):
            book.apply([["1", "1"]], [])

    def test_reload_after_clear(self):
        book = standard_book()
        book.clear()
        book.reload([["10", "1"]], [["11", "1"]])
        assert book.loaded
        assert (book.best_bid, book.best_ask) == (10.0, 11.0)


MALFORMED_LEVELS = [
    pytest.param(["100"], id="one item"),
    pytest.param(["100", "1", "2"], id="three items"),
    pytest.param([], id="empty list"),
    pytest.param("12", id="string level"),
    pytest.param({"100": "1", "x": "2"}, id="dict level"),
    pytest.param(None, id="None level"),
    pytest.param(100, id="number level"),
    pytest.param(["abc", "1"], id="text price"),
    pytest.param(["100", "abc"], id="text quantity"),
    pytest.param(["", "1"], id="empty price"),
    pytest.param(["100", ""], id="empty quantity"),
    pytest.param([None, "1"], id="None price"),
    pytest.param(["100", None], id="None quantity"),
    pytest.param([True, "1"], id="bool price"),
    pytest.param(["100", False], id="bool quantity"),
    pytest.param([["100"], "1"], id="list price"),
    pytest.param([b"100", "1"], id="bytes price"),
    pytest.param(["nan", "1"], id="NaN price"),
    pytest.param(["100", "NaN"], id="NaN quantity"),
    pytest.param(["inf", "1"], id="infinite price"),
    pytest.param(["100", "-Infinity"], id="infinite quantity"),
    pytest.param(["1e400", "1"], id="overflowing price"),
    pytest.param(["100", "1e999"], id="overflowing quantity"),
    pytest.param([10**400, "1"], id="huge int price"),
    pytest.param(["-100", "1"], id="negative price"),
    pytest.param(["100", "-1"], id="negative quantity"),
    pytest.param(["0", "1"], id="zero price"),
    pytest.param(["-0", "1"], id="negative zero price"),
]


class TestMalformedInput:
    @pytest.mark.parametrize("level", MALFORMED_LEVELS)
    @pytest.mark.parametrize("side", ["bids", "asks"])
    def test_apply_raises_and_leaves_the_book_unchanged(self, level, side):
        book = standard_book()
        before = state(book)
        # Valid changes come first on both sides: none of them may be applied.
        bids = [["99", "0"], ["99.5", "3"]]
        asks = [["101", "0"], ["100.5", "3"]]
        (bids if side == "bids" else asks).append(level)
        with pytest.raises(ValueError) as raised:
            book.apply(bids, asks)
        assert len(str(raised.value)) < 80
        assert state(book) == before

    @pytest.mark.parametrize("level", MALFORMED_LEVELS)
    def test_reload_raises_and_leaves_the_book_unchanged(self, level):
        book = standard_book()
        before = state(book)
        with pytest.raises(ValueError):
            book.reload([["50", "1"]], [["60", "1"], level])
        assert state(book) == before

    def test_reload_of_an_unloaded_book_stays_unloaded(self):
        book = OrderBook()
        with pytest.raises(ValueError):
            book.reload([["50", "1"], ["x", "1"]], [])
        assert not book.loaded
        assert state(book) == state(OrderBook())

    @pytest.mark.parametrize("side_value", [None, 5, 1.5, object()])
    def test_a_side_that_is_not_a_list(self, side_value):
        book = standard_book()
        before = state(book)
        with pytest.raises(ValueError):
            book.apply([["99.5", "1"]], side_value)
        with pytest.raises(ValueError):
            book.reload(side_value, [])
        assert state(book) == before

    def test_the_book_keeps_working_after_an_error(self):
        book = standard_book()
        with pytest.raises(ValueError):
            book.apply([["x", "1"]], [])
        book.apply([["99", "0"]], [])
        assert book.best_bid == 98.0
