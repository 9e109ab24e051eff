"""The channel table: one entry per WebSocket channel the exporter speaks.

Everything that depends on the set of channels derives from ``CHANNELS``: the
``--cryptomus.channels`` choices (``settings``), the subscription params
(``Session``), the dispatch of update events to their apply functions
(``FrameHandler``), the ``method`` label values of ``websocket_messages_total``
and the contract tests. Adding a channel is one entry here, plus its parser
(``protocol``), its apply function (``state``) and its metric rows (``metrics``);
see docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from . import protocol, state
from .state import account, market
from .state.link import Route, route
from .state.model import State

Apply = Callable[[State, Any, float, Callable[[], None]], None]


class Selection(NamedTuple):
    """What the user asked for, as subscription params are derived from it."""

    markets: tuple[str, ...] | None  # None: all
    depth_scale: int
    known_markets: frozenset[str]  # the exchange's market list, if fetched
    # The markets whose scale list has depth_scale (or could not be checked), when the
    # scale lists were checked (``depthscales.DepthScales``); None: not checked.
    depth_markets: tuple[str, ...] | None = None


def market_params(selection: Selection) -> list[str]:
    return ["all"] if selection.markets is None else list(selection.markets)


def depth_params(selection: Selection) -> list[str]:
    """``MARKET:scale``; ``all`` covers scale 0 only, so other scales name every market.
    An empty list: no market to subscribe depth for (the session then skips it)."""
    if selection.depth_markets is not None:
        return [f"{symbol}:{selection.depth_scale}" for symbol in selection.depth_markets]
    markets = selection.markets
    if markets is None:
        if selection.depth_scale == 0:
            return ["all"]
        markets = tuple(sorted(selection.known_markets))
        if not markets:
            raise ValueError("depth with a non-zero scale needs explicit markets")
    return [f"{symbol}:{selection.depth_scale}" for symbol in markets]


def all_params(selection: Selection) -> list[str]:
    """Balances are keyed by currency, not market: always every currency."""
    return ["all"]


@dataclass(frozen=True)
class Channel:
    name: str
    private: bool
    update_method: str
    params: Callable[[Selection], list[str]]
    parse: Callable[[dict], Any]
    apply: Apply
    families: tuple[str, ...]  # the metrics (names in metrics.SPECS) its events feed
    # Public market channels stamp market_last_update_timestamp_seconds{channel}.
    market_updates: bool = False
    # A channel whose data fits no existing part of the state brings its own: the
    # state (kept in State.extra[name]) and the collector that exposes it.
    new_state: Callable[[], Any] | None = None
    collector: Callable[[State], Any] | None = None


_UPDATED = "market_last_update_timestamp_seconds"

CHANNELS: tuple[Channel, ...] = (
    Channel("lastprice", False, "lastprice_update", market_params, protocol.parse_lastprice,
            market.apply_lastprice, ("last_price", _UPDATED), market_updates=True),
    Channel("ticker", False, "ticker_update", market_params, protocol.parse_ticker,
            market.apply_ticker,
            ("ticker_open_price", "ticker_high_price", "ticker_low_price", "ticker_base_volume",
             "ticker_quote_volume", "ticker_price_change_ratio", _UPDATED), market_updates=True),
    Channel("depth", False, "depth_update", depth_params, protocol.parse_depth,
            market.apply_depth,
            ("orderbook_best_bid_price", "orderbook_best_ask_price", "orderbook_spread",
             "orderbook_spread_ratio", "orderbook_levels", "orderbook_depth",
             "orderbook_resyncs_total", "orderbook_resync_backoff_seconds",
             "orderbook_scale_missing", _UPDATED),
            market_updates=True),
    Channel("trade", False, "trade_update", market_params, protocol.parse_trades,
            market.apply_trades,
            ("trades_total", "traded_base_volume_total", "traded_quote_volume_total", _UPDATED),
            market_updates=True),
    Channel("order", True, "order_update", market_params, protocol.parse_order,
            account.apply_order, ("open_orders", "order_events_total", "orders_finished_total")),
    Channel("balance", True, "balance_update", all_params, protocol.parse_balance,
            account.apply_balance, ("balance", "balance_changes_total")),
    Channel("deal", True, "deal_update", market_params, protocol.parse_deal, account.apply_deal,
            ("fills_total", "filled_base_volume_total", "filled_quote_volume_total",
             "fees_total")),
)


def names(table: Iterable[Channel] = CHANNELS) -> tuple[str, ...]:
    return tuple(channel.name for channel in table)


def private_names(table: Iterable[Channel] = CHANNELS) -> tuple[str, ...]:
    return tuple(channel.name for channel in table if channel.private)


def market_update_names(table: Iterable[Channel] = CHANNELS) -> tuple[str, ...]:
    return tuple(channel.name for channel in table if channel.market_updates)


def by_name(table: Iterable[Channel] = CHANNELS) -> dict[str, Channel]:
    return {channel.name: channel for channel in table}


def message_labels(table: Iterable[Channel] = CHANNELS) -> frozenset[str]:
    """Label values of websocket_messages_total{method} (anything else is ``other``)."""
    labels = {"pong", "ack"}
    for channel in table:
        labels.update((channel.update_method, channel.name + protocol.SUBSCRIBE_SUFFIX,
                       channel.name + protocol.UNSUBSCRIBE_SUFFIX))
    return frozenset(labels)


def routes(state: State, table: Iterable[Channel],
           on_resync: Callable[[str, str | None], None]) -> Mapping[str, Route]:
    """Update method -> what one event of it does; ``on_resync(channel)`` renews a
    channel's subscription when its apply function asks for it (``market``: the market
    whose data broke, or None)."""
    return {channel.update_method: route(state, channel.update_method, channel.parse,
                                         channel.apply, _resubscribe(on_resync, channel.name))
            for channel in table}


def _resubscribe(on_resync: Callable[[str, str | None], None],
                 name: str) -> Callable[..., None]:
    """``resubscribe()``, or ``resubscribe(market)`` when one market's data broke (its
    resyncs back off on their own: ``backoff.ResyncPolicy``)."""
    return lambda market=None: on_resync(name, market)


def new_state(table: Iterable[Channel] = CHANNELS, *, subscribed: tuple[str, ...] | None = None,
              markets: tuple[str, ...] | None = None, max_markets: int = 1000,
              depth_bands: tuple[float, ...] = (0.005, 0.01, 0.02), depth_scale: int = 0,
              resync_min_interval: float = 5.0, now: float | None = None) -> State:
    """An empty state for the channels of ``table`` (``subscribed``: those configured)."""
    table = tuple(table)
    return state.new_state(
        subscribed=names(table) if subscribed is None else subscribed,
        update_channels=market_update_names(table), markets=markets, max_markets=max_markets,
        depth_bands=depth_bands, depth_scale=depth_scale,
        resync_min_interval=resync_min_interval, now=now,
        extra={channel.name: channel.new_state() for channel in table if channel.new_state})


def problems(table: Iterable[Channel], specs: Iterable[Any]) -> list[str]:
    """What is wrong with a channel table against a metrics table (empty when nothing)."""
    table = tuple(table)
    known = {spec.name for spec in specs}
    found = []
    for what, values in (("name", names(table)),
                         ("update method", [channel.update_method for channel in table])):
        found += [f"{what} {value!r} appears twice" for value in set(values)
                  if values.count(value) > 1]
    for channel in table:
        found += [f"{channel.name}: metric {name!r} is not in the metrics table"
                  for name in channel.families if name not in known]
        if (channel.new_state is None) != (channel.collector is None):
            found.append(f"{channel.name}: a state of its own needs a collector, and back")
    return found
