"""The simulated exchange state and its deterministic event generator (pure, no I/O)."""

from __future__ import annotations

import random

from .account import Account, Trader
from .catalog import Catalog
from .config import SimulatorConfig
from .market import Event, Market, build_specs

# Cumulative probabilities of what one generator step does.
DEPTH_STEP, TRADE_STEP, TICKER_STEP, LASTPRICE_STEP = 0.45, 0.70, 0.82, 0.88


class World:
    """Markets, books and the account, all driven by one seeded random generator,
    so the sequence of events is a function of (seed, config) only."""

    def __init__(self, config: SimulatorConfig, timestamp: int) -> None:
        self.rng = random.Random(config.seed)
        specs = build_specs(config.markets, self.rng)
        self.markets = {spec.symbol: Market(spec, self.rng, config.depth_levels) for spec in specs}
        self.symbols = list(self.markets)
        self.catalog = Catalog(specs)
        self.currencies = self.catalog.currencies
        self.account = Account()
        self.trader = Trader(self.account, self.markets, self.rng, timestamp)

    def depth_events(self, market: Market, timestamp: int) -> list[Event]:
        return [
            Event("depth", (market.spec.symbol, index), data)
            for index, data in market.drain_depth(timestamp)
        ]

    def step(self, timestamp: int) -> list[Event]:
        rng = self.rng
        market = self.markets[self.symbols[rng.randrange(len(self.symbols))]]
        symbol = market.spec.symbol
        roll = rng.random()
        if roll < DEPTH_STEP:
            market.random_depth_change(rng)
            return self.depth_events(market, timestamp)
        if roll < TRADE_STEP:
            trade = Event("trade", symbol, market.trade(rng, timestamp))
            return [
                trade,
                *self.depth_events(market, timestamp),
                Event("lastprice", symbol, market.lastprice(timestamp)),
            ]
        if roll < TICKER_STEP:
            return [Event("ticker", symbol, market.ticker(timestamp))]
        if roll < LASTPRICE_STEP:
            return [Event("lastprice", symbol, market.lastprice(timestamp))]
        return self.trader.step(timestamp)
