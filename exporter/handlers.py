"""Frames -> metric updates: the only code that mutates metrics from the stream.

``Handlers.handle_frame`` decodes one frame, dispatches update events through a
table keyed by method, and hands replies to our own requests (pongs, acks,
errors) back to the session. A frame that breaks the protocol is counted in
``websocket_message_errors_total{reason}`` and skipped; nothing else changes.

Label values come only from bounded sets: markets are the configured ones, or
with ``all`` at most ``max_markets`` of them; currencies likewise; order states
outside a known set become ``other``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client.core import GaugeMetricFamily

from . import protocol
from .book import OrderBook
from .metrics import SPECS_BY_NAME, Metrics

log = logging.getLogger(__name__)

UNEXPECTED_MARKET = "unexpected_market"
MARKET_LIMIT = "market_limit"
CURRENCY_LIMIT = "currency_limit"
UNEXPECTED_REPLY = "unexpected_reply"
ERROR_REASONS = (*protocol.ERROR_REASONS, UNEXPECTED_MARKET, MARKET_LIMIT, CURRENCY_LIMIT,
                 UNEXPECTED_REPLY)
RESYNC_PARTIAL = "partial_before_reload"
RESYNC_CROSSED = "crossed"
RESYNC_INVALID = "invalid"

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


class MarketState:
    """Per-market label children, resolved once (``labels()`` costs about 1 us)."""

    __slots__ = ("book", "children", "symbol", "updated")

    def __init__(self, symbol: str, metrics: Metrics) -> None:
        self.symbol = symbol
        self.book = OrderBook()
        self.children = {name: getattr(metrics, name).labels(symbol) for name in MARKET_GAUGES}
        self.updated = {
            channel: metrics.market_last_update_timestamp_seconds.labels(symbol, channel)
            for channel in MARKET_CHANNELS
        }


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
        self._messages = {}
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

    # --- frames ---------------------------------------------------------------------------

    def handle_frame(self, frame: bytes | str) -> protocol.Response | None:
        """Apply one frame; return it when it is a reply to one of our requests."""
        self.last_message_time = self.clock()
        try:
            message = protocol.decode(frame)
            method = message.get("method")
            handler = self.dispatch.get(method)
            if handler is not None:
                handler(protocol.event_data(message))
                self.last_event_time = self.last_message_time
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

    def count_message(self, method: str) -> None:
        child = self._messages.get(method)
        if child is None:
            label = method if self._is_protocol_method(method) else "other"
            child = self._messages[method] = self.metrics.websocket_messages_total.labels(label)
        child.inc()

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
        state = self.markets[symbol] = MarketState(symbol, self.metrics)
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

    def on_lastprice(self, data: dict) -> None:
        event = protocol.parse_lastprice(data)
        state = self.market(event.symbol)
        state.children["last_price"].set(event.price)
        state.updated["lastprice"].set(self.last_message_time)

    def on_ticker(self, data: dict) -> None:
        event = protocol.parse_ticker(data)
        state = self.market(event.symbol)
        children = state.children
        children["ticker_open_price"].set(event.open)
        children["ticker_high_price"].set(event.high)
        children["ticker_low_price"].set(event.low)
        children["ticker_base_volume"].set(event.base_volume)
        children["ticker_quote_volume"].set(event.quote_volume)
        children["ticker_price_change_ratio"].set(event.change_ratio)
        state.updated["ticker"].set(self.last_message_time)

    def on_depth(self, data: dict) -> None:
        event = protocol.parse_depth(data)
        state = self.market(event.symbol)
        book = state.book
        try:
            if event.full_reload:
                book.reload(event.bids, event.asks)
            elif not book.loaded:
                if not self.depth_resync_pending:
                    self.resync(state, RESYNC_PARTIAL)
                return
            else:
                book.apply(event.bids, event.asks)
        except ValueError as error:
            self.resync(state, RESYNC_INVALID)
            raise protocol.ProtocolError(protocol.BAD_FIELD, f"depth level: {error}") from None
        state.updated["depth"].set(self.last_message_time)
        if book.is_crossed():
            self.resync(state, RESYNC_CROSSED)

    def resync(self, state: MarketState, reason: str) -> None:
        """Drop every book and ask the session for a fresh depth subscription."""
        self.metrics.orderbook_resyncs_total.labels(state.symbol, reason).inc()
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
        symbol = self.market(event.symbol).symbol
        metrics = self.metrics
        for trade in event.trades:
            metrics.trades_total.labels(symbol, trade.side).inc()
            metrics.traded_base_volume_total.labels(symbol, trade.side).inc(trade.quantity)
            metrics.traded_quote_volume_total.labels(symbol, trade.side).inc(
                trade.price * trade.quantity)
        self.markets[symbol].updated["trade"].set(self.last_message_time)

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
        metrics = self.metrics
        for symbol in self.markets:
            for name in MARKET_GAUGES:
                _remove(getattr(metrics, name), symbol)
            for channel in MARKET_CHANNELS:
                _remove(metrics.market_last_update_timestamp_seconds, symbol, channel)
        self.markets.clear()
        log.warning("feed down too long: market gauges removed until data flows again")


def _remove(metric: Any, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)


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

    def describe(self):
        return [self._family(name) for name in self._NAMES]

    def _family(self, name: str) -> GaugeMetricFamily:
        spec = SPECS_BY_NAME[name]
        return GaugeMetricFamily(spec.full_name, spec.help, labels=spec.labels)

    def collect(self):
        bid, ask, spread, ratio, levels, depth = (self._family(name) for name in self._NAMES)
        bands = self.handlers.depth_bands
        band_labels = self.handlers.band_labels
        for symbol, state in list(self.handlers.markets.items()):
            book = state.book
            if not book.loaded:
                continue
            bid_levels, ask_levels = book.levels()
            levels.add_metric([symbol, "bid"], bid_levels)
            levels.add_metric([symbol, "ask"], ask_levels)
            best_bid, best_ask = book.best_bid, book.best_ask
            if best_bid is not None:
                bid.add_metric([symbol], best_bid)
            if best_ask is not None:
                ask.add_metric([symbol], best_ask)
            if best_bid is None or best_ask is None:
                continue
            mid = (best_bid + best_ask) / 2
            spread.add_metric([symbol], best_ask - best_bid)
            ratio.add_metric([symbol], (best_ask - best_bid) / mid if mid > 0 else 0.0)
            bid_depth, ask_depth = book.depth(bands)
            for label, bid_qty, ask_qty in zip(band_labels, bid_depth, ask_depth, strict=True):
                depth.add_metric([symbol, "bid", label], bid_qty)
                depth.add_metric([symbol, "ask", label], ask_qty)
        return [bid, ask, spread, ratio, levels, depth]
