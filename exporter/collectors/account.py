"""The account: balances, open orders, order events, fills and fees."""

from __future__ import annotations

from prometheus_client.core import Metric

from ..state.model import Account
from .families import TableCollector, add_counter, add_series, families


class AccountCollector(TableCollector):
    NAMES = ("balance", "balance_held", "balance_changes_total", "open_orders",
             "order_events_total", "orders_finished_total", "fills_total",
             "filled_base_volume_total", "filled_quote_volume_total", "fees_total")

    def __init__(self, account: Account) -> None:
        self.account = account

    def collect(self) -> list[Metric]:
        account = self.account
        result = families(self.NAMES)
        (balance, held, changes, open_orders, events, finished, fills, base, quote,
         fees) = result
        for currency, value in list(account.balances.items()):
            balance.add_metric([currency], value)
        for currency, value in list(account.held.items()):
            held.add_metric([currency], value)
        counts: dict[tuple[str, str], int] = {}
        for pair in list(account.open_orders.values()):
            counts[pair] = counts.get(pair, 0) + 1
        for pair in sorted(account.open_order_pairs):
            open_orders.add_metric(list(pair), counts.get(pair, 0))
        for metric, series in ((changes, account.balance_changes), (events, account.order_events),
                               (finished, account.orders_finished), (fees, account.fees)):
            for counter in list(series.values()):
                add_series(metric, counter)
        for totals in list(account.fills.values()):
            add_counter(fills, totals.labels, totals.count, totals.created)
            add_counter(base, totals.labels, totals.base, totals.created)
            add_counter(quote, totals.labels, totals.quote, totals.created)
        return result
