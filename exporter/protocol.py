"""The Cryptomus WebSocket protocol, pure: build requests, decode and validate frames.

No I/O and no metrics here. Everything the server sends is untrusted: a frame
that is not what the protocol says raises ``ProtocolError`` whose ``reason`` is
a short, bounded label value the caller counts. Checks are explicit and cheap
(this is the hot path); unknown fields are ignored.

Quirks handled (see cryptomus-protocol.md): public events carry ``id`` 0 and
private ones a string id, so ids are never trusted for events; unsubscribe (and
deal_subscribe) acknowledgements carry no ``method``; numbers are decimal
strings except in trade events, where they are JSON numbers.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import orjson

from .wsframes import FRAME_ERROR_REASONS

MAX_FRAME_BYTES = 4 * 1024 * 1024
_INF = math.inf

# Bounded reasons for ProtocolError (label values of websocket_message_errors_total).
TOO_LARGE = "too_large"
INVALID_JSON = "invalid_json"
NOT_AN_OBJECT = "not_an_object"
BAD_FIELD = "bad_field"
UNKNOWN_METHOD = "unknown_method"
ERROR_EVENT = "error_event"
# The WebSocket layer's protocol errors (exporter/wsframes.py) are counted beside them; those
# also end the connection.
ERROR_REASONS = (TOO_LARGE, INVALID_JSON, NOT_AN_OBJECT, BAD_FIELD, UNKNOWN_METHOD, ERROR_EVENT,
                 *FRAME_ERROR_REASONS)

SIDES = frozenset(("buy", "sell"))
ORDER_EVENTS = frozenset(("created", "updated", "finished"))
ROLES = frozenset(("maker", "taker"))
SUBSCRIBE_SUFFIX = "_subscribe"
UNSUBSCRIBE_SUFFIX = "_unsubscribe"


class ProtocolError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# --- requests ---------------------------------------------------------------------------


def encode_request(request_id: int, method: str, params: list[str]) -> bytes:
    return orjson.dumps({"id": request_id, "method": method, "params": params})


def ping(request_id: int) -> bytes:
    return encode_request(request_id, "ping", [])


def subscribe(request_id: int, channel: str, params: list[str]) -> bytes:
    return encode_request(request_id, channel + SUBSCRIBE_SUFFIX, params)


def unsubscribe(request_id: int, channel: str, params: list[str]) -> bytes:
    return encode_request(request_id, channel + UNSUBSCRIBE_SUFFIX, params)


# --- frames -----------------------------------------------------------------------------


def decode(frame: bytes | str) -> dict:
    """Parse one text frame into its JSON object."""
    if len(frame) > MAX_FRAME_BYTES:
        raise ProtocolError(TOO_LARGE, f"{len(frame)} bytes")
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError:
        raise ProtocolError(INVALID_JSON, "frame is not JSON") from None
    if type(message) is not dict:
        raise ProtocolError(NOT_AN_OBJECT, f"frame is a JSON {type(message).__name__}")
    return message


class Response(NamedTuple):
    """A reply to one of our requests: pong, subscribe/unsubscribe ack or error."""

    request_id: int | None
    method: str | None
    ok: bool
    error: str | None
    code: int | None


def is_response(method: Any) -> bool:
    return method is None or method == "pong" or (
        type(method) is str and method.endswith((SUBSCRIBE_SUFFIX, UNSUBSCRIBE_SUFFIX)))


def parse_response(message: dict) -> Response:
    """A reply to one of our requests. A (un)subscribe acknowledgement is ``ok`` only when
    ``error`` is null AND ``data.status`` is ``"success"`` (``subscribe_failure``); its
    ``error`` is then what the exchange said, one bounded printable line."""
    method = message.get("method")
    if method is not None and type(method) is not str:
        raise ProtocolError(BAD_FIELD, "method is not a string")
    request_id = _request_id(message.get("id"))
    error = message.get("error")
    if error is None and method is None and not isinstance(message.get("data"), dict):
        raise ProtocolError(BAD_FIELD, "acknowledgement without data")
    if error is not None and type(error) is not dict:
        raise ProtocolError(BAD_FIELD, "error is not an object")
    code = error.get("code") if error is not None else None
    code = code if type(code) is int else None
    if method == "pong":
        failure = None if error is None else subscribe_failure(message)
    else:
        failure = subscribe_failure(message)
    return Response(request_id, method, failure is None, failure, code)


def _request_id(value: Any) -> int | None:
    """Our request ids are integers; replies may echo them as digit strings."""
    if type(value) is int or value is None:
        return value
    if type(value) is str and value.isascii() and value.isdigit():
        return int(value)
    raise ProtocolError(BAD_FIELD, "id is not a request id")


# --- field helpers ----------------------------------------------------------------------


def _number(container: dict, key: str) -> float:
    value = container.get(key)
    kind = type(value)
    if kind is str or kind is float or kind is int:
        try:
            number = float(value)
        except ValueError:
            raise ProtocolError(BAD_FIELD, f"{key} is not a number") from None
        if -_INF < number < _INF:  # False for NaN too
            return number
    raise ProtocolError(BAD_FIELD, f"{key} is not a finite number")


def _string(container: dict, key: str) -> str:
    value = container.get(key)
    if type(value) is not str or not value or len(value) > 64:
        raise ProtocolError(BAD_FIELD, f"{key} is not a short string")
    return value


def _timestamp(container: dict, key: str = "timestamp") -> float | None:
    value = container.get(key)
    if value is None:
        return None
    kind = type(value)
    if (kind is int or kind is float) and value >= 0:
        return float(value)
    raise ProtocolError(BAD_FIELD, f"{key} is not a Unix time")


def _object(value: Any, what: str) -> dict:
    if type(value) is not dict:
        raise ProtocolError(BAD_FIELD, f"{what} is not an object")
    return value


def _one_of(container: dict, key: str, allowed: frozenset[str]) -> str:
    value = container.get(key)
    if type(value) is not str or value not in allowed:
        raise ProtocolError(BAD_FIELD, f"{key} is not one of {', '.join(sorted(allowed))}")
    return value


# --- events -----------------------------------------------------------------------------


class LastPrice(NamedTuple):
    symbol: str
    timestamp: float | None
    price: float


class Ticker(NamedTuple):
    symbol: str
    timestamp: float | None
    open: float
    high: float
    low: float
    base_volume: float
    quote_volume: float
    change_ratio: float


class Depth(NamedTuple):
    symbol: str
    timestamp: float | None
    full_reload: bool
    scale_index: int | None
    bids: list
    asks: list


class Trade(NamedTuple):
    price: float
    quantity: float
    side: str


class Trades(NamedTuple):
    symbol: str
    timestamp: float | None
    trades: tuple[Trade, ...]


class OrderEvent(NamedTuple):
    event: str
    order_id: str
    symbol: str
    side: str
    state: str | None


class BalanceEvent(NamedTuple):
    currency: str
    balance: float


class Deal(NamedTuple):
    deal_id: str
    symbol: str
    role: str
    quantity: float
    value: float
    fee: float
    fee_currency: str


# Builds an event tuple without the NamedTuple's Python-level __new__: about 80 ns
# less per event on the hot path (one or more events per frame).
_event = tuple.__new__


def event_data(message: dict) -> dict:
    """The ``data`` object of an update event; an error event raises."""
    data = message.get("data")
    if type(data) is dict:
        return data
    if message.get("error") is not None:
        raise ProtocolError(ERROR_EVENT, "event carries an error")
    raise ProtocolError(BAD_FIELD, "data is not an object")


def parse_lastprice(data: dict) -> LastPrice:
    return _event(LastPrice, (_string(data, "symbol"), _timestamp(data), _number(data, "price")))


def parse_ticker(data: dict) -> Ticker:
    return _event(Ticker, (
        _string(data, "symbol"),
        _timestamp(data),
        _number(data, "open"),
        _number(data, "high"),
        _number(data, "low"),
        _number(data, "volume"),
        _number(data, "quote_volume"),
        _number(data, "price_change") / 100.0,
    ))


def parse_depth(data: dict) -> Depth:
    full_reload = data.get("full_reload")
    if type(full_reload) is not bool:
        raise ProtocolError(BAD_FIELD, "full_reload is not a boolean")
    bids = data.get("bids", [])
    asks = data.get("asks", [])
    if type(bids) is not list or type(asks) is not list:
        raise ProtocolError(BAD_FIELD, "bids/asks are not lists")
    scale_index = data.get("scale_index")
    if scale_index is not None and type(scale_index) is not int:
        raise ProtocolError(BAD_FIELD, "scale_index is not an integer")
    return _event(Depth, (_string(data, "symbol"), _timestamp(data), full_reload, scale_index,
                          bids, asks))


def _trade(raw: Any) -> Trade:
    if type(raw) is not dict:  # checked here, not with _object/_one_of: two calls less a trade
        raise ProtocolError(BAD_FIELD, "trade is not an object")
    price, quantity = _number(raw, "price"), _number(raw, "quantity")
    if price < 0 or quantity < 0:  # they are summed into counters, which never decrease
        raise ProtocolError(BAD_FIELD, "trade price or quantity is negative")
    side = raw.get("direction")
    if type(side) is str and side in SIDES:
        return _event(Trade, (price, quantity, side))
    return _event(Trade, (price, quantity, _one_of(raw, "direction", SIDES)))  # raises


def parse_trades(data: dict) -> Trades:
    items = data.get("trades")
    if type(items) is not list:
        raise ProtocolError(BAD_FIELD, "trades is not a list")
    trades = tuple([_trade(raw) for raw in items])
    return _event(Trades, (_string(data, "symbol"), _timestamp(data), trades))


def parse_order(data: dict) -> OrderEvent:
    event = _one_of(data, "type", ORDER_EVENTS)
    info = _object(data.get("info"), "info")
    state = info.get("state") if event == "finished" else None
    if state is not None and type(state) is not str:
        raise ProtocolError(BAD_FIELD, "state is not a string")
    return OrderEvent(
        event,
        _string(info, "id"),
        _string(info, "symbol"),
        _one_of(info, "direction", SIDES),
        state,
    )


def parse_balance(data: dict) -> BalanceEvent:
    info = _object(data.get("info"), "info")
    return BalanceEvent(_string(info, "currencyCode"), _number(info, "newBalance"))


def parse_deal(data: dict) -> Deal:
    info = _object(data.get("info"), "info")
    deal_id = info.get("dealId")
    quantity, value = _number(info, "filledQuantity"), _number(info, "filledValue")
    if quantity < 0 or value < 0:  # summed into counters, which never decrease
        raise ProtocolError(BAD_FIELD, "filled quantity or value is negative")
    return Deal(
        str(deal_id) if type(deal_id) in (str, int) else "",
        _string(info, "symbol"),
        _one_of(info, "tradeRole", ROLES),
        quantity,
        value,
        _number(info, "fee"),
        _string(info, "feeCurrency"),
    )


# --- REST payloads ----------------------------------------------------------------------


class Balance(NamedTuple):
    currency: str
    available: float
    held: float


class OpenOrder(NamedTuple):
    order_id: str
    symbol: str
    side: str


def _result_list(payload: Any) -> list:
    if type(payload) is not dict or type(payload.get("result")) is not list:
        raise ProtocolError(BAD_FIELD, "response has no result list")
    return payload["result"]


def parse_balances(payload: Any) -> list[Balance]:
    return [
        Balance(_string(item, "ticker"), _number(item, "available"), _number(item, "held"))
        for item in (_object(raw, "balance") for raw in _result_list(payload))
    ]


def parse_open_orders(payload: Any) -> list[OpenOrder]:
    return [
        OpenOrder(_string(item, "id"), _string(item, "symbol"), _one_of(item, "direction", SIDES))
        for item in (_object(raw, "order") for raw in _result_list(payload))
    ]


def parse_markets(payload: Any) -> list[tuple[str, str, str]]:
    """(symbol, base currency, quote currency) of every market in the market list."""
    return [
        (_string(item, "symbol"), _string(item, "baseCurrency"), _string(item, "quoteCurrency"))
        for item in (_object(raw, "market") for raw in _result_list(payload))
    ]


def parse_scales(payload: Any) -> dict[int, float]:
    """Depth scale index -> scale."""
    if type(payload) is not dict or type(payload.get("data")) is not list:
        raise ProtocolError(BAD_FIELD, "response has no data list")
    scales = {}
    for raw in payload["data"]:
        item = _object(raw, "scale")
        index = item.get("index")
        if type(index) is not int:
            raise ProtocolError(BAD_FIELD, "index is not an integer")
        scales[index] = _number(item, "scale")
    return scales


def parse_token(payload: Any) -> str:
    token = payload.get("token") if type(payload) is dict else None
    if type(token) is not str or not token or len(token) > 256:
        raise ProtocolError(BAD_FIELD, "response has no token")
    return token


# --- subscription replies ---------------------------------------------------------------

MAX_REPLY_TEXT = 200


def subscribe_failure(message: dict) -> str | None:
    """None when a (un)subscribe reply is a success, else what the exchange said, for a log line.

    A success is ``error`` null AND ``data.status == "success"``: a reply such as
    ``{"id": 7, "data": {"status": "failure"}, "error": null}`` is a rejection too
    (cryptomus-protocol.md, Open points). The text is one printable line of bounded length.
    """
    error = message.get("error")
    if error is not None:
        if type(error) is not dict:
            return _reply_text(error) if type(error) is str else (
                f"error is a JSON {type(error).__name__}, not an object")
        text = error.get("message")
        code = error.get("code")
        described = _reply_text(text) if type(text) is str and text else "error without a message"
        return f"{described} (code {code})" if type(code) is int else described
    data = message.get("data")
    if type(data) is not dict:
        return "reply without data" if data is None else (
            f"data is a JSON {type(data).__name__}, not an object")
    status = data.get("status")
    if status == "success":
        return None
    if status is None:
        return "reply without a status"
    shown = f'"{status}"' if type(status) is str else repr(status)
    described = f"status {_reply_text(shown)}"
    text = data.get("message")
    return f"{described}: {_reply_text(text)}" if type(text) is str and text else described


def _reply_text(text: str) -> str:
    """At most MAX_REPLY_TEXT characters of printable text (escapes, never raw controls)."""
    cut = text[:MAX_REPLY_TEXT]
    line = "".join(char if char.isprintable() else repr(char)[1:-1] for char in cut)
    return f"{line}..." if len(text) > MAX_REPLY_TEXT else line
