"""Pure market model: market specs, order books, 24 h statistics, generated events.

Prices are integer ticks (10**-price_decimals) and quantities integer units
(10**-qty_decimals), so books, volumes and aggregated depth views are exact and
the text on the wire is formatted without float rounding. No I/O here.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from .wire import fixed, level_quantity, plain_decimal

BID, ASK = 0, 1
SCALE_COUNT = 4  # scale index k aggregates levels to 10**k ticks

# name, reference price in USD
KNOWN_ASSETS: dict[str, tuple[str, float]] = {
    "BTC": ("Bitcoin", 107000.0),
    "ETH": ("Ethereum", 2450.0),
    "TRX": ("TRON", 0.27),
    "USDT": ("Tether USD", 1.0),
    "USDC": ("USD Coin", 1.0),
    "SOL": ("Solana", 145.0),
    "XRP": ("XRP", 2.2),
    "DOGE": ("Dogecoin", 0.17),
    "LTC": ("Litecoin", 86.0),
    "BNB": ("BNB", 645.0),
    "ADA": ("Cardano", 0.58),
    "TON": ("Toncoin", 2.9),
    "AVAX": ("Avalanche", 18.0),
    "DOT": ("Polkadot", 3.4),
    "LINK": ("Chainlink", 13.2),
    "BCH": ("Bitcoin Cash", 480.0),
    "XLM": ("Stellar", 0.24),
    "ATOM": ("Cosmos", 4.1),
    "NEAR": ("NEAR Protocol", 2.2),
    "SHIB": ("Shiba Inu", 0.0000115),
    "UNI": ("Uniswap", 7.2),
    "ETC": ("Ethereum Classic", 16.5),
    "XMR": ("Monero", 320.0),
    "DAI": ("Dai", 1.0),
    "POL": ("Polygon", 0.19),
    "APT": ("Aptos", 4.6),
    "ARB": ("Arbitrum", 0.33),
    "OP": ("Optimism", 0.55),
    "FIL": ("Filecoin", 2.3),
    "DASH": ("Dash", 20.0),
    "ZEC": ("Zcash", 40.0),
}
FIRST_MARKETS = ("BTC_USDT", "ETH_USDT", "TRX_USDT")
QUOTES_BY_PREFERENCE = ("USDT", "USDC", "BTC")


class Event(NamedTuple):
    """One generated update: routed by (channel, key); key is a symbol, a
    currency code, or (symbol, scale_index) for depth."""

    channel: str
    key: object
    data: dict


@dataclass(frozen=True)
class MarketSpec:
    market_id: str
    symbol: str
    base: str
    quote: str
    base_name: str
    quote_name: str
    base_usd: float
    quote_usd: float
    price_decimals: int
    qty_decimals: int

    @property
    def price(self) -> float:
        return self.base_usd / self.quote_usd

    def scale_ticks(self, index: int) -> int:
        return 10**index

    def scale_text(self, index: int) -> str:
        return plain_decimal(Decimal(10**index).scaleb(-self.price_decimals))

    def rest_entry(self) -> dict:
        qty_step = fixed(1, self.qty_decimals)
        return {
            "id": self.market_id,
            "symbol": self.symbol,
            "baseCurrency": self.base,
            "quoteCurrency": self.quote,
            "baseMinSize": qty_step,
            "quoteMinSize": "1" if self.quote_usd <= 10 else fixed(1, 4),
            "baseMaxSize": "10000000000",
            "quoteMaxSize": "99999999999",
            "basePrec": str(self.qty_decimals),
            "quotePrec": str(self.price_decimals),
            "baseCurrencyFullName": self.base_name,
            "quoteCurrencyFullName": self.quote_name,
        }

    def scales(self) -> list[dict]:
        return [{"scale": self.scale_text(i), "index": i} for i in range(SCALE_COUNT)]


def _decimals_for(price: float) -> tuple[int, int]:
    magnitude = math.floor(math.log10(price))
    price_decimals = min(8, max(2, 5 - magnitude))
    qty_decimals = min(8, max(0, magnitude + 1))
    return price_decimals, qty_decimals


def _default_symbols(count: int) -> list[str]:
    symbols = list(FIRST_MARKETS)
    bases = [asset for asset in KNOWN_ASSETS if asset not in ("USDT", "USDC", "DAI")]
    for quote in QUOTES_BY_PREFERENCE:
        symbols += [f"{b}_{quote}" for b in bases if b != quote and f"{b}_{quote}" not in symbols]
    number = 1
    while len(symbols) < count:
        symbols.append(f"SYN{number:04d}_USDT")
        number += 1
    return symbols[:count]


def build_specs(markets: int | list[str], rng: random.Random) -> list[MarketSpec]:
    symbols = _default_symbols(markets) if isinstance(markets, int) else list(markets)
    invented: dict[str, float] = {}

    def usd(asset: str) -> tuple[str, float]:
        if asset in KNOWN_ASSETS:
            return KNOWN_ASSETS[asset]
        if asset not in invented:
            invented[asset] = 10 ** rng.uniform(-3, 3.5)
        return asset.title(), invented[asset]

    specs = []
    for symbol in symbols:
        base, quote = symbol.split("_")
        (base_name, base_usd), (quote_name, quote_usd) = usd(base), usd(quote)
        price_decimals, qty_decimals = _decimals_for(base_usd / quote_usd)
        specs.append(
            MarketSpec(
                market_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                symbol=symbol,
                base=base,
                quote=quote,
                base_name=base_name,
                quote_name=quote_name,
                base_usd=base_usd,
                quote_usd=quote_usd,
                price_decimals=price_decimals,
                qty_decimals=qty_decimals,
            )
        )
    return specs


def _bucket(tick: int, size: int, side: int) -> int:
    """Aggregated level price: bids round down, asks round up, so a book that is
    not crossed at scale 0 is not crossed at any coarser scale either."""
    if side == BID:
        return tick // size * size
    return -(-tick // size) * size


class Market:
    """One market's book (scale 0 plus aggregated views) and 24 h statistics."""

    def __init__(self, spec: MarketSpec, rng: random.Random, depth_levels: int) -> None:
        self.spec = spec
        self.depth_levels = depth_levels
        self.books: tuple[dict[int, int], dict[int, int]] = ({}, {})
        self.views: dict[int, tuple[dict[int, int], dict[int, int]]] = {}
        # scale index -> per side {price: [quantity before, quantity now]}
        self._changes: dict[int, tuple[dict[int, list[int]], dict[int, list[int]]]] = {}
        mid = max(4, round(spec.price * 10**spec.price_decimals))
        self.anchor = mid
        self.gap = max(1, round(mid * 0.005 / depth_levels))
        self.lot = max(1, round(5000 / spec.base_usd * 10**spec.qty_decimals))
        half = max(1, self.gap // 2)
        bid, ask = mid - half, mid + half
        for _ in range(depth_levels):
            if bid >= 1:
                self.books[BID][bid] = self.level_qty(rng)
            self.books[ASK][ask] = self.level_qty(rng)
            bid -= rng.randint(1, 2 * self.gap)
            ask += rng.randint(1, 2 * self.gap)
        self.last = mid
        self.open = max(1, round(mid * (1 + rng.uniform(-0.02, 0.02))))
        self.high = max(self.open, mid) + round(mid * rng.uniform(0.002, 0.02))
        self.low = max(1, min(self.open, mid) - round(mid * rng.uniform(0.002, 0.02)))
        self.base_volume = self.lot * rng.randint(100, 2000)
        self.quote_volume = self.base_volume * mid

    # --- book ---------------------------------------------------------------

    def level_qty(self, rng: random.Random) -> int:
        return max(1, round(self.lot * rng.uniform(0.05, 2.0)))

    def best_bid(self) -> int:
        return max(self.books[BID])

    def best_ask(self) -> int:
        return min(self.books[ASK])

    def set_level(self, side: int, tick: int, qty: int) -> None:
        """Set one scale-0 level (0 removes it) and record the change for every
        active scale, to be sent by the next :meth:`drain_depth`."""
        book = self.books[side]
        old = book.get(tick, 0)
        if qty == old:
            return
        if qty:
            book[tick] = qty
        else:
            del book[tick]
        self._record(0, side, tick, old, qty)
        for index, view in self.views.items():
            bucket = _bucket(tick, self.spec.scale_ticks(index), side)
            before = view[side].get(bucket, 0)
            total = before + qty - old
            if total:
                view[side][bucket] = total
            else:
                view[side].pop(bucket, None)
            self._record(index, side, bucket, before, total)

    def _record(self, index: int, side: int, price: int, before: int, after: int) -> None:
        """Remember a level's quantity before the first change since the last
        drain, so that a level added and removed again in one step sends nothing."""
        changes = self._changes.setdefault(index, ({}, {}))[side]
        if price in changes:
            changes[price][1] = after
        else:
            changes[price] = [before, after]

    def activate_scale(self, index: int) -> None:
        """Start maintaining the aggregated view for a scale index (> 0)."""
        if index == 0 or index in self.views:
            return
        size = self.spec.scale_ticks(index)
        view: tuple[dict[int, int], dict[int, int]] = ({}, {})
        for side in (BID, ASK):
            for tick, qty in self.books[side].items():
                bucket = _bucket(tick, size, side)
                view[side][bucket] = view[side].get(bucket, 0) + qty
        self.views[index] = view

    def _book_at(self, index: int) -> tuple[dict[int, int], dict[int, int]]:
        return self.views[index] if index else self.books

    def _levels(self, levels: dict[int, int] | list[tuple[int, int]]) -> list[list[str]]:
        items = levels.items() if isinstance(levels, dict) else levels
        pd, qd = self.spec.price_decimals, self.spec.qty_decimals
        return [[fixed(tick, pd), level_quantity(qty, qd)] for tick, qty in items]

    def depth_data(
        self, index: int, timestamp: int, full_reload: bool, bids: object, asks: object
    ) -> dict:
        return {
            "symbol": self.spec.symbol,
            "timestamp": timestamp,
            "full_reload": full_reload,
            "scale_index": index,
            "asks": self._levels(asks),
            "bids": self._levels(bids),
        }

    def full_reload(self, index: int, timestamp: int) -> dict:
        bids, asks = self._book_at(index)
        top_bids = sorted(bids.items(), reverse=True)[: self.depth_levels]
        top_asks = sorted(asks.items())[: self.depth_levels]
        return self.depth_data(index, timestamp, True, top_bids, top_asks)

    def drain_depth(self, timestamp: int) -> list[tuple[int, dict]]:
        """Partial updates (one per changed scale) since the previous drain."""
        changes, self._changes = self._changes, {}
        updates = []
        for index, sides in changes.items():
            bids, asks = (
                [(price, now) for price, (before, now) in side.items() if before != now]
                for side in sides
            )
            if bids or asks:
                updates.append((index, self.depth_data(index, timestamp, False, bids, asks)))
        return updates

    def crossing_update(self, index: int, timestamp: int) -> dict:
        """A partial update that puts a bid at the best ask: a crossed book."""
        _, asks = self._book_at(index)
        return self.depth_data(index, timestamp, False, [(min(asks), self.lot)], [])

    def touch_update(self, index: int, timestamp: int) -> dict:
        """A plausible partial update of the best ask (sent before any reload by a fault)."""
        _, asks = self._book_at(index)
        best = min(asks)
        return self.depth_data(index, timestamp, False, [], [(best, asks[best])])

    def random_depth_change(self, rng: random.Random) -> None:
        roll = rng.random()
        if roll < 0.3:
            self._shift(rng)
        elif roll < 0.65:
            side = rng.randrange(2)
            self.set_level(side, rng.choice(list(self.books[side])), self.level_qty(rng))
        elif roll < 0.85:
            span = self.gap * self.depth_levels
            if rng.randrange(2) == BID:
                tick = self.best_ask() - 1 - rng.randint(0, span)
                if tick >= 1:
                    self.set_level(BID, tick, self.level_qty(rng))
            else:
                self.set_level(ASK, self.best_bid() + 1 + rng.randint(0, span), self.level_qty(rng))
        else:
            side = rng.randrange(2)
            book = self.books[side]
            tick = rng.choice(list(book))
            best = self.best_bid() if side == BID else self.best_ask()
            if len(book) > 3 and tick != best:
                self.set_level(side, tick, 0)
        self._maintain(rng)

    def _shift(self, rng: random.Random) -> None:
        """Random walk of the touch, pulled back towards the anchor price."""
        bid, ask = self.best_bid(), self.best_ask()
        drift = ((bid + ask) / 2 - self.anchor) / self.anchor
        up = rng.random() < 0.5 - max(-0.4, min(0.4, drift * 20))
        step = rng.randint(1, 3) * self.gap
        if up:
            new_bid = bid + step
            for tick in [t for t in self.books[ASK] if t <= new_bid]:
                self.set_level(ASK, tick, 0)
            self.set_level(BID, new_bid, self.level_qty(rng))
        elif ask - step >= 1:
            new_ask = ask - step
            for tick in [t for t in self.books[BID] if t >= new_ask]:
                self.set_level(BID, tick, 0)
            self.set_level(ASK, new_ask, self.level_qty(rng))

    def _maintain(self, rng: random.Random) -> None:
        """Keep both sides non-empty and at most ``depth_levels`` deep."""
        bids, asks = self.books
        if not asks:
            self.set_level(ASK, self.best_bid() + self.gap, self.level_qty(rng))
        if not bids:
            self.set_level(BID, max(1, self.best_ask() - self.gap), self.level_qty(rng))
        for side, book in ((BID, bids), (ASK, asks)):
            while len(book) > self.depth_levels:
                self.set_level(side, min(book) if side == BID else max(book), 0)
            for _ in range(3):
                if len(book) >= self.depth_levels:
                    break
                if side == BID:
                    tick = min(book) - rng.randint(1, 2 * self.gap)
                    if tick < 1:
                        break
                else:
                    tick = max(book) + rng.randint(1, 2 * self.gap)
                self.set_level(side, tick, self.level_qty(rng))

    # --- trades and statistics ---------------------------------------------

    def trade(self, rng: random.Random, timestamp: int) -> dict:
        """Takers hit the book at its own prices, best level first."""
        direction = "buy" if rng.random() < 0.5 else "sell"
        side = ASK if direction == "buy" else BID
        book = self.books[side]
        price_scale, qty_scale = 10**self.spec.price_decimals, 10**self.spec.qty_decimals
        trades = []
        for _ in range(rng.randint(1, 3)):
            best = min(book) if side == ASK else max(book)
            available = book[best]
            sweep = rng.random() < 0.35 or available == 1
            qty = available if sweep else rng.randint(1, max(1, available // 3))
            self.set_level(side, best, available - qty)
            self._record_trade(best, qty)
            trades.append(
                {
                    "price": best / price_scale,
                    "quantity": qty / qty_scale,
                    "timestamp": timestamp,
                    "direction": direction,
                }
            )
            if qty < available or len(book) < 2:
                break
        self._maintain(rng)
        return {"symbol": self.spec.symbol, "timestamp": timestamp, "trades": trades}

    def _record_trade(self, tick: int, qty: int) -> None:
        self.last = tick
        self.high = max(self.high, tick)
        self.low = min(self.low, tick)
        self.base_volume += qty
        self.quote_volume += tick * qty

    def lastprice(self, timestamp: int) -> dict:
        return {
            "symbol": self.spec.symbol,
            "timestamp": timestamp,
            "price": fixed(self.last, self.spec.price_decimals),
        }

    def ticker(self, timestamp: int) -> dict:
        pd, qd = self.spec.price_decimals, self.spec.qty_decimals
        change = (self.last - self.open) / self.open * 100
        return {
            "symbol": self.spec.symbol,
            "timestamp": timestamp,
            "price": fixed(self.last, pd),
            "open": fixed(self.open, pd),
            "high": fixed(self.high, pd),
            "low": fixed(self.low, pd),
            "volume": fixed(self.base_volume, qd),
            "quote_volume": fixed(self.quote_volume, pd + qd),
            "price_change": f"{change:.2f}",
        }
