"""Writes the Grafana dashboards in this directory: ``python dashboards/generate.py``.

The JSON files are generated so that every panel follows the same rules (datasource
variable, unit, legend, job/instance filter); edit this file, not the JSON.
tests/rules/test_dashboards.py fails when the JSON differs from what this file produces.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SCHEMA_VERSION = 39
GRID_WIDTH = 24
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# `cluster` is optional: a Prometheus with one cluster has no such label, every series has
# cluster="" and the All value ".*" matches it.
CLUSTER_SELECTOR = 'cluster=~"$cluster"'
SELECTOR = f'{CLUSTER_SELECTOR}, job=~"$job", instance=~"$instance"'
MARKET_SELECTOR = f'{SELECTOR}, market=~"$market"'
CURRENCY_SELECTOR = f'{SELECTOR}, currency=~"$currency"'
# Matches the default of CryptomusSpreadWide (alerts/cryptomus-exporter.rules.yml).
SPREAD_RATIO_ALERT = 0.02

GREEN, YELLOW, RED = "green", "yellow", "red"
# grafana.com-style import: Grafana asks for a Prometheus data source and writes it where
# ${DS_PROMETHEUS} appears (the datasource variable's initial value). Provisioned as is,
# Grafana finds no such data source and falls back to the default one.
DS_INPUT = "DS_PROMETHEUS"
MIN_GRAFANA = "10.4.0"  # schemaVersion 39
PANEL_NAMES = {"stat": "Stat", "timeseries": "Time series"}


def thresholds(*steps: tuple[float | None, str]) -> dict:
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for value, color in steps],
    }


UP_DOWN = thresholds((None, RED), (1, GREEN))


def or_zero(expr: str, *labels: str) -> str:
    """``expr``, or one zero series labelled "none" when ``expr`` has no series.

    For counters whose labelled series only appear with the first event (disconnects,
    failures, resyncs): the panel then shows 0 instead of "No data".
    """
    fallback = "vector(0)"
    for label in labels:
        fallback = f'label_replace({fallback}, "{label}", "none", "", "")'
    return f"{expr} or on () {fallback}"


def per_minute(series: str, by: str) -> str:
    """Events per minute, summed by ``by``.

    A rate, not ``increase(...[$__rate_interval])``: that window is longer than the step
    between points, so neighbouring points would count the same event twice.
    """
    return f"60 * sum by ({by}) (rate({series}[$__rate_interval]))"


def target(expr: str, legend: str) -> dict:
    return {"expr": expr, "legendFormat": legend}


def _panel(kind: str, title: str, description: str, unit: str, targets: list[dict], *,
           width: int, height: int, defaults: dict, options: dict) -> dict:
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "width": width,
        "height": height,
        "fieldConfig": {"defaults": {"unit": unit, **defaults}, "overrides": []},
        "options": options,
        "targets": [
            {
                "refId": chr(ord("A") + index),
                "datasource": DATASOURCE,
                "editorMode": "code",
                "range": True,
                **spec,
            }
            for index, spec in enumerate(targets)
        ],
    }


def timeseries(title: str, description: str, unit: str, *targets: dict, width: int = 12,
               height: int = 8, steps: dict | None = None, stepped: bool = False,
               minimum: float | None = None) -> dict:
    custom = {
        "drawStyle": "line",
        "lineInterpolation": "stepAfter" if stepped else "linear",
        "lineWidth": 1,
        "fillOpacity": 10,
        "showPoints": "never",
        "spanNulls": False,
        "thresholdsStyle": {"mode": "line" if steps else "off"},
    }
    defaults = {
        "color": {"mode": "palette-classic"},
        "custom": custom,
        "thresholds": steps or thresholds((None, GREEN)),
    }
    if minimum is not None:
        defaults["min"] = minimum
    options = {
        "legend": {"displayMode": "table", "placement": "right", "showLegend": True,
                   "calcs": ["lastNotNull", "max"]},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return _panel("timeseries", title, description, unit, list(targets), width=width,
                  height=height, defaults=defaults, options=options)


def stat(title: str, description: str, unit: str, *targets: dict, width: int = 4,
         height: int = 4, steps: dict | None = None, mappings: list | None = None,
         text_mode: str = "auto") -> dict:
    defaults = {
        "color": {"mode": "thresholds"},
        "thresholds": steps or thresholds((None, GREEN)),
        "mappings": mappings or [],
    }
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "background",
        "graphMode": "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "textMode": text_mode,
    }
    return _panel("stat", title, description, unit, list(targets), width=width,
                  height=height, defaults=defaults, options=options)


def value_text(*pairs: tuple[int, str, str]) -> list[dict]:
    return [{
        "type": "value",
        "options": {str(value): {"text": text, "color": color, "index": index}
                    for index, (value, text, color) in enumerate(pairs)},
    }]


def row(title: str) -> dict:
    return {"type": "row", "title": title}


def layout(items: list[dict]) -> list[dict]:
    """Numbers panels and places them left to right, wrapping at the grid width."""
    placed: list[dict] = []
    x = y = line_height = 0
    for panel_id, item in enumerate(items, start=1):
        panel = {"id": panel_id, **item}
        if panel["type"] == "row":
            y += line_height
            panel.update(collapsed=False, panels=[],
                         gridPos={"h": 1, "w": GRID_WIDTH, "x": 0, "y": y})
            x, y, line_height = 0, y + 1, 0
        else:
            width, height = panel.pop("width"), panel.pop("height")
            if x + width > GRID_WIDTH:
                x, y, line_height = 0, y + line_height, 0
            panel["gridPos"] = {"h": height, "w": width, "x": x, "y": y}
            x, line_height = x + width, max(line_height, height)
        placed.append(panel)
    return placed


def query_variable(name: str, label: str, query: str, *, multi: bool) -> dict:
    variable = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        # A plain string: every Grafana version reads it (newer ones migrate it on load).
        # No "definition": Grafana's dashboard schema has no such field (the UI adds it).
        "query": query,
        "refresh": 2,
        "regex": "",
        "sort": 1,
        "hide": 0,
        "multi": multi,
        "includeAll": multi,
        "current": {},
        "options": [],
    }
    if multi:
        variable["allValue"] = ".*"
    return variable


def variables(*extra: dict) -> list[dict]:
    return [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "regex": "",
            "hide": 0,
            "multi": False,
            "includeAll": False,
            "current": {"text": f"${{{DS_INPUT}}}", "value": f"${{{DS_INPUT}}}"},
            "options": [],
            "refresh": 1,
        },
        query_variable("cluster", "Cluster",
                       "label_values(cryptomus_exporter_build_info, cluster)", multi=True),
        query_variable("job", "Job",
                       f"label_values(cryptomus_exporter_build_info{{{CLUSTER_SELECTOR}}}, job)",
                       multi=False),
        query_variable("instance", "Instance",
                       f'label_values(cryptomus_exporter_build_info{{{CLUSTER_SELECTOR}, '
                       f'job=~"$job"}}, instance)',
                       multi=True),
        query_variable("market", "Market",
                       f"label_values(cryptomus_last_price{{{SELECTOR}}}, market)", multi=True),
        *extra,
    ]


def import_header(panels: list[dict]) -> dict:
    """``__inputs`` and ``__requires``, as Grafana's "Export for sharing externally" writes."""
    panel_types = sorted({panel["type"] for panel in panels if panel["type"] != "row"})
    return {
        "__inputs": [{
            "name": DS_INPUT,
            "label": "Prometheus",
            "description": "Prometheus scraping cryptomus-exporter",
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }],
        "__elements": {},
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": MIN_GRAFANA},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            *({"type": "panel", "id": kind, "name": PANEL_NAMES[kind], "version": ""}
              for kind in panel_types),
        ],
    }


def dashboard(uid: str, title: str, description: str, items: list[dict],
              extra_variables: tuple[dict, ...] = ()) -> dict:
    panels = layout(items)
    return {
        **import_header(panels),
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["cryptomus", "cryptomus-exporter"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "weekStart": "",
        "annotations": {"list": [{
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        }]},
        "links": [{
            "type": "dashboards",
            "title": "Cryptomus",
            "tags": ["cryptomus"],
            "asDropdown": False,
            "includeVars": True,
            "keepTime": True,
        }],
        "templating": {"list": variables(*extra_variables)},
        "panels": panels,
    }


def health() -> dict:
    return dashboard(
        "cryptomus-health",
        "Cryptomus exporter / Connection health",
        "The exporter's scrape target, WebSocket session, message flow, pings and REST calls.",
        [
            row("Overview"),
            stat("Scrape target up", "Prometheus scrape of the exporter (up).", "none",
                 target(f"up{{{SELECTOR}}}", "{{instance}}"),
                 steps=UP_DOWN,
                 mappings=value_text((0, "Down", RED), (1, "Up", GREEN))),
            stat("WebSocket connected", "1 while connected and subscribed.", "none",
                 target(f"cryptomus_websocket_connected{{{SELECTOR}}}", "{{instance}}"),
                 steps=UP_DOWN,
                 mappings=value_text((0, "Disconnected", RED), (1, "Connected", GREEN))),
            stat("Connected for", "Age of the current connection; 0 while disconnected.", "s",
                 target(f"(time() - cryptomus_websocket_connected_since_timestamp_seconds"
                        f"{{{SELECTOR}}}) * cryptomus_websocket_connected{{{SELECTOR}}}",
                        "{{instance}}"),
                 steps=thresholds((None, RED), (1, GREEN))),
            stat("Last message age", "Seconds since any frame arrived (the idle timeout "
                 "reconnects at 90 s by default).", "s",
                 target(f"time() - cryptomus_websocket_last_message_timestamp_seconds"
                        f"{{{SELECTOR}}}", "{{instance}}"),
                 steps=thresholds((None, GREEN), (60, YELLOW), (90, RED))),
            stat("Reconnect backoff", "Delay before the next reconnection attempt.", "s",
                 target(f"cryptomus_websocket_reconnect_backoff_seconds{{{SELECTOR}}}",
                        "{{instance}}"),
                 steps=thresholds((None, GREEN), (1, YELLOW), (60, RED))),
            stat("Exporter version", "cryptomus_exporter_build_info.", "none",
                 target(f"cryptomus_exporter_build_info{{{SELECTOR}}}", "{{version}}"),
                 text_mode="name"),
            row("WebSocket"),
            timeseries("Connects", "Successful connections per minute.", "cpm",
                       target(per_minute(f"cryptomus_websocket_connects_total{{{SELECTOR}}}",
                                         "cluster, instance"), "{{instance}}"),
                       width=8, minimum=0),
            timeseries("Disconnects by reason", "Disconnections per minute; \"none\" when "
                       "there were none.", "cpm",
                       target(or_zero(per_minute(
                           f"cryptomus_websocket_disconnects_total{{{SELECTOR}}}", "reason"),
                           "reason"), "{{reason}}"),
                       width=8, minimum=0),
            timeseries("Connect failures by stage", "Failed attempts per minute, by stage "
                       "(token, connect, subscribe).", "cpm",
                       target(or_zero(per_minute(
                           f"cryptomus_websocket_connect_failures_total{{{SELECTOR}}}", "stage"),
                           "stage"), "{{stage}}"),
                       width=8, minimum=0),
            timeseries("Messages by method", "Frames received per second, by method.", "ops",
                       target(f"sum by (method) (rate(cryptomus_websocket_messages_total"
                              f"{{{SELECTOR}}}[$__rate_interval]))", "{{method}}"),
                       minimum=0),
            timeseries("Message errors by reason", "Frames counted and skipped per second.",
                       "ops",
                       target(or_zero(f"sum by (reason) (rate("
                                      f"cryptomus_websocket_message_errors_total{{{SELECTOR}}}"
                                      f"[$__rate_interval]))", "reason"), "{{reason}}"),
                       minimum=0),
            timeseries("Ping RTT", "Ping -> pong round trip over 5 minutes (pings are sparse: "
                       "one every 50 s by default). CryptomusPingRttHigh fires at p99 > 1 s.",
                       "s",
                       *[target(f"histogram_quantile({q}, sum by (le) (rate("
                                f"cryptomus_websocket_ping_rtt_seconds_bucket{{{SELECTOR}}}"
                                f"[5m])))", f"p{round(q * 100)}") for q in (0.5, 0.9, 0.99)],
                       target(f"sum(rate(cryptomus_websocket_ping_rtt_seconds_sum{{{SELECTOR}}}"
                              f"[5m])) / sum(rate(cryptomus_websocket_ping_rtt_seconds_count"
                              f"{{{SELECTOR}}}[5m]))", "mean"),
                       width=8, steps=thresholds((None, GREEN), (0.5, YELLOW), (1, RED))),
            timeseries("Reconnect backoff", "Delay before the next reconnection attempt.", "s",
                       target(f"cryptomus_websocket_reconnect_backoff_seconds{{{SELECTOR}}}",
                              "{{instance}}"),
                       width=8, stepped=True, minimum=0),
            timeseries("Last message age", "Seconds since any frame arrived. "
                       "CryptomusWebsocketNoMessages fires above 180 s while connected.", "s",
                       target(f"time() - cryptomus_websocket_last_message_timestamp_seconds"
                              f"{{{SELECTOR}}}", "{{instance}}"),
                       width=8, steps=thresholds((None, GREEN), (90, YELLOW), (180, RED)),
                       minimum=0),
            row("Subscriptions and feed"),
            timeseries("Subscribed channels", "1 per channel subscribed on the current "
                       "connection.", "none",
                       target(f"cryptomus_websocket_subscriptions{{{SELECTOR}}}",
                              "{{instance}} {{channel}}"),
                       width=8, stepped=True, minimum=0),
            timeseries("Subscribe failures by channel", "Subscriptions rejected per minute.",
                       "cpm",
                       target(or_zero(per_minute(
                           f"cryptomus_websocket_subscribe_failures_total{{{SELECTOR}}}",
                           "channel"), "channel"), "{{channel}}"),
                       width=8, minimum=0),
            timeseries("Oldest market data by channel", "Age of the least recently updated "
                       "selected market, per channel. CryptomusMarketDataStale fires above "
                       "900 s (lastprice, ticker, depth).", "s",
                       target(f"max by (channel) (time() - "
                              f"cryptomus_market_last_update_timestamp_seconds{{{MARKET_SELECTOR}}})",
                              "{{channel}}"),
                       width=8, steps=thresholds((None, GREEN), (300, YELLOW), (900, RED)),
                       minimum=0),
            row("REST API"),
            timeseries("REST calls by endpoint and code", "REST calls per second.", "reqps",
                       target(f"sum by (endpoint, code) (rate(cryptomus_api_requests_total"
                              f"{{{SELECTOR}}}[$__rate_interval]))", "{{endpoint}} {{code}}"),
                       minimum=0),
            timeseries("REST latency by endpoint", "p50 and p99 over 15 minutes (empty while "
                       "an endpoint had no call: most are called only on connect and every "
                       "reconcile interval), and the mean since the exporter started.", "s",
                       *[target(f"histogram_quantile({q}, sum by (endpoint, le) (rate("
                                f"cryptomus_api_request_duration_seconds_bucket{{{SELECTOR}}}"
                                f"[15m])))", f"{{{{endpoint}}}} p{round(q * 100)}")
                         for q in (0.5, 0.99)],
                       target(f"sum by (endpoint) (cryptomus_api_request_duration_seconds_sum"
                              f"{{{SELECTOR}}}) / sum by (endpoint) ("
                              f"cryptomus_api_request_duration_seconds_count{{{SELECTOR}}})",
                              "{{endpoint}} mean since start"),
                       minimum=0),
            row("Metrics endpoint"),
            timeseries("HTTP connections", "Open connections to the metrics port against the "
                       "limit (the smaller of --web.max-connections and what the open-files "
                       "limit leaves after the exchange side's reserve).", "short",
                       target(f"sum by (instance) (cryptomus_http_connections_open{{{SELECTOR}}})",
                              "{{instance}} open"),
                       target(f"min by (instance) (cryptomus_http_connections_limit"
                              f"{{{SELECTOR}}})", "{{instance}} limit"),
                       minimum=0),
            timeseries("HTTP connections refused, timed out, evicted; requests rejected",
                       "Per minute. Non-zero outside a load test means a client holds the "
                       "port open without finishing requests, or scrapes exceed "
                       "--web.max-requests (see SECURITY.md).", "short",
                       target(per_minute(f"cryptomus_http_connections_refused_total{{{SELECTOR}}}",
                                         "reason"), "refused {{reason}}"),
                       target(per_minute(
                           f"cryptomus_http_connections_timed_out_total{{{SELECTOR}}}", "phase"),
                           "timed out {{phase}}"),
                       target(per_minute(
                           f"cryptomus_http_connections_evicted_total{{{SELECTOR}}}", "phase"),
                           "evicted {{phase}}"),
                       target(per_minute(f"cryptomus_http_requests_rejected_total{{{SELECTOR}}}",
                                         "reason"), "rejected {{reason}}"),
                       minimum=0),
        ],
    )


def markets() -> dict:
    return dashboard(
        "cryptomus-markets",
        "Cryptomus exporter / Markets",
        "Prices, 24 h statistics, order books, public trades and data freshness per market.",
        [
            row("Prices"),
            timeseries("Last price", "Last traded price, in quote currency.", "none",
                       target(f"cryptomus_last_price{{{MARKET_SELECTOR}}}", "{{market}}")),
            timeseries("24 h change", "Ticker price change over 24 h.", "percentunit",
                       target(f"cryptomus_ticker_price_change_ratio{{{MARKET_SELECTOR}}}",
                              "{{market}}")),
            timeseries("24 h open / high / low", "Ticker statistics, in quote currency.",
                       "none",
                       *[target(f"cryptomus_ticker_{kind}_price{{{MARKET_SELECTOR}}}",
                                f"{{{{market}}}} {kind}") for kind in ("open", "high", "low")]),
            timeseries("24 h volume (base currency)", "Ticker volume in base currency.",
                       "short",
                       target(f"cryptomus_ticker_base_volume{{{MARKET_SELECTOR}}}", "{{market}}"),
                       width=6, minimum=0),
            timeseries("24 h volume (quote currency)", "Ticker volume in quote currency.",
                       "short",
                       target(f"cryptomus_ticker_quote_volume{{{MARKET_SELECTOR}}}", "{{market}}"),
                       width=6, minimum=0),
            row("Order book"),
            timeseries("Best bid / ask", "From the local order book, in quote currency.", "none",
                       target(f"cryptomus_orderbook_best_bid_price{{{MARKET_SELECTOR}}}",
                              "{{market}} bid"),
                       target(f"cryptomus_orderbook_best_ask_price{{{MARKET_SELECTOR}}}",
                              "{{market}} ask")),
            timeseries("Spread", "Best ask minus best bid, in quote currency.", "none",
                       target(f"cryptomus_orderbook_spread{{{MARKET_SELECTOR}}}", "{{market}}"),
                       width=6, minimum=0),
            timeseries("Spread ratio", "Spread divided by the mid price. The line is the "
                       "default CryptomusSpreadWide threshold (per-market overrides may "
                       "differ).", "percentunit",
                       target(f"cryptomus_orderbook_spread_ratio{{{MARKET_SELECTOR}}}",
                              "{{market}}"),
                       width=6, steps=thresholds((None, GREEN), (SPREAD_RATIO_ALERT, RED)),
                       minimum=0),
            timeseries("Depth within band of mid", "Base quantity resting within the band "
                       "(a ratio of the mid price) on each side.", "short",
                       target(f"cryptomus_orderbook_depth{{{MARKET_SELECTOR}}}",
                              "{{market}} {{side}} ±{{band}}"),
                       width=8, minimum=0),
            timeseries("Order book levels", "Price levels per side in the local book.", "short",
                       target(f"cryptomus_orderbook_levels{{{MARKET_SELECTOR}}}",
                              "{{market}} {{side}}"),
                       width=4, minimum=0),
            timeseries("Order book resyncs", "Books dropped and reloaded per minute; "
                       "\"none\" when there were none.", "cpm",
                       target(or_zero(per_minute(
                           f"cryptomus_orderbook_resyncs_total{{{MARKET_SELECTOR}}}",
                           "market, reason"), "market", "reason"),
                              "{{market}} {{reason}}"),
                       width=4, minimum=0),
            timeseries("Order book resync backoff", "How long a market's next resync must "
                       "wait after its last one: it doubles (up to 5 min) while the book keeps "
                       "breaking right after each reload; 0 when healthy. "
                       "CryptomusOrderbookResyncBackoff fires at 60 s for 15 min.", "s",
                       target(f"max by (market) (cryptomus_orderbook_resync_backoff_seconds"
                              f"{{{MARKET_SELECTOR}}})", "{{market}}"),
                       width=4, steps=thresholds((None, GREEN), (60, YELLOW)), minimum=0),
            timeseries("Depth scale missing", "1 while the configured depth scale "
                       "(CRYPTOMUS_DEPTH_SCALE) is not in the market's scale list: depth is not "
                       "subscribed for it (the start-up log names the scales it has).", "none",
                       target(f"max by (market) (cryptomus_orderbook_scale_missing"
                              f"{{{MARKET_SELECTOR}}})", "{{market}}"),
                       width=4, steps=thresholds((None, GREEN), (1, RED)), stepped=True,
                       minimum=0),
            row("Public trades"),
            timeseries("Trades by side", "Public trades per second, by taker side.", "ops",
                       target(f"sum by (market, side) (rate(cryptomus_trades_total"
                              f"{{{MARKET_SELECTOR}}}[$__rate_interval]))", "{{market}} {{side}}"),
                       width=8, minimum=0),
            timeseries("Traded volume by side (base currency / s)",
                       "Public traded volume in base currency per second.", "short",
                       target(f"sum by (market, side) (rate(cryptomus_traded_base_volume_total"
                              f"{{{MARKET_SELECTOR}}}[$__rate_interval]))", "{{market}} {{side}}"),
                       width=8, minimum=0),
            timeseries("Traded volume by side (quote currency / s)",
                       "Public traded volume in quote currency per second.", "short",
                       target(f"sum by (market, side) (rate(cryptomus_traded_quote_volume_total"
                              f"{{{MARKET_SELECTOR}}}[$__rate_interval]))", "{{market}} {{side}}"),
                       width=8, minimum=0),
            row("Freshness"),
            timeseries("Data age by channel", "Seconds since the last update per market and "
                       "channel. CryptomusMarketDataStale fires above 900 s for lastprice, "
                       "ticker and depth; quiet markets have old trade data.", "s",
                       target(f"time() - cryptomus_market_last_update_timestamp_seconds"
                              f"{{{MARKET_SELECTOR}}}", "{{market}} {{channel}}"),
                       width=24, steps=thresholds((None, GREEN), (300, YELLOW), (900, RED)),
                       minimum=0),
        ],
    )


def account() -> dict:
    currency = query_variable(
        "currency", "Currency",
        f"label_values(cryptomus_balance{{{SELECTOR}}}, currency)", multi=True)
    return dashboard(
        "cryptomus-account",
        "Cryptomus exporter / Account",
        "The account's balances, open orders, order events, fills and fees.",
        [
            row("Balances"),
            timeseries("Available balance", "Available balance by currency.", "none",
                       target(f"cryptomus_balance{{{CURRENCY_SELECTOR}}}", "{{currency}}")),
            timeseries("Held in open orders", "Balance held in open orders by currency.",
                       "none",
                       target(f"cryptomus_balance_held{{{CURRENCY_SELECTOR}}}", "{{currency}}")),
            timeseries("Balance updates", "Balance update events per second.", "ops",
                       target(f"sum by (currency) (rate(cryptomus_balance_changes_total"
                              f"{{{CURRENCY_SELECTOR}}}[$__rate_interval]))", "{{currency}}"),
                       minimum=0),
            timeseries("Fees paid", "Fees paid on fills per minute, in the fee currency.",
                       "none",
                       target(per_minute(f"cryptomus_fees_total{{{CURRENCY_SELECTOR}}}",
                                         "currency"), "{{currency}}"),
                       minimum=0),
            row("Orders"),
            timeseries("Open orders", "The account's open orders by market and side.", "short",
                       target(f"sum by (market, side) (cryptomus_open_orders{{{MARKET_SELECTOR}}})",
                              "{{market}} {{side}}"),
                       width=8, stepped=True, minimum=0),
            timeseries("Order events", "Order events per second (created, updated, finished).",
                       "ops",
                       target(f"sum by (market, side, event) (rate(cryptomus_order_events_total"
                              f"{{{MARKET_SELECTOR}}}[$__rate_interval]))",
                              "{{market}} {{side}} {{event}}"),
                       width=8, minimum=0),
            timeseries("Finished orders by state", "Orders finished per minute, by final "
                       "state.", "cpm",
                       target(per_minute(f"cryptomus_orders_finished_total{{{MARKET_SELECTOR}}}",
                                         "market, side, state"),
                              "{{market}} {{side}} {{state}}"),
                       width=8, minimum=0),
            row("Fills"),
            timeseries("Fills by role", "Fills (deals) per second, maker or taker.", "ops",
                       target(f"sum by (market, role) (rate(cryptomus_fills_total"
                              f"{{{MARKET_SELECTOR}}}[$__rate_interval]))", "{{market}} {{role}}"),
                       width=8, minimum=0),
            timeseries("Filled volume by role (base currency / s)",
                       "Base quantity filled per second.", "short",
                       target(f"sum by (market, role) (rate(cryptomus_filled_base_volume_total"
                              f"{{{MARKET_SELECTOR}}}[$__rate_interval]))", "{{market}} {{role}}"),
                       width=8, minimum=0),
            timeseries("Filled volume by role (quote currency / s)",
                       "Quote value filled per second.", "short",
                       target(f"sum by (market, role) (rate(cryptomus_filled_quote_volume_total"
                              f"{{{MARKET_SELECTOR}}}[$__rate_interval]))", "{{market}} {{role}}"),
                       width=8, minimum=0),
        ],
        extra_variables=(currency,),
    )


def build() -> dict[str, dict]:
    """Every dashboard, by file name."""
    return {
        "cryptomus-health.json": health(),
        "cryptomus-markets.json": markets(),
        "cryptomus-account.json": account(),
    }


def render(dashboard_json: dict) -> str:
    return json.dumps(dashboard_json, indent=2, ensure_ascii=False) + "\n"


def main(directory: Path) -> None:
    for name, dashboard_json in build().items():
        (directory / name).write_text(render(dashboard_json), encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
