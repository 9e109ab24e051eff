"""What the simulator did, so tests and the soak can account for every frame.

Frames count as sent once their bytes were handed to the socket (``sendall``
returned); frames discarded by ``go_silent`` or lost with a dropped connection
before that are not counted (``frames_suppressed`` counts the former). Event
counters are per delivered frame: an event sent to two connections counts twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

# (method, summary): summary is a per-method tuple or None (see ``summarize``).
Record = tuple[str | None, tuple | None]


def _text_float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def _trade_summary(data: dict) -> tuple | None:
    trades = data.get("trades")
    if not isinstance(trades, list):
        return None
    return tuple(
        (
            data.get("symbol"),
            item.get("direction"),
            _text_float(item.get("quantity")),
            _text_float(item.get("quantity")) * _text_float(item.get("price")),
        )
        for item in trades
        if isinstance(item, dict)
    )


def _deal_summary(data: dict) -> tuple | None:
    info = data.get("info")
    if not isinstance(info, dict):
        return None
    return (
        info.get("symbol"),
        info.get("tradeRole"),
        _text_float(info.get("filledQuantity")),
        _text_float(info.get("filledValue")),
        _text_float(info.get("fee")),
        info.get("feeCurrency"),
    )


def _order_summary(data: dict) -> tuple | None:
    info = data.get("info")
    if not isinstance(info, dict):
        return None
    return (info.get("symbol"), info.get("direction"), data.get("type"), info.get("state"))


def _balance_summary(data: dict) -> tuple | None:
    info = data.get("info")
    return (info.get("currencyCode"),) if isinstance(info, dict) else None


SUMMARIES = {
    "trade_update": _trade_summary,
    "deal_update": _deal_summary,
    "order_update": _order_summary,
    "balance_update": _balance_summary,
}


def summarize(method: str | None, data: object) -> tuple | None:
    """The accountable content of an event (defensive: pushed data may be anything)."""
    summary = SUMMARIES.get(method or "")
    if summary is None or not isinstance(data, dict):
        return None
    return summary(data)


def summarize_event(channel: str, data: object, method: str | None = None) -> Record:
    """(method, summary) record for the stats of one event frame."""
    name = method or f"{channel}_update"
    return name, summarize(name, data)


def _key(parts: object) -> str:
    return "/".join(str(part) for part in parts) if isinstance(parts, tuple) else str(parts)


class Stats:
    """Counters; read attributes directly or take a JSON-able :meth:`as_dict`."""

    def __init__(self) -> None:
        self.tokens_issued = 0
        self.token_failures = 0  # every token call that did not return a token
        self.auth_failures = 0  # signed calls rejected (unknown user or bad sign)
        self.connections_accepted = 0
        self.connections_rejected = 0  # bad token or refused by a fault
        self.connections_closed = 0
        self.idle_closes = 0
        self.invalid_json_closes = 0
        self.dropped_by_fault = 0
        self.slow_consumer_drops = 0
        self.pings = 0
        self.pongs = 0  # WebSocket pong frames received
        self.duplicate_subscribes = 0  # a subscribe to a channel already subscribed
        self.subscriptions_replaced = 0  # ... that replaced the old one (repeat_subscription)
        self.ack_failures_sent: Counter[str] = Counter()  # by channel (ack_failure_channels)
        # late_book: partial depth updates queued before a book's full reload, and the
        # late full reloads themselves, by market
        self.late_book_partials: Counter[str] = Counter()
        self.late_book_reloads: Counter[str] = Counter()
        self.requests_by_method: Counter[str] = Counter()
        self.subscribe_requests: Counter[str] = Counter()
        self.unsubscribe_requests: Counter[str] = Counter()
        self.errors_sent: Counter[int] = Counter()
        self.frames_sent = 0
        self.sent_by_method: Counter[str] = Counter()
        self.raw_frames_sent = 0
        self.garbage_sent: Counter[str] = Counter()
        self.frames_suppressed = 0
        self.blast_frames_sent = 0
        self.replay_frames_queued = 0  # recorded frames queued for a client (replay mode)
        self.replay_replies_skipped = 0  # recorded replies to the recorder's own requests
        self.replay_unsubscribed_skipped = 0  # recorded updates of channels not subscribed
        self.replays_completed = 0
        self.trades_sent: Counter[tuple] = Counter()
        self.trade_base_volume: Counter[tuple] = Counter()
        self.trade_quote_volume: Counter[tuple] = Counter()
        self.deals_sent: Counter[tuple] = Counter()
        self.deal_base_volume: Counter[tuple] = Counter()
        self.deal_quote_volume: Counter[tuple] = Counter()
        self.fees_sent: Counter[str] = Counter()
        self.order_events_sent: Counter[tuple] = Counter()
        self.orders_finished_sent: Counter[tuple] = Counter()
        self.balance_updates_sent: Counter[str] = Counter()
        self.rest_requests: Counter[str] = Counter()

    def count_sent(self, records: Iterable[Record]) -> None:
        for method, summary in records:
            self.frames_sent += 1
            if method is None:
                self.raw_frames_sent += 1
                continue
            self.sent_by_method[method] += 1
            if summary is not None:
                self._count_summary(method, summary)

    def _count_summary(self, method: str, summary: tuple) -> None:
        if method == "trade_update":
            for symbol, direction, quantity, value in summary:
                key = (symbol, direction)
                self.trades_sent[key] += 1
                self.trade_base_volume[key] += quantity
                self.trade_quote_volume[key] += value
        elif method == "deal_update":
            symbol, role, quantity, value, fee, fee_currency = summary
            key = (symbol, role)
            self.deals_sent[key] += 1
            self.deal_base_volume[key] += quantity
            self.deal_quote_volume[key] += value
            self.fees_sent[fee_currency] += fee
        elif method == "order_update":
            symbol, direction, kind, state = summary
            self.order_events_sent[(symbol, direction, kind)] += 1
            if kind == "finished":
                self.orders_finished_sent[(symbol, direction, state)] += 1
        elif method == "balance_update":
            self.balance_updates_sent[summary[0]] += 1

    def as_dict(self) -> dict:
        """Plain JSON-able copy; tuple keys become "a/b/c"."""
        out: dict[str, object] = {}
        for name, value in vars(self).items():
            if isinstance(value, Counter):
                out[name] = {_key(key): count for key, count in value.items()}
            else:
                out[name] = value
        return out
