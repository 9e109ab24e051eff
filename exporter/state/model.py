"""The state model: plain data, written only by the write side (the other modules of
this package), read by the collectors at scrape time.

Label dicts are built once, when a series first appears, and shared with every
sample the collectors expose for it (nothing in prometheus-client mutates them):
that keeps a scrape of tens of thousands of series cheap.

Counters are never removed: they live in maps that outlive the market states
(``MarketData.trade_totals`` and ``resync_totals``), so expiring a market's
gauges keeps its counters.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ..backoff import ResyncPolicy
from ..book import OrderBook

BOOK_SIDES = ("bid", "ask")


class CounterSeries:
    """One counter series: labels, value and ``_created`` time."""

    __slots__ = ("created", "labels", "value")

    def __init__(self, labels: dict[str, str], created: float) -> None:
        self.labels = labels
        self.value = 0.0
        self.created = created


class TradeTotals:
    """Public trades of one market and taker side (exposed as three counters)."""

    __slots__ = ("base", "count", "created", "labels", "quote")

    def __init__(self, symbol: str, side: str, created: float) -> None:
        self.labels = {"market": symbol, "side": side}
        self.count = 0.0
        self.base = 0.0
        self.quote = 0.0
        self.created = created


class MarketState:
    """One market's latest values. Each gauge appears with the first update of its
    channel (never as a made-up 0), and all disappear together when market data expires."""

    __slots__ = ("book", "channel_labels", "depth_labels", "labels", "last_price", "resyncs",
                 "side_labels", "symbol", "ticker", "trades", "updated")

    def __init__(self, symbol: str, trades: dict[str, TradeTotals],
                 resyncs: dict[str, CounterSeries], band_labels: tuple[str, ...],
                 update_channels: tuple[str, ...]) -> None:
        self.symbol = symbol
        self.labels = {"market": symbol}
        self.channel_labels = {channel: {"market": symbol, "channel": channel}
                               for channel in update_channels}
        self.side_labels = tuple({"market": symbol, "side": side} for side in BOOK_SIDES)
        self.depth_labels = tuple(
            tuple({"market": symbol, "side": side, "band": band} for side in BOOK_SIDES)
            for band in band_labels)
        self.book = OrderBook()
        self.last_price: float | None = None
        self.ticker: Any = None  # protocol.Ticker once one arrived
        self.updated: dict[str, float] = {}  # channel -> Unix time of its last update
        self.trades = trades  # by side; outlives the state (counters are never removed)
        self.resyncs = resyncs  # by reason; outlives the state too


class MarketData:
    """Markets seen on the stream, bounded: the configured ones, or with ``all`` at most
    ``max_markets`` of them."""

    def __init__(self, *, configured: tuple[str, ...] | None, max_markets: int,
                 depth_bands: tuple[float, ...], update_channels: tuple[str, ...],
                 depth_scale: int = 0, resync_min_interval: float = 5.0) -> None:
        self.configured = frozenset(configured) if configured else None
        self.depth_scale = depth_scale  # the one scale index the books are kept for
        # When each market's book may be resynced (outlives connections); the session's
        # resync loop asks it, the order book collector shows its backoffs.
        self.resync_policy = ResyncPolicy(resync_min_interval)
        # market -> 1 while its scale list lacks depth_scale (not subscribed), else 0
        self.scale_missing: dict[str, float] = {}
        # Unix time depth was last (re)subscribed: partial updates before a book's first
        # full reload are expected for a while after it (the full book may come late).
        self.depth_subscribed_at = float("-inf")
        self.max_markets = max_markets
        self.depth_bands = depth_bands
        self.band_labels = tuple(f"{band:g}" for band in depth_bands)
        self.update_channels = update_channels  # label values of market_last_update_...
        self.markets: dict[str, MarketState] = {}
        self.known: frozenset[str] = frozenset()  # the exchange's market list
        self.trade_totals: dict[str, dict[str, TradeTotals]] = {}
        self.resync_totals: dict[str, dict[str, CounterSeries]] = {}


class FillTotals:
    """The account's fills of one market and role (three counters)."""

    __slots__ = ("base", "count", "created", "labels", "quote")

    def __init__(self, labels: dict[str, str], created: float) -> None:
        self.labels = labels
        self.count = 0.0
        self.base = 0.0
        self.quote = 0.0
        self.created = created


class Account:
    """The account's balances, orders and fills (private channels + REST)."""

    def __init__(self, max_currencies: int) -> None:
        self.max_currencies = max_currencies
        self.currencies: set[str] = set()
        self.balances: dict[str, float] = {}
        self.held: dict[str, float] = {}
        self.balance_changes: dict[str, CounterSeries] = {}
        self.open_orders: dict[str, tuple[str, str]] = {}  # order id -> (market, side)
        self.open_order_pairs: set[tuple[str, str]] = set()  # every (market, side) seen
        self.order_events: dict[tuple[str, str, str], CounterSeries] = {}
        self.orders_finished: dict[tuple[str, str, str], CounterSeries] = {}
        self.fills: dict[tuple[str, str], FillTotals] = {}
        self.fees: dict[str, CounterSeries] = {}
        self.recent_deals: OrderedDict[str, None] = OrderedDict()


class Link:
    """The connection's health and the REST calls' counts."""

    def __init__(self, *, channels: tuple[str, ...], error_reasons: tuple[str, ...],
                 disconnect_reasons: tuple[str, ...], connect_stages: tuple[str, ...],
                 created: float) -> None:
        def counters(label: str, values: tuple[str, ...]) -> dict[str, CounterSeries]:
            # every bounded series at 0 from the start, so increase() sees its first event
            return {value: CounterSeries({label: value}, created) for value in values}

        self.connected = False
        self.connected_since = 0.0
        self.connects = CounterSeries({}, created)
        self.disconnects = counters("reason", disconnect_reasons)
        self.connect_failures = counters("stage", connect_stages)
        self.subscriptions = dict.fromkeys(channels, 0.0)
        self.subscribe_failures = counters("channel", channels)
        self.reconnect_backoff = 0.0
        self.resync_pending: set[str] = set()  # channels whose resubscription is under way
        self.last_message_time = 0.0  # any frame
        self.last_event_time = 0.0  # an update event that applied
        self.message_counts: dict[str, float] = {}  # by method label
        self.message_created: dict[str, float] = {}
        self.errors = counters("reason", error_reasons)
        self.logged_reasons: set[str] = set()  # error reasons already logged once
        self.api_requests: dict[tuple[str, str], CounterSeries] = {}


class State:
    """Everything the exporter knows; ``extra`` holds the state of channels that bring
    their own (see ``channels.Channel.new_state``)."""

    def __init__(self, markets: MarketData, account: Account, link: Link,
                 extra: dict[str, Any] | None = None) -> None:
        self.markets = markets
        self.account = account
        self.link = link
        self.extra = extra or {}
