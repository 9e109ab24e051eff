"""Capped exponential backoff with jitter inside bounds (pure: no I/O, no sleeping).

Attempt ``n`` (0-based) may wait anywhere in ``[minimum, ceiling_n]`` where
``ceiling_n = min(maximum, minimum * factor ** n)``. The caller sleeps; this class
only says how long. ``reset()`` after a healthy period starts again from ``minimum``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable


class Backoff:
    """Delay policy for reconnects and REST retries."""

    __slots__ = ("_attempt", "_capped", "_ceiling", "_factor", "_maximum", "_minimum", "_rand")

    def __init__(
        self,
        minimum: float,
        maximum: float,
        factor: float = 2.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not (math.isfinite(minimum) and math.isfinite(maximum) and 0 < minimum <= maximum):
            raise ValueError(
                f"backoff bounds must satisfy 0 < minimum <= maximum, got {minimum!r}, {maximum!r}"
            )
        if not (math.isfinite(factor) and factor >= 1):
            raise ValueError(f"backoff factor must be a finite number >= 1, got {factor!r}")
        self._minimum = float(minimum)
        self._maximum = float(maximum)
        self._factor = float(factor)
        self._rand = rand
        self.reset()

    @property
    def attempt(self) -> int:
        """How many delays have been handed out since the last reset."""
        return self._attempt

    @property
    def ceiling(self) -> float:
        """Upper bound of the delay the next call to :meth:`next_delay` returns."""
        return self._ceiling

    def next_delay(self, retry_after: float | None = None) -> float:
        """Seconds to wait before the next attempt; advances the attempt counter.

        A ``retry_after`` the server asked for lengthens the delay, but never past
        ``maximum``: the server may slow us down, not stall us.
        """
        ceiling = self._ceiling
        delay = self._minimum + self._rand() * (ceiling - self._minimum)
        self._attempt += 1
        self._ceiling = self._ceiling_for(self._attempt)
        # A rand() outside [0, 1] must not push the delay out of its bounds.
        delay = min(ceiling, max(self._minimum, delay))
        if retry_after:
            delay = max(delay, min(retry_after, self._maximum))
        return delay

    def reset(self) -> None:
        """Start again from ``minimum`` (call after the connection has been healthy)."""
        self._attempt = 0
        self._capped = self._minimum >= self._maximum
        self._ceiling = self._maximum if self._capped else self._minimum

    def _ceiling_for(self, attempt: int) -> float:
        # The ceiling only grows, so once it reaches the cap it stays there and
        # factor ** attempt is never computed again (it would overflow eventually).
        if self._capped:
            return self._maximum
        try:
            ceiling = self._minimum * self._factor**attempt
        except OverflowError:
            ceiling = math.inf
        if ceiling >= self._maximum:
            self._capped = True
            return self._maximum
        return ceiling


RESYNC_BACKOFF_CAP = 300.0  # the longest wait between two resyncs of one market, seconds
RESYNC_BACKOFF_SEED = 1.0  # doubling starts from at least this, so a 0 minimum still backs off
RESYNC_HEALTHY_AFTER = 60.0  # a book healthy this long after its resync starts afresh


class _Episode:
    __slots__ = ("resync_at", "step")

    def __init__(self, resync_at: float, step: float) -> None:
        self.resync_at = resync_at  # when the market's last resync was scheduled to happen
        self.step = step  # how long after it the market's next resync must wait


class ResyncPolicy:
    """When each market's order book may be resynced, so a feed that keeps sending a crossed
    or unanchored book for one market cannot make the exporter resubscribe over and over.

    Per market: a resync with no recent one happens at once (but never sooner than
    ``min_interval`` after the channel's previous resync: a resync resubscribes the whole
    depth channel). A resync requested within ``healthy_after`` seconds of the market's
    previous one is a repeat: it waits ``min_interval`` after that one, and each further
    repeat waits twice as long as the last (from at least RESYNC_BACKOFF_SEED), up to
    ``cap``. A book that stays healthy for ``healthy_after`` seconds after its resync
    starts afresh. Pure: the caller passes ``now`` (a monotonic clock) and sleeps.
    """

    def __init__(
        self,
        min_interval: float,
        *,
        cap: float = RESYNC_BACKOFF_CAP,
        healthy_after: float = RESYNC_HEALTHY_AFTER,
        seed: float = RESYNC_BACKOFF_SEED,
    ) -> None:
        for name, value in (("min_interval", min_interval), ("cap", cap),
                            ("healthy_after", healthy_after), ("seed", seed)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        self.min_interval = float(min_interval)
        # A minimum interval above the cap is the user's choice: the cap follows it.
        self.cap = max(float(cap), self.min_interval)
        self.healthy_after = float(healthy_after)
        self.seed = min(float(seed), self.cap)
        self._episodes: dict[str, _Episode] = {}
        self._channel_resync_at = -math.inf

    def next_delay(self, market: str, now: float) -> float:
        """Seconds from ``now`` until the market's book may be resynced; the caller then
        resyncs. Asking again before that time returns the rest of the same wait."""
        episode = self._episodes.get(market)
        if episode is not None and now < episode.resync_at:
            return episode.resync_at - now
        due = max(now, self._channel_resync_at + self.min_interval)
        if episode is None or now - episode.resync_at >= self.healthy_after:
            step = self.min_interval
        else:
            due = max(due, episode.resync_at + episode.step)
            step = min(self.cap, max(2 * episode.step, self.seed))
        self._episodes[market] = _Episode(due, step)
        self._channel_resync_at = max(self._channel_resync_at, due)
        return due - now

    def healthy(self, market: str, now: float) -> None:
        """The market's book is fine at ``now``: once it has been for ``healthy_after``
        seconds since its last resync, its backoff starts afresh."""
        episode = self._episodes.get(market)
        if episode is not None and now - episode.resync_at >= self.healthy_after:
            del self._episodes[market]

    def backoff(self, market: str, now: float) -> float:
        """How long the market's next resync would wait after its last one: 0 when it has
        had no resync within ``healthy_after`` (the value of a gauge)."""
        episode = self._episodes.get(market)
        if episode is None or now - episode.resync_at >= self.healthy_after:
            return 0.0
        return episode.step

    def backoffs(self, now: float) -> dict[str, float]:
        """``backoff`` of every market that has one (a copy: reading it changes nothing)."""
        return {market: step for market in self._episodes
                if (step := self.backoff(market, now)) > 0}
