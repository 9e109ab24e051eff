"""HTTP replies as the REST hosts send them (JSON bodies, or an HTML error page
like the one a proxy in front of the exchange shows)."""

from __future__ import annotations

from typing import NamedTuple

import orjson

JSON = "application/json"
HTML = "text/html; charset=utf-8"


class Reply(NamedTuple):
    status: int
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()


def json_reply(status: int, payload: object, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    return Reply(status, orjson.dumps(payload), JSON, headers)


def error_reply(status: int, message: str) -> Reply:
    return json_reply(status, {"message": message, "code": status})


def html_error(status: int) -> Reply:
    page = f"<html><head><title>{status}</title></head><body><h1>{status} Error</h1></body></html>"
    return Reply(status, page.encode(), HTML)
