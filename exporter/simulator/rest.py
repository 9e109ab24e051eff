"""REST endpoints of the four Cryptomus hosts (all served on one port), plus the
loopback-only ``/_sim/`` control endpoints used by ``simulate --fault``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import time
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import parse_qs

import orjson

if TYPE_CHECKING:
    from .simulator import Simulator

TOKEN_PATH = "/v2/user-api/exchange/account/web-socket/token"  # noqa: S105 (a path)
BALANCE_PATH = "/v2/user-api/exchange/account/balance"
ORDERS_PATH = "/v2/user-api/exchange/orders"
MARKETS_PATH = "/v1/exchange/market"
SCALES_PATH = "/api/v2/symbol-scales"
CONTROL_PREFIX = "/_sim/"
JSON = "application/json"
HTML = "text/html; charset=utf-8"
MAX_ORDERS_LIMIT = 100

# name -> parameters it accepts from the query string, with their types
FAULT_PARAMS: dict[str, dict[str, type]] = {
    "drop_connections": {},
    "go_silent": {"seconds": float},
    "send_garbage": {"kind": str},
    "fail_token": {"count": int, "status": int},
    "refuse_connections": {"seconds": float, "mode": str, "status": int},
    "partial_depth_before_reload": {"market": str},
    "crossed_book": {"market": str},
    "clear": {},
}


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


class RestApi:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.tokens = TokenStore(sim.config.token_ttl)
        self._routes = {
            TOKEN_PATH: (self._token, True),
            BALANCE_PATH: (self._balance, True),
            ORDERS_PATH: (self._orders, True),
            MARKETS_PATH: (self._markets, False),
            SCALES_PATH: (self._scales, False),
        }
        self._control_actions = {
            ("GET", "stats"): self._stats,
            ("POST", "faults"): self._fault,
            ("POST", "push"): self._push,
            ("POST", "push_raw"): self._push_raw,
            ("POST", "pause"): self._pause,
            ("POST", "resume"): self._resume,
        }
        self._markets_body = orjson.dumps(
            {"result": [m.spec.rest_entry() for m in sim.world.markets.values()]}
        )

    def route(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        peer_host: str,
    ) -> Reply:
        path, _, query_text = target.partition("?")
        query = parse_qs(query_text)
        if path.startswith(CONTROL_PREFIX):
            return self._control(method, path, query, body, peer_host)
        route = self._routes.get(path)
        self.sim.stats.rest_requests[path if route else "unknown"] += 1
        if route is None:
            return error_reply(404, "not found")
        handler, signed = route
        if method != "GET":
            return error_reply(405, "method not allowed")
        if path == TOKEN_PATH:
            status = self.sim.faults.take_token_failure()
            if status is not None:
                self.sim.stats.token_failures += 1
                retry = (("Retry-After", "1"),) if status == 429 else ()
                reply = (
                    html_error(status) if status >= 500 else error_reply(status, "request failed")
                )
                return reply._replace(headers=retry)
        if signed:
            refusal = self._authenticate(headers, body)
            if refusal is not None:
                self.sim.stats.auth_failures += 1
                if path == TOKEN_PATH:
                    self.sim.stats.token_failures += 1
                return refusal
        return handler(query)

    def _authenticate(self, headers: dict[str, str], body: bytes) -> Reply | None:
        config = self.sim.config
        if not hmac.compare_digest(headers.get("userid", "").encode(), config.user_id.encode()):
            return error_reply(404, "user not found")
        signed = base64.b64encode(body).decode() + config.api_key
        expected = hashlib.md5(signed.encode(), usedforsecurity=False).hexdigest()
        if not hmac.compare_digest(headers.get("sign", "").lower().encode(), expected.encode()):
            return error_reply(401, "invalid sign")
        return None

    # --- exchange endpoints ------------------------------------------------------

    def _token(self, _query: dict) -> Reply:
        self.sim.stats.tokens_issued += 1
        return json_reply(200, {"token": self.tokens.issue()})

    def _balance(self, _query: dict) -> Reply:
        return json_reply(200, {"result": self.sim.account.balances()})

    def _orders(self, query: dict) -> Reply:
        try:
            limit = int(_first(query, "limit") or MAX_ORDERS_LIMIT)
            offset = int(_first(query, "offset") or 0)
        except ValueError:
            return error_reply(400, "limit and offset must be integers")
        if not 1 <= limit <= MAX_ORDERS_LIMIT or offset < 0:
            return error_reply(400, f"limit must be 1..{MAX_ORDERS_LIMIT} and offset >= 0")
        orders = self.sim.account.open_orders()[offset : offset + limit]
        return json_reply(200, {"result": orders})

    def _markets(self, _query: dict) -> Reply:
        return Reply(200, self._markets_body)

    def _scales(self, query: dict) -> Reply:
        symbol = _first(query, "symbol")
        if not symbol:
            return json_reply(
                400, {"status": "error", "message": "symbol is required", "data": None}
            )
        market = self.sim.world.markets.get(symbol)
        if market is None:
            return json_reply(404, {"status": "error", "message": "symbol not found", "data": None})
        return json_reply(
            200, {"status": "success", "message": "success", "data": market.spec.scales()}
        )

    # --- control endpoints (loopback only) ---------------------------------------

    def _control(self, method: str, path: str, query: dict, body: bytes, peer_host: str) -> Reply:
        if not ipaddress.ip_address(peer_host.partition("%")[0]).is_loopback:
            return error_reply(403, "control endpoints are loopback only")
        name = path.removeprefix(CONTROL_PREFIX)
        if name.startswith("faults/"):
            name, query = "faults", {**query, "name": [name.removeprefix("faults/")]}
        action = self._control_actions.get((method, name))
        if action is None:
            return error_reply(404, "unknown control endpoint (POST faults/<name>, push, ...)")
        try:
            return action(query, body)
        except (ValueError, KeyError, TypeError) as error:
            return error_reply(400, str(error))

    def _stats(self, _query: dict, _body: bytes) -> Reply:
        return json_reply(200, {**self.sim.stats.as_dict(), "connections": self.sim.connections})

    def _push(self, _query: dict, body: bytes) -> Reply:
        request = orjson.loads(body)
        return json_reply(
            200, {"status": "ok", "sent": self.sim.push(request["channel"], request["data"])}
        )

    def _push_raw(self, _query: dict, body: bytes) -> Reply:
        return json_reply(200, {"status": "ok", "sent": self.sim.push_raw(body)})

    def _pause(self, _query: dict, _body: bytes) -> Reply:
        self.sim.pause()
        return json_reply(200, {"status": "ok"})

    def _resume(self, _query: dict, _body: bytes) -> Reply:
        self.sim.resume()
        return json_reply(200, {"status": "ok"})

    def _fault(self, query: dict, _body: bytes) -> Reply:
        name = query["name"][0].replace("-", "_")
        params = FAULT_PARAMS.get(name)
        if params is None:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULT_PARAMS)}")
        kwargs = {key: kind(query[key][0]) for key, kind in params.items() if key in query}
        result = getattr(self.sim.faults, name)(**kwargs)
        return json_reply(200, {"status": "ok", "fault": name, "result": result})
