"""Signed REST calls around the stream: token, markets, scales, balances, open orders.

Every call has a timeout, is counted in the link state (exposed as
``api_requests_total{endpoint,code}``) and timed in the ``api_request_duration_seconds``
histogram. Idempotent reads are retried with backoff on network errors, 429 and 5xx.
Errors name the endpoint and the status, never a URL with secrets, a header or a
response body (which may hold a token).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import gevent.pool
import requests
from prometheus_client import Histogram

from . import protocol
from .backoff import Backoff
from .state import link as records
from .state.model import Link

log = logging.getLogger(__name__)

TOKEN_PATH = "/v2/user-api/exchange/account/web-socket/token"  # noqa: S105 (a path)
MARKETS_PATH = "/v1/exchange/market"
SCALES_PATH = "/api/v2/symbol-scales"
BALANCE_PATH = "/v2/user-api/exchange/account/balance"
ORDERS_PATH = "/v2/user-api/exchange/orders"
ORDERS_PAGE = 100
MAX_ORDER_PAGES = 100
RETRYABLE_STATUS = frozenset((429, 500, 502, 503, 504))
RETRY_MIN_SECONDS, RETRY_MAX_SECONDS = 0.5, 5.0
SCALES_CONCURRENCY = 4  # scale list requests in flight at once (one per market)


class RestError(Exception):
    """A REST call failed; ``code`` is the HTTP status or a short reason."""

    def __init__(self, endpoint: str, code: str, detail: str = "",
                 retry_after: float | None = None) -> None:
        super().__init__(f"{endpoint} request failed: {code}{f' ({detail})' if detail else ''}")
        self.endpoint = endpoint
        self.code = code
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return not self.code.isdigit() or int(self.code) in RETRYABLE_STATUS


def sign(body: bytes, api_key: str) -> str:
    """md5(base64(body) + API key), hex: the exchange's request signature."""
    return hashlib.md5(base64.b64encode(body) + api_key.encode(), usedforsecurity=False).hexdigest()


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header in delta-seconds (an HTTP date is ignored: clocks differ)."""
    value = (value or "").strip()
    return float(value) if value.isascii() and value.isdigit() else None


class RestClient:
    def __init__(
        self,
        link: Link,
        duration: Histogram,
        *,
        api_url: str,
        market_api_url: str,
        scales_api_url: str,
        user_id: str | None,
        api_key: str | None,
        timeout: float = 10.0,
        attempts: int = 3,
        wait: Callable[[float], Any] = time.sleep,
    ) -> None:
        self.link = link
        self.duration = duration
        self.api_url = api_url
        self.market_api_url = market_api_url
        self.scales_api_url = scales_api_url
        self.user_id = user_id
        self._api_key = api_key
        self.timeout = timeout
        self.attempts = attempts
        self.wait = wait
        self.http = requests.Session()
        self.http.headers["User-Agent"] = "cryptomus-exporter"

    def close(self) -> None:
        self.http.close()

    # --- calls ----------------------------------------------------------------------------

    def token(self) -> str:
        """A fresh one-time WebSocket token; not retried here (the supervisor backs off)."""
        payload = self._get("token", self.api_url + TOKEN_PATH, signed=True, attempts=1)
        return self._parse("token", protocol.parse_token, payload)

    def markets(self) -> list[tuple[str, str, str]]:
        payload = self._get("markets", self.market_api_url + MARKETS_PATH)
        return self._parse("markets", protocol.parse_markets, payload)

    def scales(self, symbol: str) -> dict[int, float]:
        payload = self._get("scales", self.scales_api_url + SCALES_PATH, params={"symbol": symbol})
        return self._parse("scales", protocol.parse_scales, payload)

    def scales_of(self, symbols: Iterable[str], concurrency: int = SCALES_CONCURRENCY
                  ) -> dict[str, dict[int, float] | RestError]:
        """Each market's depth scales, or the RestError its fetch ended with, in the order
        given. Each fetch is retried with backoff like every read; at most ``concurrency``
        are in flight at once (greenlets: the exporter runs under gevent)."""
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        symbols = list(dict.fromkeys(symbols))

        def fetch(symbol: str) -> tuple[str, dict[int, float] | RestError]:
            try:
                return symbol, self.scales(symbol)
            except RestError as error:
                return symbol, error

        fetched = dict(gevent.pool.Pool(concurrency).imap_unordered(fetch, symbols))
        return {symbol: fetched[symbol] for symbol in symbols}

    def balances(self) -> list[protocol.Balance]:
        payload = self._get("balance", self.api_url + BALANCE_PATH, signed=True)
        return self._parse("balance", protocol.parse_balances, payload)

    def open_orders(self) -> list[protocol.OpenOrder]:
        orders: list[protocol.OpenOrder] = []
        for page in range(MAX_ORDER_PAGES):
            payload = self._get("orders", self.api_url + ORDERS_PATH, signed=True,
                                params={"limit": ORDERS_PAGE, "offset": page * ORDERS_PAGE})
            batch = self._parse("orders", protocol.parse_open_orders, payload)
            orders.extend(batch)
            if len(batch) < ORDERS_PAGE:
                break
        return orders

    # --- plumbing -------------------------------------------------------------------------

    @staticmethod
    def _parse(endpoint: str, parser: Callable[[Any], Any], payload: Any) -> Any:
        try:
            return parser(payload)
        except protocol.ProtocolError as error:
            raise RestError(endpoint, "invalid_response", error.detail) from None

    def _headers(self) -> dict[str, str]:
        if not self.user_id or not self._api_key:
            raise RestError("auth", "no_credentials")
        return {"userId": self.user_id, "sign": sign(b"", self._api_key)}

    def _get(self, endpoint: str, url: str, *, signed: bool = False,
             params: dict | None = None, attempts: int | None = None) -> Any:
        attempts = attempts or self.attempts
        backoff = Backoff(RETRY_MIN_SECONDS, RETRY_MAX_SECONDS)
        for attempt in range(1, attempts + 1):
            try:
                return self._get_once(endpoint, url, signed, params)
            except RestError as error:
                if attempt == attempts or not error.retryable:
                    raise
                delay = backoff.next_delay(error.retry_after)
                log.warning("%s; retrying in %.1f s (attempt %d of %d)",
                            error, delay, attempt + 1, attempts)
                self.wait(delay)
        raise AssertionError("unreachable")

    def _get_once(self, endpoint: str, url: str, signed: bool, params: dict | None) -> Any:
        headers = self._headers() if signed else None
        started = time.monotonic()
        try:
            response = self.http.get(url, headers=headers, params=params, timeout=self.timeout)
        except requests.Timeout:
            self._observe(endpoint, "timeout", started)
            raise RestError(endpoint, "timeout") from None
        except requests.RequestException as exc:
            self._observe(endpoint, "error", started)
            raise RestError(endpoint, "error", type(exc).__name__) from None
        code = str(response.status_code)
        self._observe(endpoint, code, started)
        log.debug("GET %s -> %s", response.url, code)
        if response.status_code != 200:
            raise RestError(endpoint, code,
                            retry_after=retry_after_seconds(response.headers.get("Retry-After")))
        try:
            return response.json()
        except ValueError:
            raise RestError(endpoint, "invalid_response", "body is not JSON") from None

    def _observe(self, endpoint: str, code: str, started: float) -> None:
        records.api_request(self.link, endpoint, code, time.time())
        self.duration.labels(endpoint).observe(time.monotonic() - started)
