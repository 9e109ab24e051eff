"""Keeps the feed alive: reconnect loop, staleness watchdog, REST reconciliation.

The supervisor runs one ``Session`` at a time. Between attempts it waits a
capped, fully jittered exponential backoff (exported as
``websocket_reconnect_backoff_seconds``); a connection that lived long enough
resets it. Every wait is an interruptible ``Event.wait`` so shutdown is instant.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import gevent
from gevent.event import Event

from .backoff import Backoff
from .health import Health
from .rest import RestClient, RestError
from .session import SHUTDOWN, ConnectFailure, Session
from .state import account, market
from .state import link as records
from .state.model import State

log = logging.getLogger(__name__)


class Supervisor:
    def __init__(
        self,
        session_factory: Callable[[], Session],
        *,
        state: State,
        health: Health,
        backoff: Backoff,
        backoff_reset_after: float,
        stale_after: float,
        stop: Event,
    ) -> None:
        self.session_factory = session_factory
        self.state = state
        self.health = health
        self.backoff = backoff
        self.backoff_reset_after = backoff_reset_after
        self.stale_after = stale_after
        self.stop = stop
        self.session: Session | None = None
        self._greenlets: list[gevent.Greenlet] = []

    def start(self) -> None:
        self._greenlets = [gevent.spawn(self.run), gevent.spawn(self.watch_staleness)]

    def alive(self) -> bool:
        """False once the reconnect loop has died (it never should): liveness."""
        return not self._greenlets or not self._greenlets[0].dead

    def shutdown(self, timeout: float = 5.0) -> None:
        self.stop.set()
        if self.session is not None:
            self.session.close(SHUTDOWN)
        gevent.joinall(self._greenlets, timeout=timeout)
        gevent.killall(self._greenlets, timeout=1)

    def run(self) -> None:
        while not self.stop.is_set():
            retry_after = None
            started = time.monotonic()
            try:
                self.session = session = self.session_factory()
                reason = session.run()
            except ConnectFailure as failure:
                records.connect_failed(self.state.link, failure.stage)
                log.warning("connection attempt failed at the %s stage: %s", failure.stage,
                            failure.detail)
                retry_after = failure.retry_after
            except Exception:
                # Session.run reports its own failures; this is the last line of
                # defence that keeps the reconnect loop (and liveness) alive.
                log.exception("connection attempt crashed")
            else:
                records.connection_ended(self.state.link, reason)
                lived = time.monotonic() - started
                level = logging.INFO if reason == SHUTDOWN else logging.WARNING
                log.log(level, "disconnected (%s) after %.0f s", reason, lived)
                if lived >= self.backoff_reset_after:
                    self.backoff.reset()
            finally:
                self.session = None
            if self.stop.is_set():
                return
            delay = self.backoff.next_delay(retry_after)
            records.backing_off(self.state.link, delay)
            log.info("reconnecting in %.1f s (attempt %d)", delay, self.backoff.attempt)
            self.stop.wait(delay)

    def watch_staleness(self) -> None:
        """Remove market gauges once the feed has been down for ``stale_after``."""
        tick = min(1.0, self.stale_after / 4)
        expired = False
        while not self.stop.wait(tick):
            down_for = self.health.disconnected_for()
            if not down_for:
                expired = False
            elif down_for > self.stale_after and not expired:
                market.expire(self.state)
                expired = True


class Reconciler:
    """Balances, open orders and the market list from REST: at every connect and
    every ``interval`` seconds (updates missed while disconnected are never replayed)."""

    def __init__(
        self,
        rest: RestClient,
        state: State,
        *,
        interval: float,
        private: bool,
        stop: Event,
    ) -> None:
        self.rest = rest
        self.state = state
        self.interval = interval
        self.private = private
        self.stop = stop
        self.wanted = Event()
        self.rounds = 0
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        self._greenlet = gevent.spawn(self.run)

    def request(self) -> None:
        self.wanted.set()

    def run(self) -> None:
        while not self.stop.is_set():
            self.wanted.wait(self.interval)
            self.wanted.clear()
            if self.stop.is_set():
                return
            try:
                self.reconcile_once()
            except Exception:
                log.exception("reconciliation crashed; trying again at the next round")

    def reconcile_once(self) -> None:
        self.refresh_markets()
        if self.private:
            try:
                account.reconcile_balances(self.state, self.rest.balances(), time.time())
                account.reconcile_open_orders(self.state, self.rest.open_orders(), time.time())
            except RestError as error:
                log.warning("reconciliation from REST failed: %s", error)
        self.rounds += 1

    def refresh_markets(self) -> None:
        try:
            account.set_known_markets(self.state, self.rest.markets())
        except RestError as error:
            log.warning("market list unavailable: %s", error)
