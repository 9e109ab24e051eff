"""The single table of metric names, help texts and labels.

Everything the exporter exposes is declared here once. README's metrics table,
the alert rules and the dashboards are checked against this table by a contract
test, so renaming a metric breaks the build instead of a dashboard.

Names are the exposed names without the ``cryptomus_`` namespace; counters keep
their ``_total`` suffix here (prometheus-client adds it back when exposing).
Every metric is produced at scrape time by one of the collectors in
``exporter/collectors/`` (its ``group`` says which concern it belongs to), except
the two histograms marked ``instrument``: they are prometheus-client objects,
held by :class:`Instruments` and observed where the durations are measured.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Histogram

NAMESPACE = "cryptomus"

GAUGE, COUNTER, HISTOGRAM = "gauge", "counter", "histogram"
MARKET, ACCOUNT, CONNECTION = "market", "account", "connection"

PING_RTT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
API_DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str
    help: str
    labels: tuple[str, ...] = ()
    group: str = CONNECTION
    instrument: bool = False
    buckets: tuple[float, ...] | None = None

    @property
    def full_name(self) -> str:
        return f"{NAMESPACE}_{self.name}"

    @property
    def sample_names(self) -> tuple[str, ...]:
        """Every sample name this metric produces on /metrics."""
        if self.kind == HISTOGRAM:
            return tuple(f"{self.full_name}_{s}" for s in ("bucket", "count", "sum"))
        if self.kind == COUNTER:
            return (self.full_name, f"{self.full_name.removesuffix('_total')}_created")
        return (self.full_name,)


def _market(name: str, kind: str, help: str, *labels: str) -> MetricSpec:
    return MetricSpec(name, kind, help, ("market", *labels), MARKET)


def _account(name: str, kind: str, help: str, *labels: str) -> MetricSpec:
    return MetricSpec(name, kind, help, labels, ACCOUNT)


def _connection(name: str, kind: str, help: str, *labels: str,
                buckets: tuple[float, ...] | None = None) -> MetricSpec:
    return MetricSpec(name, kind, help, labels, CONNECTION, instrument=buckets is not None,
                      buckets=buckets)


SPECS: tuple[MetricSpec, ...] = (
    # market data
    # collectors/market.py
    _market("last_price", GAUGE, "Last traded price (lastprice channel), in quote currency."),
    _market("ticker_open_price", GAUGE, "24 h ticker: opening price, in quote currency."),
    _market("ticker_high_price", GAUGE, "24 h ticker: highest price, in quote currency."),
    _market("ticker_low_price", GAUGE, "24 h ticker: lowest price, in quote currency."),
    _market("ticker_base_volume", GAUGE, "24 h ticker: traded volume in base currency."),
    _market("ticker_quote_volume", GAUGE, "24 h ticker: traded volume in quote currency."),
    _market(
        "ticker_price_change_ratio", GAUGE,
        "24 h ticker: price change as a ratio (0.0004 for the exchange's \"0.04\" percent).",
    ),
    # collectors/orderbook.py, from the live books
    _market("orderbook_best_bid_price", GAUGE, "Highest bid in the local order book."),
    _market("orderbook_best_ask_price", GAUGE, "Lowest ask in the local order book."),
    _market("orderbook_spread", GAUGE, "Best ask minus best bid, in quote currency."),
    _market("orderbook_spread_ratio", GAUGE, "Spread divided by the mid price."),
    _market("orderbook_levels", GAUGE, "Price levels in the local order book.", "side"),
    _market(
        "orderbook_depth", GAUGE,
        "Base quantity resting within a band (ratio) of the mid price.", "side", "band",
    ),
    _market("orderbook_resyncs_total", COUNTER,
            "Local order books dropped and reloaded, by reason.", "reason"),
    _market("orderbook_resync_backoff_seconds", GAUGE,
            "Seconds the market's next order book resync must wait after its last one; "
            "0 when the book has been healthy."),
    _market("orderbook_scale_missing", GAUGE,
            "1 while the configured depth scale is not in the market's scale list (depth not "
            "subscribed for it)."),
    _market("trades_total", COUNTER, "Public trades seen, by taker side.", "side"),
    _market("traded_base_volume_total", COUNTER, "Public traded volume in base currency.", "side"),
    _market("traded_quote_volume_total", COUNTER,
            "Public traded volume in quote currency (price x quantity).", "side"),
    _market("market_last_update_timestamp_seconds", GAUGE,
            "Unix time of the last update received for a market, by channel.", "channel"),
    # account
    _account("balance", GAUGE, "Available balance of the account, by currency.", "currency"),
    _account("balance_held", GAUGE, "Balance held in open orders, by currency.", "currency"),
    _account("balance_changes_total", COUNTER, "Balance update events, by currency.", "currency"),
    _account("open_orders", GAUGE, "The account's open orders.", "market", "side"),
    _account("order_events_total", COUNTER, "The account's order events (created, updated, "
             "finished).", "market", "side", "event"),
    _account("orders_finished_total", COUNTER, "The account's orders finished, by final state.",
             "market", "side", "state"),
    _account("fills_total", COUNTER, "The account's fills (deals), by role.", "market", "role"),
    _account("filled_base_volume_total", COUNTER, "Base quantity filled, by role.",
             "market", "role"),
    _account("filled_quote_volume_total", COUNTER, "Quote value filled, by role.",
             "market", "role"),
    _account("fees_total", COUNTER, "Fees paid on fills, by fee currency.", "currency"),
    # connection health
    _connection("websocket_connected", GAUGE, "1 while the WebSocket is connected and subscribed."),
    _connection("websocket_connects_total", COUNTER, "Successful WebSocket connections."),
    _connection("websocket_disconnects_total", COUNTER, "WebSocket disconnections, by reason.",
                "reason"),
    _connection("websocket_connect_failures_total", COUNTER,
                "Failed connection attempts, by stage (token, connect, subscribe).", "stage"),
    _connection("websocket_connected_since_timestamp_seconds", GAUGE,
                "Unix time the current connection was established (0 when disconnected)."),
    _connection("websocket_last_message_timestamp_seconds", GAUGE,
                "Unix time the last frame of any kind was received."),
    _connection("websocket_messages_total", COUNTER, "Frames received, by method.", "method"),
    _connection("websocket_message_errors_total", COUNTER,
                "Frames counted and skipped, by reason.", "reason"),
    _connection("websocket_ping_rtt_seconds", HISTOGRAM, "Round trip time of ping -> pong.",
                buckets=PING_RTT_BUCKETS),
    _connection("websocket_subscriptions", GAUGE,
                "1 for each channel subscribed on the current connection.", "channel"),
    _connection("websocket_subscribe_failures_total", COUNTER,
                "Subscriptions rejected by the exchange, by channel.", "channel"),
    _connection("websocket_reconnect_backoff_seconds", GAUGE,
                "Delay before the next reconnection attempt (0 when connected)."),
    _connection("api_requests_total", COUNTER, "REST calls, by endpoint and HTTP status code.",
                "endpoint", "code"),
    _connection("api_request_duration_seconds", HISTOGRAM, "REST call duration.", "endpoint",
                buckets=API_DURATION_BUCKETS),
    # the exporter's own HTTP port (exporter.http, exporter.httpguard)
    _connection("http_connections_open", GAUGE, "HTTP connections open to the exporter's port."),
    _connection("http_connections_limit", GAUGE,
                "Most HTTP connections kept open: --web.max-connections, capped by the "
                "open-files limit minus the descriptors reserved for the exchange."),
    _connection("http_connections_refused_total", COUNTER,
                "HTTP connections closed at accept: every slot busy with a request (limit), "
                "or no descriptor left (descriptors).", "reason"),
    _connection("http_connections_timed_out_total", COUNTER,
                "HTTP connections closed at a deadline, by phase (headers: TLS handshake and "
                "request headers; write: the response; idle: between requests).", "phase"),
    _connection("http_connections_evicted_total", COUNTER,
                "Waiting HTTP connections closed early to make room for a new one, by phase.",
                "phase"),
    _connection("http_requests_rejected_total", COUNTER,
                "HTTP requests answered 503 or 400 without being served, by reason "
                "(max_requests, auth_queue, bad_request).", "reason"),
    _connection("exporter_build_info", GAUGE, "Always 1; the exporter's version as a label.",
                "version"),
)

SPECS_BY_NAME: dict[str, MetricSpec] = {spec.name: spec for spec in SPECS}


class Instruments:
    """The only metric objects: the two histograms, observed where the time is measured
    (``session`` the ping round trips, ``rest`` the REST calls)."""

    websocket_ping_rtt_seconds: Histogram
    api_request_duration_seconds: Histogram

    def __init__(self, registry: CollectorRegistry) -> None:
        self.websocket_ping_rtt_seconds = _histogram(
            SPECS_BY_NAME["websocket_ping_rtt_seconds"], registry)
        self.api_request_duration_seconds = _histogram(
            SPECS_BY_NAME["api_request_duration_seconds"], registry)


def _histogram(spec: MetricSpec, registry: CollectorRegistry) -> Histogram:
    return Histogram(spec.full_name, spec.help, spec.labels, registry=registry,
                     buckets=spec.buckets or Histogram.DEFAULT_BUCKETS)
