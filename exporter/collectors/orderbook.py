"""Order book gauges, computed at scrape time from the live books (and the resync
backoff of each market, from ``backoff.ResyncPolicy``).

Books change thousands of times a second; deriving best prices, spread and depth
only when Prometheus asks keeps that work off the hot path.
"""

from __future__ import annotations

import time

from prometheus_client.core import Metric
from prometheus_client.samples import Sample

from ..state.model import MarketData
from .families import TableCollector, add_gauge, families


class BookCollector(TableCollector):
    NAMES = ("orderbook_best_bid_price", "orderbook_best_ask_price", "orderbook_spread",
             "orderbook_spread_ratio", "orderbook_levels", "orderbook_depth",
             "orderbook_resync_backoff_seconds", "orderbook_scale_missing")

    def __init__(self, markets: MarketData) -> None:
        self.markets = markets

    def collect(self) -> list[Metric]:
        result = families(self.NAMES)
        bid, ask, spread, ratio, levels, depth, backoff, _ = (metric.samples for metric in result)
        bid_name, ask_name, spread_name, ratio_name, levels_name, depth_name, backoff_name, _ = (
            metric.name for metric in result)
        for symbol, missing in list(self.markets.scale_missing.items()):
            add_gauge(result[-1], {"market": symbol}, missing)
        bands = self.markets.depth_bands
        backoffs = self.markets.resync_policy.backoffs(time.monotonic())
        for state in list(self.markets.markets.values()):
            book = state.book
            # every market with a book (depth data seen), 0 unless its resyncs back off
            if "depth" in state.updated or state.symbol in backoffs:
                backoff.append(Sample(backoff_name, state.labels,
                                      backoffs.get(state.symbol, 0.0)))
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
        return result
