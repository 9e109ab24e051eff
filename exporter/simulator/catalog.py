"""What the exchange lists: its markets (REST market list and depth scales) and
currencies, and so what a client may subscribe to."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .config import SYMBOL_PATTERN
from .market import SCALE_COUNT, MarketSpec

CURRENCY_PATTERN = re.compile(r"^[A-Z0-9]{1,12}$")


class Catalog:
    """Markets by symbol, in listing order, and the currencies they trade.
    ``lenient`` accepts subscriptions to any well-formed market or currency name
    (a replayed recording knows only the markets that had traffic)."""

    def __init__(
        self,
        specs: Iterable[MarketSpec],
        extra_currencies: Iterable[str] = (),
        *,
        lenient: bool = False,
    ) -> None:
        self.specs = {spec.symbol: spec for spec in specs}
        self.symbols = list(self.specs)
        codes = {code for spec in self.specs.values() for code in (spec.base, spec.quote)}
        self.currencies = sorted(codes.union(extra_currencies))
        self._currency_set = frozenset(self.currencies)
        self._lenient = lenient

    def has_market(self, symbol: str) -> bool:
        return symbol in self.specs or (self._lenient and bool(SYMBOL_PATTERN.match(symbol)))

    def has_currency(self, code: str) -> bool:
        return code in self._currency_set or (
            self._lenient and bool(CURRENCY_PATTERN.match(code))
        )

    @staticmethod
    def has_scale(index: int) -> bool:
        return 0 <= index < SCALE_COUNT

    def rest_markets(self) -> list[dict]:
        return [spec.rest_entry() for spec in self.specs.values()]

    def scales(self, symbol: str) -> list[dict] | None:
        spec = self.specs.get(symbol)
        return None if spec is None else spec.scales()
