"""Which markets to subscribe for depth, given each market's depth scale list (pure).

A depth subscription names a scale: ``"MARKET:scale_index"``. The exchange lists each
market's scales at ``{CRYPTOMUS_SCALES_API_URL}/api/v2/symbol-scales?symbol=X``
(``RestClient.scales_of`` fetches them). A market whose list lacks the configured
``CRYPTOMUS_DEPTH_SCALE`` is not subscribed for depth, with one log line naming the
market and the scales it has; a market whose list could not be fetched is subscribed
unchecked (a REST failure must not cost the user a book the exchange may well serve).

With ``markets=all``:
- scale 0: depth is subscribed as ``["all"]`` and nothing is checked. ``all`` is the
  documented form; checking would cost one REST call per market of the exchange at every
  start, and frames of another scale that ``all`` may deliver are kept apart by their
  ``scale_index`` (issue 13, item 1).
- another scale: ``["all"]`` cannot name a scale, so the market list is expanded (sorted,
  at most ``max_markets``) and checked like a configured list.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import NamedTuple

MAX_LINES_PER_KIND = 10


class DepthPlan(NamedTuple):
    subscribe: tuple[str, ...]  # markets to subscribe as MARKET:scale, in the given order
    missing: tuple[tuple[str, tuple[int, ...]], ...]  # (market, the scale indices it has)
    unchecked: tuple[str, ...]  # scales not fetched: subscribed anyway
    log_lines: tuple[str, ...]  # WARNING lines, one per market up to a bound, then a summary


def depth_markets(configured: Sequence[str] | None, scale: int,
                  known_markets: Collection[str], max_markets: int) -> tuple[str, ...] | None:
    """The markets whose scales to check for depth; None: subscribe ``["all"]`` unchecked.

    ``configured`` is None for ``markets=all``; ``known_markets`` is the exchange's market
    list (empty when it could not be fetched: then there is nothing to subscribe yet).
    """
    if configured is not None:
        return tuple(configured)
    if scale == 0:
        return None
    return tuple(sorted(known_markets))[:max_markets]


def describe_scales(scales: Mapping[int, float]) -> str:
    """``0 (0.01), 1 (0.1)``: each index with the price step it aggregates to."""
    return ", ".join(f"{index} ({scales[index]:g})" for index in sorted(scales))


def plan_depth(markets: Sequence[str], scale: int,
               fetched: Mapping[str, Mapping[int, float] | Exception],
               max_lines: int = MAX_LINES_PER_KIND) -> DepthPlan:
    """Split ``markets`` by whether their fetched scale list has ``scale``.

    ``fetched[market]`` is the market's scales (index -> step) or the error its fetch
    ended with; a market absent from ``fetched`` counts as not fetched.
    """
    subscribe: list[str] = []
    missing: list[tuple[str, tuple[int, ...]]] = []
    unchecked: list[str] = []
    missing_lines: list[str] = []
    unchecked_lines: list[str] = []
    for market in dict.fromkeys(markets):
        result = fetched.get(market)
        if result is None or isinstance(result, Exception):
            subscribe.append(market)
            unchecked.append(market)
            why = str(result) if result is not None else "not fetched"
            unchecked_lines.append(f"cannot check the depth scales of {market} ({why}); "
                                   f"subscribing {market}:{scale} unchecked")
        elif scale in result:
            subscribe.append(market)
        else:
            missing.append((market, tuple(sorted(result))))
            has = f"its scales are {describe_scales(result)}" if result else "it lists no scales"
            missing_lines.append(f"depth scale {scale} does not exist for {market}: {has}; "
                                 f"not subscribing depth for {market}")
    lines = _bounded(missing_lines, max_lines,
                     f"more markets lack depth scale {scale} (not subscribed)")
    lines += _bounded(unchecked_lines, max_lines,
                      "more markets' depth scales could not be checked (subscribed unchecked)")
    if not subscribe:
        lines.append(f"no market to subscribe depth scale {scale} for: depth is not subscribed"
                     if markets else "no market is known yet: depth is not subscribed")
    return DepthPlan(tuple(subscribe), tuple(missing), tuple(unchecked), tuple(lines))


def _bounded(lines: list[str], max_lines: int, rest: str) -> list[str]:
    if len(lines) <= max_lines:
        return lines
    return [*lines[:max_lines], f"... and {len(lines) - max_lines} {rest}"]
