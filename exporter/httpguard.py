"""The limits that keep the metrics port from starving the exporter, and their books.

Pure: no sockets and no greenlets. ``exporter.http`` calls it at each step of a
connection's life and gives it a function that closes a connection; the clock is
injected, so the rules are tested with exact times.

A connection is in one of three phases, each with its own deadline, counted from
the moment it entered the phase (a client that trickles bytes does not move it):

- ``headers``: from accept until the request's headers are complete, the TLS
  handshake included (``read_header_timeout``);
- ``request``: from complete headers until the response is written
  (``write_timeout``): a client that does not read its response is cut off;
- ``idle``: a kept-alive connection between requests, until the next request's
  headers are complete (``idle_timeout``).

At most ``max_connections`` are open. A new connection over the limit closes the
waiting connection (``headers`` or ``idle``) that entered its phase first, so a
crowd of clients that connect and say nothing cannot lock a scraper out; when
every open connection is in a request, the new one is refused. At most
``max_requests`` requests are served at once; more get a prompt 503.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

HEADERS, REQUEST, IDLE = "headers", "request", "idle"
# Label values of the metrics (exporter.metrics) and words of the summary line.
TIMEOUT_PHASES = {HEADERS: "headers", REQUEST: "write", IDLE: "idle"}
REFUSE_LIMIT, REFUSE_DESCRIPTORS = "limit", "descriptors"
REFUSE_REASONS = (REFUSE_LIMIT, REFUSE_DESCRIPTORS)
REJECT_MAX_REQUESTS, REJECT_AUTH_QUEUE, REJECT_BAD_REQUEST = (
    "max_requests", "auth_queue", "bad_request")
REJECT_REASONS = (REJECT_MAX_REQUESTS, REJECT_AUTH_QUEUE, REJECT_BAD_REQUEST)
EVICTABLE_PHASES = (HEADERS, IDLE)

REFUSED, TIMED_OUT, EVICTED, REJECTED = "refused", "timed_out", "evicted", "rejected"
# Counted, but no sign of pressure: Prometheus scraping less often than the idle
# timeout leaves one such connection per scrape.
ROUTINE_EVENTS = frozenset({(TIMED_OUT, TIMEOUT_PHASES[IDLE])})
# Under attack, one summary line per this many seconds at most (the first at once).
SUMMARY_INTERVAL = 30.0


@dataclass(frozen=True)
class HttpLimits:
    max_requests: int = 40  # requests served at once; 0: no limit
    max_connections: int = 256  # open connections (already capped by the descriptor budget)
    read_header_timeout: float = 5.0
    write_timeout: float = 30.0
    idle_timeout: float = 20.0
    max_auth_queue: int = 4  # bcrypt checks waiting behind the one running

    def timeout(self, phase: str) -> float:
        return {HEADERS: self.read_header_timeout, REQUEST: self.write_timeout,
                IDLE: self.idle_timeout}[phase]

    @property
    def tick(self) -> float:
        """How often deadlines are checked: a fraction of the shortest one."""
        shortest = min(self.read_header_timeout, self.write_timeout, self.idle_timeout)
        return max(0.02, min(0.25, shortest / 4))


class Connection:
    """One open connection: its socket (opaque here), phase and deadline."""

    __slots__ = ("closing", "deadline", "phase", "since", "sock")

    def __init__(self, sock: Any, now: float, deadline: float) -> None:
        self.sock = sock
        self.phase = HEADERS
        self.since = now
        self.deadline = deadline
        # closed by the guard: whatever the socket still yields is not a request
        self.closing = False


class ConnectionGuard:
    def __init__(self, limits: HttpLimits, close: Callable[[Any], None], *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if limits.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.limits = limits
        self._close = close
        self._clock = clock
        self._open: dict[int, Connection] = {}
        self.in_flight = 0
        self.events: Counter[tuple[str, str]] = Counter()
        self._reported: Counter[tuple[str, str]] = Counter()
        self._next_report = 0.0

    # --- connections ----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._open)

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self._open.values()))

    def admit(self, sock: Any) -> Connection | None:
        """A new connection, or None when it was refused (the caller closes it)."""
        if len(self._open) >= self.limits.max_connections:
            waiting = [c for c in self._open.values() if c.phase in EVICTABLE_PHASES]
            if not waiting:
                self._record(REFUSED, REFUSE_LIMIT)
                return None
            oldest = min(waiting, key=lambda c: c.since)
            self._record(EVICTED, oldest.phase)
            self._drop(oldest)
        now = self._clock()
        connection = Connection(sock, now, now + self.limits.read_header_timeout)
        self._open[id(connection)] = connection
        return connection

    def headers_done(self, connection: Connection) -> None:
        self._enter(connection, REQUEST)

    def request_done(self, connection: Connection) -> None:
        self._enter(connection, IDLE)

    def release(self, connection: Connection) -> None:
        """The connection is closed (idempotent)."""
        self._open.pop(id(connection), None)

    def expire(self) -> int:
        """Close every connection past its deadline; how many."""
        now = self._clock()
        expired = [c for c in self._open.values() if c.deadline <= now]
        for connection in expired:
            self._record(TIMED_OUT, TIMEOUT_PHASES[connection.phase])
            self._drop(connection)
        return len(expired)

    def close_all(self) -> None:
        for connection in list(self._open.values()):
            self._drop(connection)

    def refused_for_descriptors(self) -> None:
        self._record(REFUSED, REFUSE_DESCRIPTORS)

    def _enter(self, connection: Connection, phase: str) -> None:
        now = self._clock()
        connection.phase = phase
        connection.since = now
        connection.deadline = now + self.limits.timeout(phase)

    def _drop(self, connection: Connection) -> None:
        connection.closing = True
        self._open.pop(id(connection), None)
        self._close(connection.sock)

    # --- requests -------------------------------------------------------------------

    def begin_request(self) -> bool:
        """True when the request may be served; False: answer 503 (counted)."""
        if self.limits.max_requests and self.in_flight >= self.limits.max_requests:
            self._record(REJECTED, REJECT_MAX_REQUESTS)
            return False
        self.in_flight += 1
        return True

    def end_request(self) -> None:
        self.in_flight -= 1

    def rejected(self, reason: str) -> None:
        self._record(REJECTED, reason)

    # --- books ----------------------------------------------------------------------

    def _record(self, event: str, label: str) -> None:
        self.events[(event, label)] += 1

    def report(self) -> str | None:
        """A summary of what happened since the last one, at most once per
        SUMMARY_INTERVAL (the first at once); None when there is nothing to say yet.
        Idle keep-alive connections timing out are routine and never start a report."""
        now = self._clock()
        pressure = Counter({key: n for key, n in self.events.items()
                            if key not in ROUTINE_EVENTS})
        if now < self._next_report or pressure == self._reported:
            return None
        delta = pressure - self._reported
        self._reported = pressure
        self._next_report = now + SUMMARY_INTERVAL
        return summary_line(delta, len(self._open), self.limits)


def summary_line(delta: Counter[tuple[str, str]], open_now: int, limits: HttpLimits) -> str:
    def part(event: str, what: str) -> str | None:
        counts = {label: n for (kind, label), n in sorted(delta.items()) if kind == event and n}
        if not counts:
            return None
        detail = ", ".join(f"{label} {n}" for label, n in counts.items())
        return f"{sum(counts.values())} {what} ({detail})"

    parts = [p for p in (part(REFUSED, "connections refused"),
                         part(TIMED_OUT, "timed out"),
                         part(EVICTED, "closed to make room"),
                         part(REJECTED, "requests rejected")) if p]
    return (f"HTTP port under pressure, since the last report: {'; '.join(parts)}; "
            f"{open_now} of {limits.max_connections} connections open "
            f"(next report in {SUMMARY_INTERVAL:.0f}s at most)")
