"""Property tests for the stream's parsing path: ``exporter.protocol`` through
``FrameHandler.handle``, on a fresh registry per example.

- Random JSON-ish frames and random bytes never raise: every frame is counted
  exactly once, as a message or as one ``websocket_message_errors_total``, and a
  rejected frame changes no other counter.
- Frames built from the spec's shapes with random values always apply, to the value.
- Random depth sequences never expose a crossed book: a crossing triggers a resync,
  and the exported best bid/ask always equal a naive reference.
"""

from __future__ import annotations

import contextlib
import math
from decimal import Decimal

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from exporter import protocol
from exporter.state import link as records
from exporter.state import market as market_records

from . import feed as feed_module

SETTINGS = settings(max_examples=250, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
NOW = 1_750_953_400.0
METHODS = ("lastprice_update", "ticker_update", "depth_update", "trade_update", "order_update",
           "balance_update", "deal_update", "pong", "trade_subscribe", "depth_unsubscribe",
           "candles_update", "ping")
MARKETS = ("BTC_USDT", "ETH_USDT")
# Changes a rejected frame may cause besides its error count: the frame's arrival time,
# and for an invalid depth level, the resync of the book it would have corrupted.
ALLOWED_ON_REJECT = ("cryptomus_websocket_message_errors", "cryptomus_orderbook_resyncs")


class Feed(feed_module.Feed):
    def __init__(self) -> None:
        super().__init__(NOW)

    @property
    def resync_requests(self) -> int:
        return len(self.resubscribed)

    def total(self, sample_name: str) -> float:
        return sum(sample.value for family in self.registry.collect()
                   for sample in family.samples if sample.name == sample_name)

    def counted(self) -> tuple[float, float]:
        return (self.total("cryptomus_websocket_messages_total"),
                self.total("cryptomus_websocket_message_errors_total"))

    def counters(self) -> dict:
        return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in self.registry.collect() if family.type == "counter"
                for sample in family.samples if not sample.name.endswith("_created")}


# --- random frames ----------------------------------------------------------------------

scalars = (st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
           | st.sampled_from(["0", "1.5", "-1", "1e400", "BTC_USDT", "buy", "sell", "maker",
                              "created", "finished", "all", "²", "007"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10) | st.sampled_from(
                               ["symbol", "price", "trades", "info", "type", "direction",
                                "full_reload", "bids", "asks", "tradeRole", "currencyCode"]),
                               inner, max_size=6), max_leaves=20)
frames = st.one_of(
    json_values,
    st.fixed_dictionaries({"id": json_values, "method": st.sampled_from(METHODS) | json_values,
                           "data": json_values, "error": json_values}),
)

def assert_counted_once(feed: Feed, frame: bytes) -> None:
    messages, errors = feed.counted()
    counters = feed.counters()
    reply = feed.handle(frame)  # must not raise, whatever the frame
    new_messages, new_errors = feed.counted()
    assert (new_messages - messages) + (new_errors - errors) == 1
    if reply is not None:
        assert isinstance(reply, protocol.Response)
        assert new_messages == messages + 1
    if new_errors > errors:
        assert reply is None
        changed = {key for key, value in feed.counters().items()
                   if counters.get(key) != value and not key[0].startswith(ALLOWED_ON_REJECT)}
        assert not changed, f"a rejected frame changed {changed}"


@SETTINGS
@given(frames)
def test_random_json_frames_are_counted_exactly_once_and_never_raise(message):
    assert_counted_once(Feed(), orjson.dumps(message))


@SETTINGS
@given(st.binary(max_size=200))
@example(b"")
@example(b"\xff\xfe")
@example(b"[]")
@example(b'{"method": "pong"}')
def test_random_bytes_are_counted_exactly_once_and_never_raise(frame):
    assert_counted_once(Feed(), frame)


@settings(SETTINGS, max_examples=80)
@given(st.lists(frames, min_size=2, max_size=6))
def test_a_stream_of_random_frames_counts_every_frame_once(messages):
    feed = Feed()
    for message in messages:
        assert_counted_once(feed, orjson.dumps(message))


REST_PARSERS = (protocol.parse_balances, protocol.parse_open_orders, protocol.parse_markets,
                protocol.parse_scales, protocol.parse_token)
rest_payloads = json_values | st.fixed_dictionaries(
    {"result": st.lists(json_values, max_size=4)}) | st.fixed_dictionaries(
    {"data": st.lists(json_values, max_size=4)})


@SETTINGS
@given(rest_payloads)
def test_rest_payload_parsers_raise_nothing_but_protocol_errors(payload):
    for parser in REST_PARSERS:
        with contextlib.suppress(protocol.ProtocolError):
            parser(payload)


# Frames that once raised out of the frame handler (found by the searches above).
KNOWN_CRASHES = {
    "unhashable method": {"id": 0, "method": [], "data": None, "error": None},
    "unicode digit id": {"id": "²", "method": "pong", "data": None, "error": None},
    "unhashable trade direction": {"id": 0, "method": "trade_update", "error": None, "data": {
        "symbol": "BTC_USDT", "trades": [{"price": 1, "quantity": 1, "direction": []}]}},
    "unhashable order type": {"id": "3", "method": "order_update", "error": None,
                              "data": {"type": {}, "info": {}}},
    "unhashable deal role": {"id": "1", "method": "deal_update", "error": None, "data": {
        "info": {"symbol": "BTC_USDT", "tradeRole": ["maker"], "filledQuantity": "1",
                 "filledValue": "1", "fee": "0", "feeCurrency": "USDT"}}},
}


@pytest.mark.parametrize("name", KNOWN_CRASHES)
def test_known_crash_frames_are_counted_as_errors(name):
    feed = Feed()
    assert_counted_once(feed, orjson.dumps(KNOWN_CRASHES[name]))
    assert feed.counted()[1] == 1


# --- valid frames -----------------------------------------------------------------------

symbols = st.from_regex(r"\A[A-Z0-9]{1,8}_[A-Z0-9]{1,8}\Z")
currencies = st.from_regex(r"\A[A-Z0-9]{1,16}\Z")
amounts = st.decimals(min_value=0, max_value=Decimal("1e12"), places=8,
                      allow_nan=False, allow_infinity=False)
# At most 15 significant digits: distinct prices stay distinct as floats (levels are
# keyed by float price, so "1.50" and "1.5" are one level, as documented).
prices = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal(999999), places=8)
positive_amounts = amounts.filter(lambda value: value > 0)
changes = st.decimals(min_value=-100, max_value=1000, places=2)
timestamps = st.none() | st.integers(0, 2**40)
extras = st.dictionaries(st.sampled_from(["unknown", "extra", "v2"]), scalars, max_size=2)
ids = st.sampled_from([0, "0", "1", "3", "4", 17])


def text(value: Decimal) -> str:
    return format(value, "f")


def with_timestamp(data: dict, timestamp) -> dict:
    return data if timestamp is None else {**data, "timestamp": timestamp}


@st.composite
def lastprice_frames(draw):
    symbol, price = draw(symbols), draw(amounts)
    data = with_timestamp({"symbol": symbol, "price": text(price), **draw(extras)},
                          draw(timestamps))

    def check(feed: Feed) -> None:
        assert feed.value("last_price", market=symbol) == float(text(price))

    return "lastprice_update", data, check


@st.composite
def ticker_frames(draw):
    symbol = draw(symbols)
    fields = {key: draw(amounts) for key in ("price", "open", "high", "low", "volume",
                                             "quote_volume")}
    change = draw(changes)
    data = with_timestamp({"symbol": symbol, **{k: text(v) for k, v in fields.items()},
                           "price_change": text(change), **draw(extras)}, draw(timestamps))

    def check(feed: Feed) -> None:
        for name, key in (("ticker_open_price", "open"), ("ticker_high_price", "high"),
                          ("ticker_low_price", "low"), ("ticker_base_volume", "volume"),
                          ("ticker_quote_volume", "quote_volume")):
            assert feed.value(name, market=symbol) == float(text(fields[key]))
        assert feed.value("ticker_price_change_ratio", market=symbol) == pytest.approx(
            float(text(change)) / 100, rel=1e-12, abs=1e-15)

    return "ticker_update", data, check


json_amounts = st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False)


@st.composite
def trade_frames(draw):
    symbol = draw(symbols)
    trades = draw(st.lists(st.fixed_dictionaries({
        "price": json_amounts, "quantity": json_amounts, "timestamp": st.integers(0, 2**40),
        "direction": st.sampled_from(["buy", "sell"])}), max_size=5))
    data = with_timestamp({"symbol": symbol, "trades": trades}, draw(timestamps))

    def check(feed: Feed) -> None:
        for side in ("buy", "sell"):
            mine = [t for t in trades if t["direction"] == side]
            count = feed.value("trades_total", market=symbol, side=side)
            assert (count or 0.0) == len(mine)
            if mine:
                assert feed.value("traded_base_volume_total", market=symbol, side=side) == \
                    pytest.approx(math.fsum(t["quantity"] for t in mine), rel=1e-9)
                assert feed.value("traded_quote_volume_total", market=symbol, side=side) == \
                    pytest.approx(math.fsum(t["price"] * t["quantity"] for t in mine), rel=1e-9)

    return "trade_update", data, check


@st.composite
def order_frames(draw):
    event = draw(st.sampled_from(["created", "updated", "finished"]))
    symbol, side = draw(symbols), draw(st.sampled_from(["buy", "sell"]))
    state = draw(st.sampled_from(["completed", "canceled", "rejected", "partially", "x"]))
    info = {"id": draw(st.from_regex(r"\A[0-9A-Z]{26}\Z")), "symbol": symbol,
            "orderType": "limit", "direction": side, "price": text(draw(amounts)),
            "quantity": text(draw(amounts)), "value": "1", "filledQuantity": "0",
            "filledValue": "0", "clientOid": draw(st.none() | st.text(max_size=8)),
            "createTs": 1750696376, **draw(extras)}
    if event == "finished":
        info.update(finishTs=1750696417, state=state, internalState="filled")

    def check(feed: Feed) -> None:
        assert feed.value("order_events_total", market=symbol, side=side, event=event) == 1
        if event == "finished":
            label = state if state in ("completed", "canceled", "rejected") else "other"
            assert feed.value("orders_finished_total", market=symbol, side=side,
                              state=label) == 1
            assert (feed.value("open_orders", market=symbol, side=side) or 0) == 0
        else:
            assert feed.value("open_orders", market=symbol, side=side) == 1

    return "order_update", {"type": event, "info": info}, check


@st.composite
def balance_frames(draw):
    currency, balance = draw(currencies), draw(amounts)
    info = {"walletId": "01J7E836F6K5KCX5DP2W0F6FAG", "currencyCode": currency,
            "amount": "1", "oldBalance": "0", "newBalance": text(balance), **draw(extras)}

    def check(feed: Feed) -> None:
        assert feed.value("balance", currency=currency) == float(text(balance))
        assert feed.value("balance_changes_total", currency=currency) == 1

    return "balance_update", {"info": info}, check


@st.composite
def deal_frames(draw):
    symbol, role, fee_currency = draw(symbols), draw(st.sampled_from(["maker", "taker"])), \
        draw(currencies)
    quantity, value, fee = draw(amounts), draw(amounts), draw(amounts)
    info = {"dealId": draw(st.from_regex(r"\A[0-9A-Z]{26}\Z") | st.integers(1, 2**53)),
            "symbol": symbol, "dealState": "completed", "transactionId": "T",
            "filledPrice": "1", "filledQuantity": text(quantity), "filledValue": text(value),
            "fee": text(fee), "feeCurrency": fee_currency, "tradeRole": role,
            "committedAt": 1750696417, **draw(extras)}

    def check(feed: Feed) -> None:
        assert feed.value("fills_total", market=symbol, role=role) == 1
        assert feed.value("filled_base_volume_total", market=symbol, role=role) == \
            float(text(quantity))
        assert feed.value("filled_quote_volume_total", market=symbol, role=role) == \
            float(text(value))
        assert feed.value("fees_total", currency=fee_currency) == float(text(fee))

    return "deal_update", {"info": info}, check


@st.composite
def depth_reload_frames(draw):
    symbol = draw(symbols)
    ladder = sorted(draw(st.lists(prices, min_size=0, max_size=20, unique=True)))
    split = draw(st.integers(0, len(ladder)))
    bids = [[text(p), text(draw(positive_amounts))] for p in ladder[:split]]
    asks = [[text(p), text(draw(positive_amounts))] for p in ladder[split:]]
    data = {"symbol": symbol, "timestamp": 1, "full_reload": True, "scale_index": 0,
            "bids": bids, "asks": asks}

    def check(feed: Feed) -> None:
        best_bid = max((float(p) for p, _ in bids), default=None)
        best_ask = min((float(p) for p, _ in asks), default=None)
        assert feed.value("orderbook_best_bid_price", market=symbol) == best_bid
        assert feed.value("orderbook_best_ask_price", market=symbol) == best_ask
        assert feed.value("orderbook_levels", market=symbol, side="bid") == len(bids)
        assert feed.value("orderbook_levels", market=symbol, side="ask") == len(asks)
        assert feed.resync_requests == 0

    return "depth_update", data, check


valid_frames = st.one_of(lastprice_frames(), ticker_frames(), trade_frames(), order_frames(),
                         balance_frames(), deal_frames(), depth_reload_frames())


@SETTINGS
@given(valid_frames, ids)
def test_valid_frames_of_every_channel_apply_to_the_value(frame, frame_id):
    method, data, check = frame
    feed = Feed()
    assert feed.send(method, data, frame_id) is None
    assert feed.counted() == (1.0, 0.0)
    assert feed.value("websocket_messages_total", method=method) == 1
    check(feed)


# --- order books through FrameHandler.handle ---------------------------------------------

GRID = [Decimal(100) + Decimal(step) / 4 for step in range(-12, 13)]  # collisions and crossings
levels = st.lists(st.tuples(st.sampled_from(GRID),
                            st.sampled_from([Decimal(0), Decimal("0.5"), Decimal(2)])),
                  max_size=6)
depth_steps = st.one_of(
    st.tuples(st.just("reload"), st.sampled_from(MARKETS), levels, levels),
    st.tuples(st.just("delta"), st.sampled_from(MARKETS), levels, levels),
    st.tuples(st.just("invalid"), st.sampled_from(MARKETS), st.just([]), st.just([])),
    st.tuples(st.just("resubscribed"), st.just(""), st.just([]), st.just([])),
)


class ReferenceBooks:
    """The documented behaviour, written out plainly: dicts per side, max/min for the
    best prices, a book dropped when it cannot be trusted, every book dropped when depth
    is resubscribed (they all reload), and partial updates before a book's full reload
    ignored after a resubscription (the full book may come late; the feed's clock never
    leaves that grace)."""

    def __init__(self) -> None:
        self.books: dict[str, tuple[dict, dict] | None] = dict.fromkeys(MARKETS)
        self.pending = False
        self.awaiting_late_books = False
        self.resyncs = 0

    @staticmethod
    def write(side: dict, pairs) -> None:
        for price, quantity in pairs:
            if quantity == 0:
                side.pop(float(price), None)
            else:
                side[float(price)] = float(quantity)

    def resync(self, market: str) -> None:
        self.books[market] = None
        self.pending = True
        self.resyncs += 1

    def step(self, kind: str, market: str, bids, asks) -> None:
        if kind == "resubscribed":
            self.books = dict.fromkeys(MARKETS)
            self.pending = False
            self.awaiting_late_books = True
        elif kind == "invalid" and self.books[market] is not None:
            self.resync(market)  # a loaded book is never left half-updated by a bad level
        elif kind == "reload":
            self.books[market] = ({}, {})
            self.write(self.books[market][0], bids)
            self.write(self.books[market][1], asks)
        elif self.books[market] is None:
            if not self.pending and not self.awaiting_late_books:
                self.resync(market)
        else:
            self.write(self.books[market][0], bids)
            self.write(self.books[market][1], asks)
        book = self.books.get(market)
        if book and book[0] and book[1] and max(book[0]) >= min(book[1]):
            self.resync(market)

    def best(self, market: str) -> tuple[float | None, float | None]:
        book = self.books[market]
        if book is None:
            return None, None
        return max(book[0], default=None), min(book[1], default=None)


def depth_frame(market: str, full_reload: bool, bids, asks) -> dict:
    return {"symbol": market, "timestamp": 1, "full_reload": full_reload, "scale_index": 0,
            "bids": [[text(p), text(q)] for p, q in bids],
            "asks": [[text(p), text(q)] for p, q in asks]}


@SETTINGS
@given(st.lists(depth_steps, max_size=40))
def test_depth_sequences_never_expose_a_crossed_book_and_match_a_reference(steps):
    feed, reference = Feed(), ReferenceBooks()
    for kind, market, bids, asks in steps:
        if kind == "resubscribed":  # what the session does around its resubscription
            market_records.depth_subscribing(feed.state, feed.now)
            records.resubscribed(feed.state.link, "depth")
        elif kind == "invalid":
            feed.send("depth_update", depth_frame(market, False, [], [])
                      | {"bids": [["-1", "1"]]})
        else:
            feed.send("depth_update", depth_frame(market, kind == "reload", bids, asks))
        reference.step(kind, market, bids, asks)
        assert feed.resync_requests == reference.resyncs
        for symbol in MARKETS:
            bid = feed.value("orderbook_best_bid_price", market=symbol)
            ask = feed.value("orderbook_best_ask_price", market=symbol)
            assert (bid, ask) == reference.best(symbol)
            if bid is not None and ask is not None:
                assert bid < ask
