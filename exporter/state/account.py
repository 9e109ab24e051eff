"""Write side, the account: the private channels' apply functions and the REST
reconciliation (market list, balances, open orders).

Market labels of the account's events have the same bounds as market data;
currencies are capped at ``max_currencies``; order states outside a known set
become ``other``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .. import protocol
from .link import reject
from .market import Resubscribe, market
from .model import Account, CounterSeries, FillTotals, State

CURRENCY_LIMIT = "currency_limit"
ORDER_STATES = frozenset(("completed", "canceled", "cancelled", "rejected", "expired", "failed"))
_CURRENCY_RE = re.compile(r"^[A-Z0-9]{1,16}$")
_RECENT_DEALS = 4096


def _currency(account: Account, currency: str) -> str:
    if currency in account.currencies:
        return currency
    if not _CURRENCY_RE.match(currency):
        raise protocol.ProtocolError(protocol.BAD_FIELD, "currency is not a currency code")
    if len(account.currencies) >= account.max_currencies:
        raise protocol.ProtocolError(CURRENCY_LIMIT, "more currencies than the cap")
    account.currencies.add(currency)
    return currency


def _count(series: dict, key, labels: dict[str, str], now: float, amount: float = 1.0) -> None:
    counter = series.get(key)
    if counter is None:
        counter = series[key] = CounterSeries(labels, now)
    counter.value += amount


def apply_order(state: State, event: protocol.OrderEvent, now: float,
                resubscribe: Resubscribe) -> None:
    account = state.account
    symbol = market(state.markets, event.symbol, now).symbol
    side = event.side
    _count(account.order_events, (symbol, side, event.event),
           {"market": symbol, "side": side, "event": event.event}, now)
    if event.event == "finished":
        final = event.state if event.state in ORDER_STATES else "other"
        _count(account.orders_finished, (symbol, side, final),
               {"market": symbol, "side": side, "state": final}, now)
        account.open_orders.pop(event.order_id, None)
    else:
        account.open_orders[event.order_id] = (symbol, side)
    account.open_order_pairs.add((symbol, side))


def apply_balance(state: State, event: protocol.BalanceEvent, now: float,
                  resubscribe: Resubscribe) -> None:
    account = state.account
    currency = _currency(account, event.currency)
    account.balances[currency] = event.balance
    _count(account.balance_changes, currency, {"currency": currency}, now)


def apply_deal(state: State, deal: protocol.Deal, now: float, resubscribe: Resubscribe) -> None:
    account = state.account
    symbol = market(state.markets, deal.symbol, now).symbol
    fee_currency = _currency(account, deal.fee_currency)
    if deal.deal_id:
        if deal.deal_id in account.recent_deals:
            return
        account.recent_deals[deal.deal_id] = None
        if len(account.recent_deals) > _RECENT_DEALS:
            account.recent_deals.popitem(last=False)
    totals = account.fills.get((symbol, deal.role))
    if totals is None:
        totals = account.fills[(symbol, deal.role)] = FillTotals(
            {"market": symbol, "role": deal.role}, now)
    totals.count += 1.0
    totals.base += deal.quantity
    totals.quote += deal.value
    if deal.fee >= 0:  # a negative fee is a maker rebate: fees_total counts fees paid
        _count(account.fees, fee_currency, {"currency": fee_currency}, now, deal.fee)


# --- REST reconciliation ----------------------------------------------------------------


def set_known_markets(state: State, markets: Iterable[tuple[str, str, str]]) -> None:
    """The exchange's market list: symbols, and their currencies are always labelled."""
    markets = list(markets)
    state.markets.known = frozenset(symbol for symbol, _, _ in markets)
    account = state.account
    for _, base, quote in markets:
        for currency in (base, quote):
            if len(account.currencies) < account.max_currencies and _CURRENCY_RE.match(currency):
                account.currencies.add(currency)


def reconcile_balances(state: State, balances: Iterable[protocol.Balance], now: float) -> None:
    account = state.account
    for balance in balances:
        try:
            currency = _currency(account, balance.currency)
        except protocol.ProtocolError as error:
            reject(state.link, error.reason, error.detail)
            continue
        account.balances[currency] = balance.available
        account.held[currency] = balance.held


def reconcile_open_orders(state: State, orders: Iterable[protocol.OpenOrder], now: float) -> None:
    """Replace the open-order book keeping with the exchange's own list."""
    open_orders = {}
    for order in orders:
        try:
            open_orders[order.order_id] = (market(state.markets, order.symbol, now).symbol,
                                           order.side)
        except protocol.ProtocolError as error:
            reject(state.link, error.reason, error.detail)
    state.account.open_orders = open_orders
    state.account.open_order_pairs.update(open_orders.values())
