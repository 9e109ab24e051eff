"""Write side, market data: the public channels' apply functions, market bounds,
order book resyncs and expiry.

An apply function takes ``(state, event, now, resubscribe)``: it changes the state
for one parsed event (``now`` is the frame's arrival, Unix time) and calls
``resubscribe()`` when its channel's data can no longer be trusted and the
subscription must be renewed. A ``ProtocolError`` it raises is counted by the
caller and costs this frame only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from .. import protocol
from ..book import BookNotLoaded
from .model import CounterSeries, MarketData, MarketState, State, TradeTotals

log = logging.getLogger(__name__)

UNEXPECTED_MARKET = "unexpected_market"
MARKET_LIMIT = "market_limit"
UNSUBSCRIBED_SCALE = "unsubscribed_scale"
RESYNC_PARTIAL = "partial_before_reload"
RESYNC_CROSSED = "crossed"
RESYNC_INVALID = "invalid"
RESYNC_REASONS = (RESYNC_PARTIAL, RESYNC_CROSSED, RESYNC_INVALID)
# Seconds after a depth (re)subscription during which a book's full reload may still be
# on its way (the protocol's open point: usually right after the ack, but it may be late).
LATE_BOOK_GRACE = 10.0

Resubscribe = Callable[..., None]  # resubscribe() or resubscribe(market)


def market(data: MarketData, symbol: str, now: float) -> MarketState:
    """The state of a market, created on its first event if the bounds allow it."""
    state = data.markets.get(symbol)
    if state is not None:
        return state
    if data.configured is not None:
        if symbol not in data.configured:
            raise protocol.ProtocolError(UNEXPECTED_MARKET, "market was not subscribed")
    elif len(data.markets) >= data.max_markets:
        raise protocol.ProtocolError(MARKET_LIMIT, "more markets than --cryptomus.max-markets")
    trades = data.trade_totals.setdefault(symbol, {})
    resyncs = data.resync_totals.get(symbol)
    if resyncs is None:  # every reason at 0, so increase() sees a market's first resync
        resyncs = data.resync_totals[symbol] = {
            reason: CounterSeries({"market": symbol, "reason": reason}, now)
            for reason in RESYNC_REASONS}
    state = data.markets[symbol] = MarketState(symbol, trades, resyncs, data.band_labels,
                                               data.update_channels)
    return state


# ``markets.get(symbol) or market(...)``: market() only for a new market (hot path).

def apply_lastprice(state: State, event: protocol.LastPrice, now: float,
                    resubscribe: Resubscribe) -> None:
    data = state.markets
    market_state = data.markets.get(event.symbol) or market(data, event.symbol, now)
    market_state.last_price = event.price
    market_state.updated["lastprice"] = now


def apply_ticker(state: State, event: protocol.Ticker, now: float,
                 resubscribe: Resubscribe) -> None:
    data = state.markets
    market_state = data.markets.get(event.symbol) or market(data, event.symbol, now)
    market_state.ticker = event
    market_state.updated["ticker"] = now


def apply_depth(state: State, event: protocol.Depth, now: float,
                resubscribe: Resubscribe) -> None:
    data = state.markets
    if event.scale_index != data.depth_scale and event.scale_index is not None:
        # Another scale of the market (``all`` may deliver several): merged into this
        # book it would look crossed and resync forever. Counted and dropped; a frame
        # that names no scale is taken for the subscribed one.
        raise protocol.ProtocolError(UNSUBSCRIBED_SCALE,
                                     f"scale_index {event.scale_index} is not the subscribed "
                                     f"{data.depth_scale}")
    market_state = data.markets.get(event.symbol) or market(data, event.symbol, now)
    book = market_state.book
    try:
        if event.full_reload:
            crossed = book.reload(event.bids, event.asks)
        else:
            crossed = book.apply(event.bids, event.asks)
    except BookNotLoaded:
        # Right after a (re)subscription the full book may come late: partial updates
        # before it are dropped, not shown, and only a book still missing after the grace
        # is resubscribed (resyncing at once would restart the wait every time).
        if (now - data.depth_subscribed_at >= LATE_BOOK_GRACE
                and "depth" not in state.link.resync_pending):
            _resync(state, market_state, RESYNC_PARTIAL, resubscribe)
        return
    except ValueError as error:
        _resync(state, market_state, RESYNC_INVALID, resubscribe)
        raise protocol.ProtocolError(protocol.BAD_FIELD, f"depth level: {error}") from None
    market_state.updated["depth"] = now
    if crossed:
        _resync(state, market_state, RESYNC_CROSSED, resubscribe)


def _resync(state: State, market_state: MarketState, reason: str,
            resubscribe: Resubscribe) -> None:
    """Drop this market's book and ask for a fresh depth subscription. The other books
    stay until the resubscription itself (``depth_resubscribing``): a market whose
    resyncs are backed off must not take them down while it waits."""
    market_state.resyncs[reason].value += 1.0
    log.warning("order book of %s cannot be trusted (%s): resubscribing depth",
                market_state.symbol, reason)
    market_state.book.clear()
    state.link.resync_pending.add("depth")
    resubscribe(market_state.symbol)


def apply_trades(state: State, event: protocol.Trades, now: float,
                 resubscribe: Resubscribe) -> None:
    data = state.markets
    market_state = data.markets.get(event.symbol) or market(data, event.symbol, now)
    totals_by_side = market_state.trades
    for trade in event.trades:
        totals = totals_by_side.get(trade.side)
        if totals is None:
            totals = totals_by_side[trade.side] = TradeTotals(market_state.symbol, trade.side, now)
        totals.count += 1.0
        totals.base += trade.quantity
        totals.quote += trade.price * trade.quantity
    market_state.updated["trade"] = now


def scales_checked(data: MarketData, *, present: list[str], missing: list[str]) -> None:
    """Markets whose scale list has (``present``) or lacks (``missing``) the configured
    depth scale; a market whose list could not be fetched keeps its last value."""
    for symbol in present:
        data.scale_missing[symbol] = 0.0
    for symbol in missing:
        data.scale_missing[symbol] = 1.0


def depth_subscribing(state: State, now: float) -> None:
    """Depth is about to be subscribed (at connect) or unsubscribed and subscribed again:
    every book reloads, none can be trusted until its full reload arrives, and partial
    updates before it are expected for ``LATE_BOOK_GRACE`` seconds."""
    clear_books(state.markets)
    state.markets.depth_subscribed_at = now


def still_broken(state: State, symbols: Iterable[str]) -> list[str]:
    """The markets of ``symbols`` whose book is still missing or crossed: a full reload
    that arrived since a resync was asked for makes that resync moot."""
    broken = []
    for symbol in symbols:
        market_state = state.markets.markets.get(symbol)
        if market_state is None or not market_state.book.loaded or market_state.book.is_crossed():
            broken.append(symbol)
    return broken


def clear_books(data: MarketData) -> None:
    for market_state in data.markets.values():
        market_state.book.clear()


def expire(state: State) -> None:
    """Remove market gauges (the feed is down): a frozen price must not look live."""
    state.markets.markets.clear()
    log.warning("feed down too long: market gauges removed until data flows again")
