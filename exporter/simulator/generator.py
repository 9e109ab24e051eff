"""The simulated clock and the generator greenlet that moves the world and sends
its events, paced at the configured rate while anybody is subscribed."""

from __future__ import annotations

import time

import gevent
from gevent.event import Event

from .hub import Hub
from .world import World

YIELD_EVERY = 64  # generator steps between yields to the hub when running flat out
CATCH_UP_LIMIT = 1.0  # seconds behind schedule after which pacing restarts from now
VIRTUAL_RATE = 1000.0  # events per simulated second for ``epoch`` when rate is 0


class Clock:
    """Unix seconds: the wall clock, or with ``epoch`` a simulated clock that
    advances with the events generated (so frames are reproducible)."""

    def __init__(self, epoch: int | None, rate: float) -> None:
        self._epoch = epoch
        self._rate = rate or VIRTUAL_RATE
        self.events_generated = 0

    def now(self) -> int:
        if self._epoch is None:
            return int(time.time())
        return self._epoch + int(self.events_generated / self._rate)


class Generator:
    """Markets move only while somebody is subscribed, so a fresh simulator's
    first frames depend on the seed alone."""

    def __init__(self, world: World, hub: Hub, clock: Clock, rate: float) -> None:
        self._world = world
        self._hub = hub
        self._clock = clock
        self._rate = rate
        self._subscribed = Event()
        self._running = Event()
        self._running.set()
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)

    def on_subscribed(self, _conn: object = None) -> None:
        self._subscribed.set()

    def pause(self) -> None:
        """Stop generating events (the step in progress, if any, is complete)."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def _run(self) -> None:
        rate = self._rate
        deadline = time.monotonic()
        steps_since_yield = 0
        while True:
            self._running.wait()
            if not self._hub.has_subscribers():
                self._subscribed.clear()
                self._subscribed.wait()
                deadline = time.monotonic()
                continue
            events = self._world.step(self._clock.now())
            self._clock.events_generated += len(events)
            for event in events:
                self._hub.deliver(event.channel, event.key, event.data)
            for conn in self._hub.connections:
                self._hub.wait_writable(conn)
            if rate > 0:
                deadline += max(1, len(events)) / rate
                delay = deadline - time.monotonic()
                if delay > 0:
                    gevent.sleep(delay)
                    steps_since_yield = 0
                    continue
                if delay < -CATCH_UP_LIMIT:
                    deadline = time.monotonic()
            steps_since_yield += 1
            if steps_since_yield >= YIELD_EVERY:
                gevent.sleep(0)
                steps_since_yield = 0
