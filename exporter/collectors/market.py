"""Market data: last prices, 24 h tickers, update times, public trades, book resyncs."""

from __future__ import annotations

from prometheus_client.core import Metric
from prometheus_client.samples import Sample

from ..state.model import MarketData
from .families import TableCollector, add_counter, add_series, families

_TICKER = ("ticker_open_price", "ticker_high_price", "ticker_low_price", "ticker_base_volume",
           "ticker_quote_volume", "ticker_price_change_ratio")
_TRADES = ("trades_total", "traded_base_volume_total", "traded_quote_volume_total")


class MarketCollector(TableCollector):
    NAMES = ("last_price", *_TICKER, "market_last_update_timestamp_seconds", *_TRADES,
             "orderbook_resyncs_total")

    def __init__(self, markets: MarketData) -> None:
        self.markets = markets

    def collect(self) -> list[Metric]:
        return [*self._gauges(), *self._trades(), self._resyncs()]

    def _gauges(self) -> list[Metric]:
        result = families(self.NAMES[:8])
        last_price, *tickers, updated = result
        last_price_name, updated_name = last_price.name, updated.name
        ticker_families = [(metric.samples, metric.name) for metric in tickers]
        last_price_samples, updated_samples = last_price.samples, updated.samples
        for state in list(self.markets.markets.values()):
            labels = state.labels
            if state.last_price is not None:
                last_price_samples.append(Sample(last_price_name, labels, state.last_price))
            ticker = state.ticker
            if ticker is not None:  # a market first seen on another channel has none yet
                values = (ticker.open, ticker.high, ticker.low, ticker.base_volume,
                          ticker.quote_volume, ticker.change_ratio)
                for (samples, name), value in zip(ticker_families, values, strict=True):
                    samples.append(Sample(name, labels, value))
            channel_labels = state.channel_labels
            for channel, value in list(state.updated.items()):
                updated_samples.append(Sample(updated_name, channel_labels[channel], value))
        return result

    def _trades(self) -> list[Metric]:
        result = families(_TRADES)
        trades, base, quote = result
        for totals_by_side in list(self.markets.trade_totals.values()):
            for totals in list(totals_by_side.values()):
                add_counter(trades, totals.labels, totals.count, totals.created)
                add_counter(base, totals.labels, totals.base, totals.created)
                add_counter(quote, totals.labels, totals.quote, totals.created)
        return result

    def _resyncs(self) -> Metric:
        (result,) = families(("orderbook_resyncs_total",))
        for by_reason in list(self.markets.resync_totals.values()):
            for series in by_reason.values():
                add_series(result, series)
        return result
