"""The state model and the write side: the only code that changes the state.

``model`` defines the state (plain data); ``market`` and ``account`` hold the
channels' apply functions and the REST reconciliation; ``link`` records frames and
the connection's life. The collectors (``exporter/collectors/``) only read it.
"""

from __future__ import annotations

import time
from typing import Any

from .. import protocol
from .account import CURRENCY_LIMIT
from .link import CONNECT_STAGES, DISCONNECT_REASONS, INTERNAL_ERROR, UNEXPECTED_REPLY
from .market import MARKET_LIMIT, RESYNC_REASONS, UNEXPECTED_MARKET, UNSUBSCRIBED_SCALE
from .model import Account, Link, MarketData, State

# Label values of websocket_message_errors_total.
ERROR_REASONS = (*protocol.ERROR_REASONS, UNEXPECTED_MARKET, MARKET_LIMIT, CURRENCY_LIMIT,
                 UNEXPECTED_REPLY, INTERNAL_ERROR, UNSUBSCRIBED_SCALE)


def new_state(*, subscribed: tuple[str, ...], update_channels: tuple[str, ...],
              markets: tuple[str, ...] | None = None, max_markets: int = 1000,
              depth_bands: tuple[float, ...] = (0.005, 0.01, 0.02), depth_scale: int = 0,
              resync_min_interval: float = 5.0, extra: dict[str, Any] | None = None,
              now: float | None = None) -> State:
    """An empty state; ``subscribed``: the channels configured (their series start at 0)."""
    created = time.time() if now is None else now
    return State(
        MarketData(configured=markets, max_markets=max_markets, depth_bands=depth_bands,
                   update_channels=update_channels, depth_scale=depth_scale,
                   resync_min_interval=resync_min_interval),
        Account(max_currencies=max_markets),
        Link(channels=subscribed, error_reasons=ERROR_REASONS,
             disconnect_reasons=DISCONNECT_REASONS, connect_stages=CONNECT_STAGES,
             created=created),
        extra,
    )


__all__ = ["ERROR_REASONS", "RESYNC_REASONS", "State", "new_state"]
