"""The read side: collectors, one per concern, the only code that turns the state
into metric families. ``register`` is the one place they (and the two histograms,
and the process metrics) are registered."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, ProcessCollector

from ..channels import CHANNELS, Channel
from ..httpguard import ConnectionGuard
from ..metrics import Instruments
from ..state.model import State
from .account import AccountCollector
from .connection import ConnectionCollector
from .http import HttpCollector
from .market import MarketCollector
from .orderbook import BookCollector


def register(registry: CollectorRegistry, state: State, *, version: str,
             table: Iterable[Channel] = CHANNELS, process: bool = True,
             http: ConnectionGuard | None = None) -> Instruments:
    """Register every collector of ``state`` (and of the metrics port's ``http`` guard)
    in ``registry``; return the instruments."""
    instruments = Instruments(registry)
    for collector in (MarketCollector(state.markets), BookCollector(state.markets),
                      AccountCollector(state.account), ConnectionCollector(state.link, version)):
        registry.register(collector)
    if http is not None:
        registry.register(HttpCollector(http))
    for channel in table:
        if channel.collector is not None:
            registry.register(channel.collector(state))
    if process:
        ProcessCollector(registry=registry)
    return instruments


__all__ = ["AccountCollector", "BookCollector", "ConnectionCollector", "HttpCollector",
           "MarketCollector", "register"]
