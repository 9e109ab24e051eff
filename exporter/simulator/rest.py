"""REST endpoints of the four Cryptomus hosts (all served on one port): the
one-time token, balances, open orders (signed), the market list and depth scales."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from urllib.parse import parse_qs

import orjson

from .account import Account
from .catalog import Catalog
from .faults import Faults
from .replies import Reply, error_reply, html_error, json_reply
from .stats import Stats

TOKEN_PATH = "/v2/user-api/exchange/account/web-socket/token"  # noqa: S105 (a path)
BALANCE_PATH = "/v2/user-api/exchange/account/balance"
ORDERS_PATH = "/v2/user-api/exchange/orders"
MARKETS_PATH = "/v1/exchange/market"
SCALES_PATH = "/api/v2/symbol-scales"
MAX_ORDERS_LIMIT = 100


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


class TokenStore:
    """One-time tokens: valid ``ttl`` seconds or until their first connection."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._expiry: dict[str, float] = {}

    def issue(self) -> str:
        now = time.monotonic()
        self._expiry = {token: at for token, at in self._expiry.items() if at > now}
        token = secrets.token_hex(32)
        self._expiry[token] = now + self.ttl
        return token

    def consume(self, token: str) -> bool:
        expiry = self._expiry.pop(token, None)
        return expiry is not None and time.monotonic() < expiry


class ExchangeRest:
    """Signed calls check ``userId`` and ``sign = md5(base64(body) + api_key)``;
    a ``fail_token`` fault makes token calls fail first."""

    def __init__(
        self,
        catalog: Catalog,
        account: Account,
        *,
        tokens: TokenStore,
        faults: Faults,
        stats: Stats,
        user_id: str,
        api_key: str,
    ) -> None:
        self.catalog = catalog
        self.account = account
        self.tokens = tokens
        self._faults = faults
        self._stats = stats
        self._user_id = user_id.encode()
        self._api_key = api_key
        self._routes = {
            TOKEN_PATH: (self._token, True),
            BALANCE_PATH: (self._balance, True),
            ORDERS_PATH: (self._orders, True),
            MARKETS_PATH: (self._markets, False),
            SCALES_PATH: (self._scales, False),
        }
        self._markets_body = orjson.dumps({"result": catalog.rest_markets()})

    def route(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        _peer_host: str = "",
    ) -> Reply:
        path, _, query_text = target.partition("?")
        route = self._routes.get(path)
        self._stats.rest_requests[path if route else "unknown"] += 1
        if route is None:
            return error_reply(404, "not found")
        handler, signed = route
        if method != "GET":
            return error_reply(405, "method not allowed")
        if path == TOKEN_PATH:
            status = self._faults.take_token_failure()
            if status is not None:
                self._stats.token_failures += 1
                retry = (("Retry-After", "1"),) if status == 429 else ()
                reply = (
                    html_error(status) if status >= 500 else error_reply(status, "request failed")
                )
                return reply._replace(headers=retry)
        if signed:
            refusal = self._authenticate(headers, body)
            if refusal is not None:
                self._stats.auth_failures += 1
                if path == TOKEN_PATH:
                    self._stats.token_failures += 1
                return refusal
        return handler(parse_qs(query_text))

    def _authenticate(self, headers: dict[str, str], body: bytes) -> Reply | None:
        if not hmac.compare_digest(headers.get("userid", "").encode(), self._user_id):
            return error_reply(404, "user not found")
        signed = base64.b64encode(body).decode() + self._api_key
        expected = hashlib.md5(signed.encode(), usedforsecurity=False).hexdigest()
        if not hmac.compare_digest(headers.get("sign", "").lower().encode(), expected.encode()):
            return error_reply(401, "invalid sign")
        return None

    def _token(self, _query: dict) -> Reply:
        self._stats.tokens_issued += 1
        return json_reply(200, {"token": self.tokens.issue()})

    def _balance(self, _query: dict) -> Reply:
        return json_reply(200, {"result": self.account.balances()})

    def _orders(self, query: dict) -> Reply:
        try:
            limit = int(_first(query, "limit") or MAX_ORDERS_LIMIT)
            offset = int(_first(query, "offset") or 0)
        except ValueError:
            return error_reply(400, "limit and offset must be integers")
        if not 1 <= limit <= MAX_ORDERS_LIMIT or offset < 0:
            return error_reply(400, f"limit must be 1..{MAX_ORDERS_LIMIT} and offset >= 0")
        orders = self.account.open_orders()[offset : offset + limit]
        return json_reply(200, {"result": orders})

    def _markets(self, _query: dict) -> Reply:
        return Reply(200, self._markets_body)

    def _scales(self, query: dict) -> Reply:
        symbol = _first(query, "symbol")
        if not symbol:
            return json_reply(
                400, {"status": "error", "message": "symbol is required", "data": None}
            )
        failure = self._faults.scale_list_failure(symbol)
        if failure is not None:
            return json_reply(
                failure, {"status": "error", "message": "scales unavailable", "data": None}
            )
        scales = self.catalog.scales(symbol)
        if scales is None:
            return json_reply(404, {"status": "error", "message": "symbol not found", "data": None})
        return json_reply(200, {"status": "success", "message": "success", "data": scales})
