"""File-descriptor headroom: how many HTTP connections the open-files limit allows.

Every socket is a descriptor. If clients of the metrics port could take all of
them, the exporter could no longer open a WebSocket, make a REST call or resolve
a name: it would stop receiving market data and stop being able to say so. So at
start the soft ``RLIMIT_NOFILE`` is raised to the hard limit, and the HTTP side
gets only what is left after the descriptors already open and a reserve for the
exchange side; it refuses connections beyond that (``exporter.http``).

``plan`` is the pure computation; ``apply_descriptor_budget`` is the thin part
that reads and raises the limit.
"""

from __future__ import annotations

import logging
import os
import resource
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Descriptors kept free for the exchange side and the process itself: the WebSocket
# (1), REST keep-alive pools (up to 10 per host, 3 hosts), DNS look-ups on gevent's
# resolver threads (a socket each), certificate and /proc reads (ProcessCollector
# lists /proc/self/fd), with room to spare.
EXCHANGE_RESERVE = 64
# Connections accepted in one batch hold a descriptor each for a moment before they
# are refused or the connections closed to make room for them give theirs back; the
# HTTP server accepts at most this many per batch.
ACCEPT_HEADROOM = 16
# Below this the HTTP side would be useless; warn, but still serve a few.
MIN_HTTP_CONNECTIONS = 4
# When the hard limit is "unlimited", raise the soft limit this far at most (Linux
# refuses values above fs.nr_open, 1048576 by default).
UNLIMITED_TARGET = 1 << 20


@dataclass(frozen=True)
class DescriptorBudget:
    soft_limit: int
    in_use: int
    reserve: int
    http_connections: int  # the most HTTP connections the limit leaves room for

    @property
    def starved(self) -> bool:
        """True when the limit is too low to honour the reserve."""
        return self.soft_limit - self.in_use - self.reserve - ACCEPT_HEADROOM \
            < MIN_HTTP_CONNECTIONS


def target_soft_limit(soft: int, hard: int) -> int:
    """The soft limit to ask for: the hard limit (bounded when it is unlimited)."""
    if hard == resource.RLIM_INFINITY or hard < 0:
        return soft if soft == resource.RLIM_INFINITY else max(soft, UNLIMITED_TARGET)
    return max(soft, hard)


def plan(soft_limit: int, in_use: int, reserve: int = EXCHANGE_RESERVE) -> DescriptorBudget:
    """How many HTTP connections fit under *soft_limit* with *in_use* descriptors open
    and *reserve* kept for the exchange side."""
    room = soft_limit - in_use - reserve - ACCEPT_HEADROOM
    return DescriptorBudget(soft_limit, in_use, reserve, max(MIN_HTTP_CONNECTIONS, room))


def http_connection_limit(configured: int, budget: DescriptorBudget) -> int:
    """The effective limit: *configured* (0: none) capped by the descriptor budget."""
    if configured <= 0:
        return budget.http_connections
    return min(configured, budget.http_connections)


def _open_descriptors() -> int:
    for directory in ("/proc/self/fd", "/dev/fd"):
        try:
            return max(0, len(os.listdir(directory)) - 1)  # minus the listing's own
        except OSError:
            continue
    return 16  # no way to count: a typical start-up figure


def apply_descriptor_budget(reserve: int = EXCHANGE_RESERVE) -> DescriptorBudget:
    """Raise the soft open-files limit to the hard one and return the budget."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = target_soft_limit(soft, hard)
    if target != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError) as error:
            log.warning("could not raise the open-files limit from %d to %d: %s",
                        soft, target, error)
    if soft == resource.RLIM_INFINITY:
        soft = UNLIMITED_TARGET
    budget = plan(soft, _open_descriptors(), reserve)
    if budget.starved:
        log.warning("the open-files limit (%d) leaves almost nothing beside the %d descriptors "
                    "reserved for the exchange: at most %d HTTP connections; raise the limit",
                    soft, reserve, budget.http_connections)
    return budget
