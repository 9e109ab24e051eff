"""Assertions and probes shared by the fault and reconnect tests (real HTTP, real sims)."""

from __future__ import annotations

import itertools

import requests

from exporter.session import CONNECT_STAGES, DISCONNECT_REASONS
from tests.support import wait_for

_SENTINEL_PRICES = itertools.count(1)


def probe(harness, path: str) -> int:
    """Status code of the exporter's /healthz or /readyz, over real HTTP."""
    url = f"http://127.0.0.1:{harness.exporter.http_port}{path}"
    return requests.get(url, timeout=5).status_code


def push_sentinel(harness, market: str = "BTC_USDT") -> float:
    """Push a lastprice with a fresh price and wait until the exporter shows it: every
    frame the simulator queued before it on the connection has been processed."""
    price = 1_000_000.0 + next(_SENTINEL_PRICES)
    wait_for(lambda: harness.sim.push("lastprice", {"symbol": market, "timestamp": 1,
                                                    "price": f"{price:.1f}"}),
             what="an open connection subscribed to lastprice")
    harness.wait_value("last_price", price, market=market)
    return price


def labelled(harness, name: str, label: str, values) -> dict[str, float]:
    return {value: harness.value(name, **{label: value}) or 0.0 for value in values}


def disconnects(harness) -> dict[str, float]:
    return labelled(harness, "websocket_disconnects_total", "reason", DISCONNECT_REASONS)


def connect_failures(harness) -> dict[str, float]:
    return labelled(harness, "websocket_connect_failures_total", "stage", CONNECT_STAGES)


def assert_one_token_per_attempt(harness) -> None:
    """Every connection attempt past the token stage used one fresh token, and every
    failed token call is one attempt: the exporter never reuses or wastes a token.
    Call it while connected (no attempt in flight)."""
    stats = harness.sim.stats
    failures = connect_failures(harness)
    attempts_with_token = (harness.value("websocket_connects_total") + failures["connect"]
                           + failures["subscribe"])
    assert stats.tokens_issued == attempts_with_token
    assert stats.token_failures == failures["token"]
    assert len(set(harness.sim.tokens_seen)) == len(harness.sim.tokens_seen)


def sim_top_of_book(sim, symbol: str) -> tuple[float, float]:
    """The simulator's own best bid and ask (scale 0), in price units."""
    market = sim.market(symbol)
    scale = 10 ** market.spec.price_decimals
    return market.best_bid() / scale, market.best_ask() / scale
