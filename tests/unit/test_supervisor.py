"""The reconnect loop with scripted sessions and a recording clock: exact delays."""

from __future__ import annotations

from gevent.event import Event
from prometheus_client import CollectorRegistry

from exporter import channels, collectors
from exporter.backoff import Backoff
from exporter.health import Health
from exporter.session import ConnectFailure
from exporter.supervisor import Supervisor


class RecordingStop(Event):
    """A stop event whose waits return at once and are recorded (the fake clock)."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout=None):
        self.waits.append(timeout)
        return self.is_set()


class ScriptedSession:
    """Plays one outcome: a ConnectFailure stage, or a disconnect reason."""

    def __init__(self, outcome: str, stop: Event, last: bool) -> None:
        self.outcome, self.stop, self.last = outcome, stop, last

    def run(self) -> str:
        if self.last:
            self.stop.set()
        if self.outcome in ("token", "connect", "subscribe"):
            raise ConnectFailure(self.outcome, "scripted")
        return self.outcome

    def close(self, reason: str) -> None:
        self.stop.set()


def run_script(outcomes: list[str], reset_after: float = 1e9):
    registry = CollectorRegistry()
    state = channels.new_state()
    collectors.register(registry, state, version="test", process=False)
    stop = RecordingStop()
    script = iter(enumerate(outcomes))

    def next_session():
        index, outcome = next(script)
        return ScriptedSession(outcome, stop, last=index == len(outcomes) - 1)

    supervisor = Supervisor(
        next_session, state=state, health=Health(10, lambda: 0.0),
        backoff=Backoff(1, 8, rand=lambda: 1.0), backoff_reset_after=reset_after,
        stale_after=300, stop=stop)
    supervisor.run()
    return registry, stop.waits


def test_failures_back_off_exponentially_up_to_the_cap():
    registry, waits = run_script(["token"] * 6 + ["connect"])
    assert waits == [1, 2, 4, 8, 8, 8]
    assert registry.get_sample_value("cryptomus_websocket_connect_failures_total",
                                     {"stage": "token"}) == 6
    assert registry.get_sample_value("cryptomus_websocket_reconnect_backoff_seconds") == 8


def test_disconnects_are_counted_by_reason():
    registry, _ = run_script(["server_closed", "idle_timeout", "server_closed", "shutdown"])
    value = registry.get_sample_value
    assert value("cryptomus_websocket_disconnects_total", {"reason": "server_closed"}) == 2
    assert value("cryptomus_websocket_disconnects_total", {"reason": "idle_timeout"}) == 1


def test_a_lost_connection_is_a_warning_and_our_own_shutdown_is_not(caplog):
    caplog.set_level("INFO", logger="exporter.supervisor")
    run_script(["server_closed", "shutdown"])
    levels = {record.getMessage().split(" after")[0]: record.levelname
              for record in caplog.records if record.getMessage().startswith("disconnected")}
    assert levels == {"disconnected (server_closed)": "WARNING", "disconnected (shutdown)": "INFO"}


def test_a_healthy_connection_resets_the_backoff():
    _, waits = run_script(["token", "token", "server_closed", "token", "shutdown"],
                          reset_after=0)
    assert waits == [1, 2, 1, 2]


def test_a_short_lived_connection_keeps_backing_off():
    _, waits = run_script(["token", "token", "server_closed", "token", "shutdown"])
    assert waits == [1, 2, 4, 8]
