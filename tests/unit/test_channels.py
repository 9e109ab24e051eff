"""The channel table: subscription params, and the recipe for adding a channel.

``test_a_new_channel_*`` follow docs/ARCHITECTURE.md's recipe with a fake channel,
``markprice``: one table entry, plus the parts this module defines (its parser, its
apply function, its state, its metric row and its collector). Nothing else in the
exporter is changed, yet its frames are dispatched, counted under their own method,
applied, stamped and exposed.
"""

from __future__ import annotations

from typing import NamedTuple

import orjson
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from exporter import channels, collectors, protocol
from exporter.frames import FrameHandler
from exporter.metrics import GAUGE, MARKET, SPECS, MetricSpec
from exporter.state import market
from exporter.state.model import State

NOW = 1_750_953_400.0
SELECTED = channels.Selection(("BTC_USDT", "ETH_USDT"), 2, frozenset())


@pytest.mark.parametrize(("channel", "selection", "expected"), [
    ("trade", channels.Selection(None, 0, frozenset()), ["all"]),
    ("depth", channels.Selection(None, 0, frozenset()), ["all"]),
    ("depth", SELECTED, ["BTC_USDT:2", "ETH_USDT:2"]),
    ("depth", channels.Selection(None, 1, frozenset({"B_USDT", "A_USDT"})),
     ["A_USDT:1", "B_USDT:1"]),
    ("lastprice", channels.Selection(("BTC_USDT",), 0, frozenset()), ["BTC_USDT"]),
    ("balance", SELECTED, ["all"]),
    ("order", SELECTED, ["BTC_USDT", "ETH_USDT"]),
])
def test_subscription_params(channel, selection, expected):
    assert channels.by_name()[channel].params(selection) == expected


def test_depth_with_a_scale_needs_explicit_markets_or_the_market_list():
    with pytest.raises(ValueError, match="explicit markets"):
        channels.by_name()["depth"].params(channels.Selection(None, 1, frozenset()))


def test_problems_names_every_mistake():
    lastprice = channels.by_name()["lastprice"]
    broken = channels.Channel("twin", False, "lastprice_update", channels.market_params,
                              protocol.parse_lastprice, market.apply_lastprice, ("no_such",),
                              new_state=dict)
    assert channels.problems((lastprice, broken), SPECS) == [
        "update method 'lastprice_update' appears twice",
        "twin: metric 'no_such' is not in the metrics table",
        "twin: a state of its own needs a collector, and back",
    ]


# --- the recipe, followed with a fake channel ---------------------------------------------


class MarkPrice(NamedTuple):
    symbol: str
    price: float


def parse_markprice(data: dict) -> MarkPrice:  # its parser (would live in protocol.py)
    symbol, price = data.get("symbol"), data.get("price")
    if type(symbol) is not str or type(price) is not str:
        raise protocol.ProtocolError(protocol.BAD_FIELD, "markprice without symbol or price")
    return MarkPrice(symbol, float(price))


def apply_markprice(state: State, event: MarkPrice, now: float, resubscribe) -> None:
    market_state = market.market(state.markets, event.symbol, now)  # same market bounds
    state.extra["markprice"][market_state.symbol] = event.price
    market_state.updated["markprice"] = now


MARK_PRICE = MetricSpec("mark_price", GAUGE, "Mark price, in quote currency.", ("market",),
                        MARKET)


class MarkPriceCollector:
    def __init__(self, state: State) -> None:
        self.prices: dict[str, float] = state.extra["markprice"]

    def collect(self):
        family = GaugeMetricFamily(MARK_PRICE.full_name, MARK_PRICE.help, labels=["market"])
        for symbol, price in list(self.prices.items()):
            family.add_metric([symbol], price)
        return [family]


MARKPRICE = channels.Channel(
    "markprice", False, "markprice_update", channels.market_params, parse_markprice,
    apply_markprice, ("mark_price", "market_last_update_timestamp_seconds"),
    market_updates=True, new_state=dict, collector=MarkPriceCollector)
TABLE = (*channels.CHANNELS, MARKPRICE)


class Exporter:
    """The exporter's write and read sides, built from TABLE exactly as app.py does."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.state = channels.new_state(TABLE, now=NOW)
        collectors.register(self.registry, self.state, version="test", table=TABLE,
                            process=False)
        self.resyncs: list[str] = []
        self.frames = FrameHandler(self.state, on_reply=lambda reply: None,
                                   on_resync=lambda channel, market: self.resyncs.append(channel),
                                   table=TABLE, clock=lambda: NOW)

    def send(self, method: str, data: dict) -> None:
        self.frames.handle(orjson.dumps({"id": 0, "method": method, "data": data, "error": None}))

    def value(self, name: str, **labels) -> float | None:
        return self.registry.get_sample_value(f"cryptomus_{name}", labels)


def test_a_new_channel_is_dispatched_applied_counted_and_exposed():
    exporter = Exporter()
    exporter.send("markprice_update", {"symbol": "BTC_USDT", "price": "101.5"})
    exporter.send("markprice_update", {"symbol": "BTC_USDT", "price": "102"})
    assert exporter.value("mark_price", market="BTC_USDT") == 102
    assert exporter.value("market_last_update_timestamp_seconds", market="BTC_USDT",
                          channel="markprice") == NOW
    assert exporter.value("websocket_messages_total", method="markprice_update") == 2
    assert exporter.value("websocket_messages_total", method="other") is None
    assert exporter.value("websocket_message_errors_total", reason="unknown_method") == 0
    # The channels of the table still work beside it.
    exporter.send("lastprice_update", {"symbol": "BTC_USDT", "timestamp": 1, "price": "100"})
    assert exporter.value("last_price", market="BTC_USDT") == 100


def test_a_new_channels_bad_frames_are_counted_and_skipped():
    exporter = Exporter()
    exporter.send("markprice_update", {"symbol": "BTC_USDT"})
    assert exporter.value("websocket_message_errors_total", reason="bad_field") == 1
    assert exporter.value("mark_price", market="BTC_USDT") is None


def test_a_new_channel_is_subscribed_and_checked_like_the_others():
    assert channels.problems(TABLE, (*SPECS, MARK_PRICE)) == []
    assert channels.problems(TABLE, SPECS) == [
        "markprice: metric 'mark_price' is not in the metrics table"]
    assert channels.by_name(TABLE)["markprice"].params(SELECTED) == ["BTC_USDT", "ETH_USDT"]
    labels = channels.message_labels(TABLE)
    assert {"markprice_update", "markprice_subscribe", "markprice_unsubscribe"} <= labels
    state = channels.new_state(TABLE, subscribed=("markprice",), now=NOW)
    assert state.link.subscriptions == {"markprice": 0.0}
