"""Frames -> metric updates: the only code that mutates metrics from the stream.

``Handlers.handle_frame`` decodes one frame, dispatches update events through a
table keyed by method, and hands replies to our own requests (pongs, acks,
errors) back to the session. A frame that breaks the protocol is counted in
``websocket_message_errors_total{reason}`` and skipped; nothing else changes.

What changes on nearly every frame (message counts, prices, tickers, update
times, public trade totals) is kept in plain attributes and exposed at scrape
time by ``StreamCollector``: a prometheus-client ``set``/``inc`` takes a lock and
a ``labels()`` lookup costs about 1 us, which at tens of thousands of frames a
second is most of the budget. Rare events (errors, resyncs, the account's own
orders and fills) use ordinary metric objects.

Label values come only from bounded sets: markets are the configured ones, or
with ``all`` at most ``max_markets`` of them; currencies likewise; order states
outside a known set become ``other``.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from prometheus_client.core import Metric
from prometheus_client.samples import Sample

from . import protocol
from .book import BookNotLoaded, OrderBook
from .metrics import COUNTER, SPECS_BY_NAME, Metrics

log = logging.getLogger(__name__)

UNEXPECTED_MARKET = "unexpected_market"
MARKET_LIMIT = "market_limit"
CURRENCY_LIMIT = "currency_limit"
UNEXPECTED_REPLY = "unexpected_reply"
INTERNAL_ERROR = "internal_error"
ERROR_REASONS = (*protocol.ERROR_REASONS, UNEXPECTED_MARKET, MARKET_LIMIT, CURRENCY_LIMIT,
                 UNEXPECTED_REPLY, INTERNAL_ERROR)
RESYNC_PARTIAL = "partial_before_reload"
RESYNC_CROSSED = "crossed"
RESYNC_INVALID = "invalid"
RESYNC_REASONS = (RESYNC_PARTIAL, RESYNC_CROSSED, RESYNC_INVALID)

ORDER_STATES = frozenset(("completed", "canceled", "cancelled", "rejected", "expired", "failed"))
_CURRENCY_RE = re.compile(r"^[A-Z0-9]{1,16}$")
_RECENT_DEALS = 4096

MARKET_GAUGES = (
    "last_price",
    "ticker_open_price",
    "ticker_high_price",
    "ticker_low_price",
    "ticker_base_volume",
    "ticker_quote_volume",
    "ticker_price_change_ratio",
)
MARKET_CHANNELS = ("lastprice", "ticker", "depth", "trade")
LASTPRICE, TICKER, DEPTH, TRADE = range(len(MARKET_CHANNELS))  # indexes of MarketState.updated
BOOK_SIDES = ("bid", "ask")
NO_TICKER = protocol.Ticker("", None, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)  # no ticker yet: no gauges


class TradeTotals:
    """Public trades of one market and taker side (exposed as three counters)."""

    __slots__ = ("base", "count", "created", "labels", "quote")

    def __init__(self, symbol: str, side: str, created: float) -> None:
        self.labels = {"market": symbol, "side": side}
        self.count = 0.0
        self.base = 0.0
        self.quote = 0.0
        self.created = created


class CounterSeries:
    """One counter series kept as a plain number (exposed by ``StreamCollector``)."""

    __slots__ = ("created", "labels", "value")

    def __init__(self, labels: dict[str, str], created: float) -> None:
        self.labels = labels
        self.value = 0.0
        self.created = created


class MarketState:
    """One market's latest values. Each gauge appears with the first update of its
    channel (never as a made-up 0), and all disappear together when market data expires.

    The label dicts of its series are built once here: the collectors share them
    with every sample they expose (nothing in prometheus-client mutates them).
    """

    __slots__ = ("book", "channel_labels", "depth_labels", "labels", "last_price", "resyncs",
                 "side_labels", "symbol", "ticker", "trades", "updated")

    def __init__(self, symbol: str, trades: dict[str, TradeTotals],
                 resyncs: dict[str, CounterSeries], band_labels: tuple[str, ...]) -> None:
        self.symbol = symbol
        self.labels = {"market": symbol}
        self.channel_labels = tuple({"market": symbol, "channel": channel}
                                    for channel in MARKET_CHANNELS)
        self.side_labels = tuple({"market": symbol, "side": side} for side in BOOK_SIDES)
        self.depth_labels = tuple(
            tuple({"market": symbol, "side": side, "band": band} for side in BOOK_SIDES)
            for band in band_labels)
        self.book = OrderBook()
        self.last_price: float | None = None
        self.ticker = NO_TICKER
        self.updated = [0.0] * len(MARKET_CHANNELS)  # Unix time, by MARKET_CHANNELS index
        self.trades = trades  # by side; outlives the state (counters are never removed)
        self.resyncs = resyncs  # by reason; outlives the state too


class Handlers:
    def __init__(
        self,
        metrics: Metrics,
        *,
        markets: tuple[str, ...] | None = None,
        depth_bands: tuple[float, ...] = (0.005, 0.01, 0.02),
        max_markets: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self.configured_markets = frozenset(markets) if markets else None
        self.depth_bands = depth_bands
        self.band_labels = tuple(f"{band:g}" for band in depth_bands)
        self.max_markets = max_markets
        self.clock = clock
        self.markets: dict[str, MarketState] = {}
        self.known_markets: frozenset[str] = frozenset()
        self.request_depth_resync: Callable[[], None] = lambda: None
        self.depth_resync_pending = False
        self.last_message_time = 0.0
        self.last_event_time = 0.0
        self._currencies: set[str] = set()
        self._open_orders: dict[str, tuple[str, str]] = {}
        self._open_order_pairs: set[tuple[str, str]] = set()
        self._recent_deals: OrderedDict[str, None] = OrderedDict()
        self.message_counts: dict[str, float] = {}  # by method label
        self.message_created: dict[str, float] = {}
        self.trade_totals: dict[str, dict[str, TradeTotals]] = {}
        self.resync_totals: dict[str, dict[str, CounterSeries]] = {}
        self._errors = {}
        self._logged_reasons: set[str] = set()
        self.dispatch: dict[str, Callable[[dict], None]] = {
            "lastprice_update": self.on_lastprice,
            "ticker_update": self.on_ticker,
            "depth_update": self.on_depth,
            "trade_update": self.on_trades,
            "order_update": self.on_order,
            "balance_update": self.on_balance,
            "deal_update": self.on_deal,
        }
        metrics.websocket_last_message_timestamp_seconds.set_function(
            lambda: self.last_message_time)
        metrics.registry.register(StreamCollector(self))

    # --- frames ---------------------------------------------------------------------------

    def handle_frame(self, frame: bytes | str) -> protocol.Response | None:
        """Apply one frame; return it when it is a reply to one of our requests."""
        self.last_message_time = self.clock()
        try:
            message = protocol.decode(frame)
            method = message.get("method")
            handler = self.dispatch.get(method) if type(method) is str else None
            if handler is not None:
                data = message.get("data")
                handler(data if type(data) is dict else protocol.event_data(message))
                self.last_event_time = self.last_message_time
                counts = self.message_counts  # count_message, inlined: this is every event
                if method in counts:
                    counts[method] += 1.0
                else:
                    self.count_message(method)
                return None
            if protocol.is_response(method):
                response = protocol.parse_response(message)
                self.count_message(method or "ack")
                return response
            raise protocol.ProtocolError(protocol.UNKNOWN_METHOD, "method not in the protocol")
        except protocol.ProtocolError as error:
            self.count_error(error.reason, error.detail)
            return None
        except Exception as error:  # a bug must cost one frame, never the connection
            if INTERNAL_ERROR not in self._logged_reasons:  # the traceback once, then counts
                log.exception("internal error handling a frame")
            self.count_error(INTERNAL_ERROR, type(error).__name__)
            return None

    def count_message(self, method: str) -> None:
        label = method if self._is_protocol_method(method) else "other"
        if label in self.message_counts:
            self.message_counts[label] += 1.0
        else:
            self.message_counts[label] = 1.0
            self.message_created[label] = self.last_message_time

    def _is_protocol_method(self, method: str) -> bool:
        return method in self.dispatch or method in ("pong", "ack") or method.removesuffix(
            protocol.UNSUBSCRIBE_SUFFIX).removesuffix(protocol.SUBSCRIBE_SUFFIX) in (
            "lastprice", "ticker", "depth", "trade", "order", "balance", "deal")

    def count_error(self, reason: str, detail: str) -> None:
        child = self._errors.get(reason)
        if child is None:
            child = self._errors[reason] = self.metrics.websocket_message_errors_total.labels(
                reason)
        child.inc()
        level = logging.DEBUG if reason in self._logged_reasons else logging.WARNING
        self._logged_reasons.add(reason)
        log.log(level, "skipped a frame (%s): %s", reason, detail)

    # --- markets --------------------------------------------------------------------------

    def set_known_markets(self, markets: Iterable[tuple[str, str, str]]) -> None:
        """The exchange's market list: symbols and their currencies are always labelled."""
        markets = list(markets)
        self.known_markets = frozenset(symbol for symbol, _, _ in markets)
        for _, base, quote in markets:
            for currency in (base, quote):
                if len(self._currencies) < self.max_markets and _CURRENCY_RE.match(currency):
                    self._currencies.add(currency)

    def market(self, symbol: str) -> MarketState:
        state = self.markets.get(symbol)
        if state is not None:
            return state
        if self.configured_markets is not None:
            if symbol not in self.configured_markets:
                raise protocol.ProtocolError(UNEXPECTED_MARKET, "market was not subscribed")
        elif len(self.markets) >= self.max_markets:
            raise protocol.ProtocolError(MARKET_LIMIT, "more markets than --cryptomus.max-markets")
        trades = self.trade_totals.setdefault(symbol, {})
        resyncs = self.resync_totals.get(symbol)
        if resyncs is None:  # every reason at 0, so increase() sees a market's first resync
            created = self.clock()
            resyncs = self.resync_totals[symbol] = {
                reason: CounterSeries({"market": symbol, "reason": reason}, created)
                for reason in RESYNC_REASONS}
        state = self.markets[symbol] = MarketState(symbol, trades, resyncs, self.band_labels)
        return state

    def _account_market(self, symbol: str) -> str:
        """A market label for the account's own events (same bounds as market data)."""
        return self.market(symbol).symbol

    def _currency(self, currency: str) -> str:
        if currency in self._currencies:
            return currency
        if not _CURRENCY_RE.match(currency):
            raise protocol.ProtocolError(protocol.BAD_FIELD, "currency is not a currency code")
        if len(self._currencies) >= self.max_markets:
            raise protocol.ProtocolError(CURRENCY_LIMIT, "more currencies than the cap")
        self._currencies.add(currency)
        return currency

    # --- public channels ------------------------------------------------------------------
    # ``self.markets.get(symbol) or self.market(symbol)``: market() only for a new market.

    def on_lastprice(self, data: dict) -> None:
        event = protocol.parse_lastprice(data)
        state = self.markets.get(event.symbol) or self.market(event.symbol)
        state.last_price = event.price
        state.updated[LASTPRICE] = self.last_message_time

    def on_ticker(self, data: dict) -> None:
        event = protocol.parse_ticker(data)
        state = self.markets.get(event.symbol) or self.market(event.symbol)
        state.ticker = event
        state.updated[TICKER] = self.last_message_time

    def on_depth(self, data: dict) -> None:
        event = protocol.parse_depth(data)
        state = self.markets.get(event.symbol) or self.market(event.symbol)
        book = state.book
        try:
            if event.full_reload:
                book.reload(event.bids, event.asks)
            else:
                book.apply(event.bids, event.asks)
        except BookNotLoaded:
            if not self.depth_resync_pending:
                self.resync(state, RESYNC_PARTIAL)
            return
        except ValueError as error:
            self.resync(state, RESYNC_INVALID)
            raise protocol.ProtocolError(protocol.BAD_FIELD, f"depth level: {error}") from None
        state.updated[DEPTH] = self.last_message_time
        if book.is_crossed():
            self.resync(state, RESYNC_CROSSED)

    def resync(self, state: MarketState, reason: str) -> None:
        """Drop every book and ask the session for a fresh depth subscription."""
        state.resyncs[reason].value += 1.0
        log.warning("order book of %s cannot be trusted (%s): resubscribing depth",
                    state.symbol, reason)
        self.clear_books()
        self.depth_resync_pending = True
        self.request_depth_resync()

    def depth_resubscribed(self) -> None:
        self.depth_resync_pending = False

    def clear_books(self) -> None:
        for state in self.markets.values():
            state.book.clear()

    def on_trades(self, data: dict) -> None:
        event = protocol.parse_trades(data)
        state = self.markets.get(event.symbol) or self.market(event.symbol)
        totals_by_side = state.trades
        for trade in event.trades:
            totals = totals_by_side.get(trade.side)
            if totals is None:
                totals = totals_by_side[trade.side] = TradeTotals(
                    state.symbol, trade.side, self.last_message_time)
            totals.count += 1.0
            totals.base += trade.quantity
            totals.quote += trade.price * trade.quantity
        state.updated[TRADE] = self.last_message_time

    # --- private channels -----------------------------------------------------------------

    def on_order(self, data: dict) -> None:
        event = protocol.parse_order(data)
        market = self._account_market(event.symbol)
        metrics = self.metrics
        metrics.order_events_total.labels(market, event.side, event.event).inc()
        if event.event == "finished":
            state = event.state if event.state in ORDER_STATES else "other"
            metrics.orders_finished_total.labels(market, event.side, state).inc()
            self._open_orders.pop(event.order_id, None)
        else:
            self._open_orders[event.order_id] = (market, event.side)
        self._publish_open_orders()

    def on_balance(self, data: dict) -> None:
        event = protocol.parse_balance(data)
        currency = self._currency(event.currency)
        self.metrics.balance.labels(currency).set(event.balance)
        self.metrics.balance_changes_total.labels(currency).inc()

    def on_deal(self, data: dict) -> None:
        deal = protocol.parse_deal(data)
        market = self._account_market(deal.symbol)
        fee_currency = self._currency(deal.fee_currency)
        if deal.deal_id:
            if deal.deal_id in self._recent_deals:
                return
            self._recent_deals[deal.deal_id] = None
            if len(self._recent_deals) > _RECENT_DEALS:
                self._recent_deals.popitem(last=False)
        metrics = self.metrics
        metrics.fills_total.labels(market, deal.role).inc()
        metrics.filled_base_volume_total.labels(market, deal.role).inc(deal.quantity)
        metrics.filled_quote_volume_total.labels(market, deal.role).inc(deal.value)
        if deal.fee >= 0:  # a negative fee is a maker rebate: fees_total counts fees paid
            metrics.fees_total.labels(fee_currency).inc(deal.fee)

    def _publish_open_orders(self) -> None:
        counts: dict[tuple[str, str], int] = {}
        for pair in self._open_orders.values():
            counts[pair] = counts.get(pair, 0) + 1
        self._open_order_pairs.update(counts)
        for pair in self._open_order_pairs:
            self.metrics.open_orders.labels(*pair).set(counts.get(pair, 0))

    # --- REST reconciliation ----------------------------------------------------------------

    def reconcile_balances(self, balances: Iterable[protocol.Balance]) -> None:
        for balance in balances:
            try:
                currency = self._currency(balance.currency)
            except protocol.ProtocolError as error:
                self.count_error(error.reason, error.detail)
                continue
            self.metrics.balance.labels(currency).set(balance.available)
            self.metrics.balance_held.labels(currency).set(balance.held)

    def reconcile_open_orders(self, orders: Iterable[protocol.OpenOrder]) -> None:
        """Replace the open-order book keeping with the exchange's own list."""
        open_orders = {}
        for order in orders:
            try:
                open_orders[order.order_id] = (self._account_market(order.symbol), order.side)
            except protocol.ProtocolError as error:
                self.count_error(error.reason, error.detail)
        self._open_orders = open_orders
        self._publish_open_orders()

    # --- staleness ------------------------------------------------------------------------

    def expire_market_data(self) -> None:
        """Remove market gauges (the feed is down): a frozen price must not look live."""
        self.markets.clear()
        log.warning("feed down too long: market gauges removed until data flows again")


def _family(name: str) -> Metric:
    """An empty family for a metric of the table (samples are appended by the caller)."""
    spec = SPECS_BY_NAME[name]
    if spec.kind == COUNTER:
        return Metric(spec.full_name.removesuffix("_total"), spec.help, COUNTER)
    return Metric(spec.full_name, spec.help, spec.kind)


class StreamCollector:
    """The metrics ``Handlers`` keeps as plain numbers, as families at scrape time.

    Samples share their label dicts with the state they describe (built once per
    series), which keeps a scrape of tens of thousands of series cheap.
    """

    _GAUGES = (*MARKET_GAUGES, "market_last_update_timestamp_seconds")
    _COUNTERS = ("trades_total", "traded_base_volume_total", "traded_quote_volume_total",
                 "orderbook_resyncs_total", "websocket_messages_total")

    def __init__(self, handlers: Handlers) -> None:
        self.handlers = handlers

    def describe(self) -> list[Metric]:
        return [_family(name) for name in (*self._GAUGES, *self._COUNTERS)]

    def collect(self) -> list[Metric]:
        return [*self._market_gauges(), *self._trade_counters(), self._resync_counter(),
                self._message_counter()]

    def _market_gauges(self) -> list[Metric]:
        families = [_family(name) for name in self._GAUGES]
        *gauges, updated = families
        names = [family.name for family in gauges]
        updated_name = updated.name
        updated_samples = updated.samples
        last_price, *ticker_gauges = gauges
        last_price_name, *ticker_names = names
        for state in list(self.handlers.markets.values()):
            labels = state.labels
            if state.last_price is not None:
                last_price.samples.append(Sample(last_price_name, labels, state.last_price))
            ticker = state.ticker
            if ticker is not NO_TICKER:  # a market first seen on another channel has none yet
                values = (ticker.open, ticker.high, ticker.low, ticker.base_volume,
                          ticker.quote_volume, ticker.change_ratio)
                for family, name, value in zip(ticker_gauges, ticker_names, values, strict=True):
                    family.samples.append(Sample(name, labels, value))
            for channel_labels, value in zip(state.channel_labels, state.updated, strict=True):
                if value:
                    updated_samples.append(Sample(updated_name, channel_labels, value))
        return families

    def _trade_counters(self) -> list[Metric]:
        families = [_family(name) for name in self._COUNTERS[:3]]
        trades, base, quote = families
        for totals_by_side in list(self.handlers.trade_totals.values()):
            for totals in list(totals_by_side.values()):
                _add_counter(trades, totals.labels, totals.count, totals.created)
                _add_counter(base, totals.labels, totals.base, totals.created)
                _add_counter(quote, totals.labels, totals.quote, totals.created)
        return families

    def _resync_counter(self) -> Metric:
        family = _family("orderbook_resyncs_total")
        for by_reason in list(self.handlers.resync_totals.values()):
            for series in by_reason.values():
                _add_counter(family, series.labels, series.value, series.created)
        return family

    def _message_counter(self) -> Metric:
        family = _family("websocket_messages_total")
        created = self.handlers.message_created
        for method, count in list(self.handlers.message_counts.items()):
            _add_counter(family, {"method": method}, count, created[method])
        return family


def _add_counter(family: Metric, labels: dict[str, str], value: float, created: float) -> None:
    """One counter series: its ``_total`` sample and its ``_created`` time."""
    family.samples.append(Sample(family.name + "_total", labels, value))
    family.samples.append(Sample(family.name + "_created", labels, created))


class BookCollector:
    """Order book gauges, computed at scrape time from the live books.

    Books change thousands of times a second; deriving best prices, spread and
    depth only when Prometheus asks keeps that work off the hot path.
    """

    _NAMES = (
        "orderbook_best_bid_price",
        "orderbook_best_ask_price",
        "orderbook_spread",
        "orderbook_spread_ratio",
        "orderbook_levels",
        "orderbook_depth",
    )

    def __init__(self, handlers: Handlers) -> None:
        self.handlers = handlers

    def describe(self) -> list[Metric]:
        return [_family(name) for name in self._NAMES]

    def collect(self) -> list[Metric]:
        families = [_family(name) for name in self._NAMES]
        bid, ask, spread, ratio, levels, depth = (family.samples for family in families)
        bid_name, ask_name, spread_name, ratio_name, levels_name, depth_name = (
            family.name for family in families)
        bands = self.handlers.depth_bands
        for state in list(self.handlers.markets.values()):
            book = state.book
            if not book.loaded:
                continue
            labels = state.labels
            bid_labels, ask_labels = state.side_labels
            bid_levels, ask_levels = book.levels()
            levels.append(Sample(levels_name, bid_labels, bid_levels))
            levels.append(Sample(levels_name, ask_labels, ask_levels))
            best_bid, best_ask = book.best_bid, book.best_ask
            if best_bid is not None:
                bid.append(Sample(bid_name, labels, best_bid))
            if best_ask is not None:
                ask.append(Sample(ask_name, labels, best_ask))
            if best_bid is None or best_ask is None:
                continue
            mid = (best_bid + best_ask) / 2
            spread.append(Sample(spread_name, labels, best_ask - best_bid))
            ratio.append(Sample(ratio_name, labels,
                                (best_ask - best_bid) / mid if mid > 0 else 0.0))
            bid_depth, ask_depth = book.depth(bands)
            for (bid_band_labels, ask_band_labels), bid_qty, ask_qty in zip(
                    state.depth_labels, bid_depth, ask_depth, strict=True):
                depth.append(Sample(depth_name, bid_band_labels, bid_qty))
                depth.append(Sample(depth_name, ask_band_labels, ask_qty))
        return families
