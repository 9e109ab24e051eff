"""Flags and environment for an exporter under reliability tests."""

from __future__ import annotations

FAST_FLAGS = (
    "--websocket.ping-interval", "0.3", "--websocket.pong-timeout", "0.5",
    "--websocket.idle-timeout", "1.5", "--websocket.subscribe-timeout", "1",
    "--websocket.backoff-min", "0.05", "--websocket.backoff-max", "0.2",
    "--collector.reconcile-interval", "0.5", "--cryptomus.request-timeout", "2",
)


def simulator_env(sim, api_key: str, ws_url: str | None = None) -> dict[str, str]:
    """Secrets through the environment, as the exporter requires (never a flag)."""
    return {
        "CRYPTOMUS_USER_ID": sim.config.user_id,
        "CRYPTOMUS_API_KEY": api_key,
        "CRYPTOMUS_WS_URL": ws_url or sim.ws_url,
        "CRYPTOMUS_API_URL": sim.base_url,
        "CRYPTOMUS_MARKET_API_URL": sim.base_url,
        "CRYPTOMUS_SCALES_API_URL": sim.base_url,
    }
