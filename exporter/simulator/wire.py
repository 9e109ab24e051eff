"""Pure wire helpers: channel tables, exact number formatting, frame encoding, ids.

Written from the protocol document, independently of ``exporter.protocol``, so
that the exporter and the simulator check each other.
"""

from __future__ import annotations

import random
from decimal import Decimal

import orjson

PUBLIC_CHANNELS = ("lastprice", "ticker", "depth", "trade")
PRIVATE_CHANNELS = ("order", "balance", "deal")
CHANNELS = PUBLIC_CHANNELS + PRIVATE_CHANNELS
# Public events carry the integer id 0, private events a string id.
EVENT_IDS: dict[str, int | str] = {
    **dict.fromkeys(PUBLIC_CHANNELS, 0),
    "order": "3",
    "balance": "4",
    "deal": "1",
}
ALL = "all"
SUCCESS = {"status": "success"}
FAILURE = {"status": "failure"}
DEPTH_UPDATE = "depth_update"

ERROR_FORMAT = 1  # invalid message format
ERROR_OTHER = 2  # any other error

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def fixed(units: int, decimals: int) -> str:
    """Exact fixed-point text of ``units * 10**-decimals`` ("107043.93")."""
    if decimals == 0:
        return str(units)
    sign = "-" if units < 0 else ""
    digits = str(abs(units)).rjust(decimals + 1, "0")
    return f"{sign}{digits[:-decimals]}.{digits[-decimals:]}"


def level_quantity(units: int, decimals: int) -> str:
    """A depth quantity; an emptied level is exactly "0" as in the spec."""
    return fixed(units, decimals) if units else "0"


def decimal_text(value: Decimal, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def plain_decimal(value: Decimal) -> str:
    """Shortest plain text of a decimal ("0.01", "10", never "1E+1")."""
    return format(value.normalize(), "f")


def text_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented server-to-client WebSocket text frame."""
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 65536:
        header = b"\x81\x7e" + size.to_bytes(2, "big")
    else:
        header = b"\x81\x7f" + size.to_bytes(8, "big")
    return header + payload


def event_payload(
    channel: str, data: object, *, event_id: object = None, method: str | None = None
) -> bytes:
    return orjson.dumps(
        {
            "id": EVENT_IDS[channel] if event_id is None else event_id,
            "method": method or f"{channel}_update",
            "data": data,
            "error": None,
        }
    )


def response_payload(request_id: int, method: str | None, data: object) -> bytes:
    """A success response; ``method`` None leaves the key out (unsubscribe acks)."""
    if method is None:
        return orjson.dumps({"id": request_id, "data": data, "error": None})
    return orjson.dumps({"id": request_id, "method": method, "data": data, "error": None})


def error_payload(request_id: int, method: str | None, message: str, code: int) -> bytes:
    body: dict[str, object] = {"id": request_id}
    if method is not None:
        body["method"] = method
    body["data"] = None
    body["error"] = {"message": message, "code": code}
    return orjson.dumps(body)


def ulid(rng: random.Random, timestamp: int) -> str:
    """A ULID-shaped id (26 Crockford base32 chars) drawn from a seeded generator."""
    value = ((timestamp * 1000) << 80) | rng.getrandbits(80)
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(CROCKFORD[digit])
    return "".join(reversed(chars))
