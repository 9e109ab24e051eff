"""The link's health: the WebSocket connection, frames, subscriptions, REST calls,
and the build info."""

from __future__ import annotations

from prometheus_client.core import Metric

from ..state.model import Link
from .families import TableCollector, add_counter, add_series, families


class ConnectionCollector(TableCollector):
    NAMES = ("websocket_connected", "websocket_connects_total", "websocket_disconnects_total",
             "websocket_connect_failures_total", "websocket_connected_since_timestamp_seconds",
             "websocket_last_message_timestamp_seconds", "websocket_messages_total",
             "websocket_message_errors_total", "websocket_subscriptions",
             "websocket_subscribe_failures_total", "websocket_reconnect_backoff_seconds",
             "api_requests_total", "exporter_build_info")

    def __init__(self, link: Link, version: str) -> None:
        self.link = link
        self.version = version

    def collect(self) -> list[Metric]:
        link = self.link
        result = families(self.NAMES)
        (connected, connects, disconnects, failures, since, last_message, messages, errors,
         subscriptions, subscribe_failures, backoff, api_requests, build_info) = result
        connected.add_metric([], 1.0 if link.connected else 0.0)
        add_series(connects, link.connects)
        since.add_metric([], link.connected_since)
        last_message.add_metric([], link.last_message_time)
        backoff.add_metric([], link.reconnect_backoff)
        build_info.add_metric([self.version], 1.0)
        for channel, value in list(link.subscriptions.items()):
            subscriptions.add_metric([channel], value)
        for metric, series in ((disconnects, link.disconnects), (failures, link.connect_failures),
                               (errors, link.errors),
                               (subscribe_failures, link.subscribe_failures),
                               (api_requests, link.api_requests)):
            for counter in list(series.values()):
                add_series(metric, counter)
        created = link.message_created
        for method, count in list(link.message_counts.items()):
            add_counter(messages, {"method": method}, count, created[method])
        return result
