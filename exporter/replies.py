"""Our requests on one connection and the replies that answer them.

Requests (subscribe, unsubscribe) wait for their acknowledgement by id; a reply
whose id we do not know (acks may carry id 0 and no method) goes to the oldest
request of the same method, or to the oldest of any method when it has none.
Pings wait for their pongs by id; a pong whose id is 0, missing or not one of our
pings answers the oldest ping still waiting (the exchange may always send id 0), so
it is never mistaken for a lost pong. The round trip is observed through ``on_rtt``.
A reply that answers nothing goes to ``on_unexpected``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gevent.event import AsyncResult

from .protocol import Response


class Replies:
    def __init__(self, *, on_rtt: Callable[[float], object],
                 on_unexpected: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.on_rtt = on_rtt
        self.on_unexpected = on_unexpected
        self.clock = clock
        self._pending: dict[int, tuple[str, AsyncResult]] = {}
        self._pings: dict[int, float] = {}  # request id -> monotonic time sent

    def expect(self, request_id: int, method: str) -> AsyncResult:
        """The reply to a request about to be sent, once it arrives."""
        result = AsyncResult()
        self._pending[request_id] = (method, result)
        return result

    def ping_sent(self, request_id: int) -> None:
        self._pings[request_id] = self.clock()

    def oldest_ping_age(self) -> float | None:
        """Seconds the oldest unanswered ping has waited, or None."""
        return self.clock() - min(self._pings.values()) if self._pings else None

    def match(self, response: Response) -> None:
        if response.method == "pong":
            pings = self._pings
            sent = pings.pop(response.request_id, None) if response.request_id else None
            if sent is None and pings:
                sent = pings.pop(next(iter(pings)))  # the oldest: ids only grow
            if sent is not None:
                self.on_rtt(self.clock() - sent)
            return
        entry = self._pending.pop(response.request_id, None) if response.request_id else None
        if entry is None:
            entry = self._oldest_pending(response.method)
        if entry is None:
            self.on_unexpected("reply to no pending request")
            return
        entry[1].set(response)

    def _oldest_pending(self, method: str | None) -> tuple[str, AsyncResult] | None:
        for request_id, (pending_method, _) in self._pending.items():
            if method is None or method == pending_method:
                return self._pending.pop(request_id)
        return None

    def fail_all(self, error: BaseException) -> None:
        """The connection closed: every request still waiting fails with ``error``."""
        for _, result in self._pending.values():
            if not result.ready():
                result.set_exception(error)
