"""Which markets to subscribe for depth: each market's scale list, checked at connect.

``CRYPTOMUS_SCALES_API_URL`` serves each market's depth scales. Before depth is
subscribed (the first connect, and every reconnect), ``DepthScales.markets`` makes
sure the configured ``CRYPTOMUS_DEPTH_SCALE`` exists for every market to subscribe:
a market whose list lacks it is not subscribed (one WARNING line naming it and the
scales it has, the first time; ``orderbook_scale_missing{market}`` is 1). A scale
list fetched once is kept for the exporter's life; only markets whose fetch failed
are fetched again at the next connect, and meanwhile they are subscribed unchecked
(a REST failure must not cost the user a book the exchange may well serve). The
decisions are the pure ``scales.plan_depth``; this module does the I/O around it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Protocol

from .scales import MAX_LINES_PER_KIND, depth_markets, plan_depth
from .state import market as market_records
from .state.model import MarketData

log = logging.getLogger(__name__)


class FetchesScales(Protocol):
    """What is needed of rest.RestClient."""

    def scales_of(self, symbols: Sequence[str]) -> dict[str, dict[int, float] | Exception]: ...


class DepthScales:
    def __init__(self, rest: FetchesScales, markets: MarketData, *,
                 configured: tuple[str, ...] | None, scale: int, max_markets: int) -> None:
        self.rest = rest
        self.data = markets
        self.configured = configured
        self.scale = scale
        self.max_markets = max_markets
        self._fetched: dict[str, dict[int, float]] = {}  # successes only, kept
        self._logged: set[str] = set()  # lines already logged (each problem once)

    def markets(self, known_markets: Collection[str]) -> tuple[str, ...] | None:
        """The markets to subscribe depth for, as ``MARKET:scale``; None: ``["all"]``."""
        wanted = depth_markets(self.configured, self.scale, known_markets, self.max_markets)
        if wanted is None:
            return None
        to_fetch = [market for market in wanted if market not in self._fetched]
        errors: dict[str, Exception] = {}
        if to_fetch:
            for market, result in self.rest.scales_of(to_fetch).items():
                if isinstance(result, Exception):
                    errors[market] = result
                else:
                    self._fetched[market] = result
        plan = plan_depth(wanted, self.scale, {**self._fetched, **errors}, MAX_LINES_PER_KIND)
        for line in plan.log_lines:
            if line not in self._logged and len(self._logged) < 4 * self.max_markets:
                self._logged.add(line)
                log.warning("%s", line)
        market_records.scales_checked(
            self.data, present=[m for m in plan.subscribe if m in self._fetched],
            missing=[market for market, _ in plan.missing])
        return plan.subscribe
