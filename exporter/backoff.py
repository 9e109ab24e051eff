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
