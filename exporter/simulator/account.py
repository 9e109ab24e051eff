"""The simulated account: REST view (balances, open orders) and the generator of
its private stream (orders, fills, balance changes), kept consistent with each other.

Balance events report the *available* balance: ``newBalance`` of the last
``balance_update`` of a currency equals that currency's REST ``available``.
Holds for open orders move funds between available and ``held`` (REST only).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal

from .market import Event, Market, MarketSpec
from .wire import decimal_text, ulid

AMOUNT_STEP = Decimal("0.00000001")
ORDER_DECIMALS = 16  # order, deal and balance amounts as in the spec examples
NEW_BALANCE_DECIMALS = 8  # the spec's newBalance example has 8 decimals
MAKER_FEE = Decimal("0.001")
TAKER_FEE = Decimal("0.002")
MAX_OPEN_ORDERS = 25
START_BALANCE_USD = 25000
STABLECOINS = frozenset({"USDT", "USDC", "DAI"})
STABLE_START_BALANCE = Decimal(100000)


def amount(value: Decimal) -> str:
    return decimal_text(value, ORDER_DECIMALS)


class Account:
    """Balances and open orders as the signed REST calls report them."""

    def __init__(self) -> None:
        self._balances: dict[str, tuple[Decimal, Decimal]] = {}
        self._orders: dict[str, dict] = {}

    def set_balance(
        self, ticker: str, available: str | Decimal | int, held: str | Decimal | int = "0"
    ) -> None:
        self._balances[ticker] = (Decimal(available), Decimal(held))

    def balance(self, ticker: str) -> tuple[Decimal, Decimal]:
        return self._balances.get(ticker, (Decimal(0), Decimal(0)))

    def balances(self) -> list[dict]:
        return [
            {"ticker": ticker, "available": format(available, "f"), "held": format(held, "f")}
            for ticker, (available, held) in self._balances.items()
        ]

    def add_open_order(self, order: Mapping) -> None:
        """Add or replace (same ``id``) an open order; fields are served as given."""
        if not isinstance(order.get("id"), str):
            raise ValueError("an open order needs a string 'id'")
        self._orders[order["id"]] = dict(order)

    def remove_open_order(self, order_id: str) -> bool:
        return self._orders.pop(order_id, None) is not None

    def open_orders(self) -> list[dict]:
        return [dict(order) for order in self._orders.values()]

    def clear(self) -> None:
        self._balances.clear()
        self._orders.clear()


@dataclass
class _Order:
    order_id: str
    spec: MarketSpec
    direction: str
    price: Decimal
    quantity: Decimal
    value: Decimal
    client_oid: str | None
    create_ts: int
    filled_quantity: Decimal = Decimal(0)
    filled_value: Decimal = Decimal(0)

    def info(self) -> dict:
        return {
            "id": self.order_id,
            "symbol": self.spec.symbol,
            "orderType": "limit",
            "direction": self.direction,
            "price": amount(self.price),
            "quantity": amount(self.quantity),
            "value": amount(self.value),
            "filledQuantity": amount(self.filled_quantity),
            "filledValue": amount(self.filled_value),
            "clientOid": self.client_oid,
            "createTs": self.create_ts,
        }

    @property
    def held_currency(self) -> str:
        return self.spec.quote if self.direction == "buy" else self.spec.base


class Trader:
    """Generates the account's activity against the simulated books."""

    def __init__(
        self, account: Account, markets: dict[str, Market], rng: random.Random, timestamp: int
    ) -> None:
        self.account = account
        self.markets = markets
        self.symbols = list(markets)
        self.rng = rng
        self._resting: dict[str, _Order] = {}
        self._client_seq = 0
        currencies: dict[str, float] = {}
        for market in markets.values():
            currencies[market.spec.base] = market.spec.base_usd
            currencies[market.spec.quote] = market.spec.quote_usd
        self.wallets = {code: ulid(rng, timestamp) for code in sorted(currencies)}
        for code, usd in currencies.items():
            start = (
                STABLE_START_BALANCE
                if code in STABLECOINS
                else Decimal(START_BALANCE_USD) / Decimal(usd)
            )
            account.set_balance(code, start.quantize(AMOUNT_STEP), Decimal(0).quantize(AMOUNT_STEP))

    def step(self, timestamp: int) -> list[Event]:
        if self._resting and (len(self._resting) >= MAX_OPEN_ORDERS or self.rng.random() < 0.5):
            order = self._resting[self.rng.choice(list(self._resting))]
            if self.rng.random() < 0.7:
                return self._fill(order, "maker", self._part(order), timestamp)
            return self._cancel(order, timestamp)
        return self._create(timestamp)

    # --- balances -------------------------------------------------------------

    def _move_available(self, code: str, delta: Decimal, timestamp: int) -> Event:
        available, held = self.account.balance(code)
        new = available + delta
        self.account.set_balance(code, new, held)
        info = {
            "walletId": self.wallets[code],
            "currencyCode": code,
            "amount": amount(abs(delta)),
            "oldBalance": amount(available),
            "newBalance": decimal_text(new, NEW_BALANCE_DECIMALS),
        }
        return Event("balance", code, {"info": info})

    def _move_held(self, code: str, delta: Decimal) -> None:
        available, held = self.account.balance(code)
        self.account.set_balance(code, available, held + delta)

    # --- orders ---------------------------------------------------------------

    def _order_event(self, order: _Order, kind: str, **extra: object) -> Event:
        return Event("order", order.spec.symbol, {"type": kind, "info": {**order.info(), **extra}})

    def _create(self, timestamp: int) -> list[Event]:
        rng = self.rng
        market = self.markets[rng.choice(self.symbols)]
        spec = market.spec
        direction = "buy" if rng.random() < 0.5 else "sell"
        aggressive = rng.random() < 0.3
        bid, ask = market.best_bid(), market.best_ask()
        if aggressive:
            tick = ask if direction == "buy" else bid
        else:
            offset = rng.randint(1, 5) * market.gap
            tick = bid - offset if direction == "buy" else ask + offset
            if tick < 1:
                return []
        units = max(1, int(rng.uniform(20, 500) / spec.base_usd * 10**spec.qty_decimals))
        price = Decimal(tick).scaleb(-spec.price_decimals)
        quantity = Decimal(units).scaleb(-spec.qty_decimals)
        value = (price * quantity).quantize(AMOUNT_STEP, ROUND_UP)
        self._client_seq += 1
        order = _Order(
            order_id=ulid(rng, timestamp),
            spec=spec,
            direction=direction,
            price=price,
            quantity=quantity,
            value=value,
            client_oid=f"sim-{self._client_seq}" if rng.random() < 0.5 else None,
            create_ts=timestamp,
        )
        hold = value if direction == "buy" else quantity
        if self.account.balance(order.held_currency)[0] < hold:
            return []
        events = [
            self._order_event(order, "created"),
            self._move_available(order.held_currency, -hold, timestamp),
        ]
        self._move_held(order.held_currency, hold)
        self.account.add_open_order(order.info())
        if not aggressive:
            self._resting[order.order_id] = order
            return events
        first = self._part(order)
        events += self._fill(order, "taker", first, timestamp)
        if first is not None:
            events += self._fill(order, "taker", None, timestamp)
        return events

    def _part(self, order: _Order) -> Decimal | None:
        """A partial fill quantity, or None to fill everything that remains."""
        step = Decimal(1).scaleb(-order.spec.qty_decimals)
        remaining_steps = int((order.quantity - order.filled_quantity) / step)
        if remaining_steps < 2 or self.rng.random() < 0.5:
            return None
        return self.rng.randint(1, remaining_steps - 1) * step

    def _fill(
        self, order: _Order, role: str, quantity: Decimal | None, timestamp: int
    ) -> list[Event]:
        spec = order.spec
        last = quantity is None
        if quantity is None:
            quantity = order.quantity - order.filled_quantity
            value = order.value - order.filled_value
        else:
            value = (order.price * quantity).quantize(AMOUNT_STEP, ROUND_DOWN)
        rate = MAKER_FEE if role == "maker" else TAKER_FEE
        if order.direction == "buy":
            fee = (quantity * rate).quantize(AMOUNT_STEP, ROUND_HALF_UP)
            fee_currency = spec.base
            self._move_held(spec.quote, -value)
            balance_event = self._move_available(spec.base, quantity - fee, timestamp)
        else:
            fee = (value * rate).quantize(AMOUNT_STEP, ROUND_HALF_UP)
            fee_currency = spec.quote
            self._move_held(spec.base, -quantity)
            balance_event = self._move_available(spec.quote, value - fee, timestamp)
        order.filled_quantity += quantity
        order.filled_value += value
        if last:
            order_event = self._order_event(
                order, "finished", finishTs=timestamp, state="completed", internalState="filled"
            )
            self._close(order)
        else:
            order_event = self._order_event(order, "updated", updateTs=timestamp)
            self.account.add_open_order(order.info())
        deal = {
            "dealId": ulid(self.rng, timestamp),
            "symbol": spec.symbol,
            "dealState": "completed",
            "transactionId": ulid(self.rng, timestamp),
            "filledPrice": amount(order.price),
            "filledQuantity": amount(quantity),
            "filledValue": amount(value),
            "fee": amount(fee),
            "feeCurrency": fee_currency,
            "tradeRole": role,
            "committedAt": timestamp,
        }
        return [order_event, Event("deal", spec.symbol, {"info": deal}), balance_event]

    def _cancel(self, order: _Order, timestamp: int) -> list[Event]:
        if order.direction == "buy":
            release = order.value - order.filled_value
        else:
            release = order.quantity - order.filled_quantity
        self._move_held(order.held_currency, -release)
        balance_event = self._move_available(order.held_currency, release, timestamp)
        self._close(order)
        finished = self._order_event(
            order, "finished", finishTs=timestamp, state="canceled", internalState="canceled"
        )
        return [finished, balance_event]

    def _close(self, order: _Order) -> None:
        self._resting.pop(order.order_id, None)
        self.account.remove_open_order(order.order_id)
