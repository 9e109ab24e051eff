"""The simulator: composes its parts (each given only what it needs) behind one
object with the in-process API the tests use, on one loopback port serving the
REST hosts and the WebSocket (optionally over TLS).

Two feeds: the generator moving a seeded :class:`World`, or (``config.replay``)
a recording replayed to each client.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from types import TracebackType
from typing import Protocol

import gevent
from gevent.server import StreamServer
from wsproto.connection import Connection

from .account import Account
from .config import SimulatorConfig
from .connection import WsConnection
from .control import CONTROL_PREFIX, ControlPlane
from .dispatch import BookReloads, Dispatcher
from .faults import Faults
from .generator import Clock, Generator
from .hub import Hub
from .market import Market
from .replay import RecordingSummary, ReplayFeed, scan
from .replies import Reply
from .rest import ExchangeRest, TokenStore
from .server import HttpHandler, server_ssl_context
from .stats import Stats
from .world import World


class Feed(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def on_subscribed(self, conn: WsConnection) -> None: ...


class Simulator:
    """A protocol-faithful fake Cryptomus exchange on one loopback port."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        """Raises ``ValueError`` for a malformed replay recording (naming its line)
        or unusable TLS files, ``OSError`` for a recording that cannot be opened."""
        self.config = config = config or SimulatorConfig()
        self.stats = Stats()
        self.hub = Hub(self.stats)
        self.clock = Clock(config.epoch, config.rate)
        self._ssl_context = (
            server_ssl_context(config.tls_cert, config.tls_key)
            if config.tls_cert and config.tls_key
            else None
        )
        self.world: World | None = None
        self.recording: RecordingSummary | None = None
        if config.replay:
            self.recording = scan(config.replay)
            catalog, account, books = self.recording.catalog, Account(), {}
        else:
            self.world = world = World(config, self.clock.now())
            catalog, account, books = world.catalog, world.account, world.markets
        self.catalog, self._account, self._books = catalog, account, books
        self.faults = Faults(
            self.hub,
            self.stats,
            books,
            self.clock.now,
            ack_failure_channels=config.ack_failure_channels,
        )
        self.feed: Feed
        reloads = None
        if self.recording is not None:
            self.feed = ReplayFeed(self.recording, config.replay_speed, self.hub, self.stats)
        else:
            self.feed = Generator(world, self.hub, self.clock, config.rate)
            reloads = BookReloads(
                books,
                self.faults.take_partial_before_reload,
                self.clock.now,
                stats=self.stats,
                late_book=config.late_book,
            )
        self.dispatcher = Dispatcher(
            catalog,
            self.stats,
            config,
            on_subscribed=self.feed.on_subscribed,
            send_reloads=reloads,
            acks_fail=self.faults.acks_fail,
        )
        self.rest = ExchangeRest(
            catalog,
            account,
            tokens=TokenStore(config.token_ttl),
            faults=self.faults,
            stats=self.stats,
            user_id=config.user_id,
            api_key=config.api_key,
        )
        self.control = ControlPlane(self.faults, self.stats, self.hub, self.feed)
        self._server: StreamServer | None = None
        self._greenlets: list[gevent.Greenlet] = []
        self._stopped = False

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> Simulator:
        """Bind and start serving; returns at once. Calling it again does nothing."""
        if self._server is not None:
            return self
        config = self.config
        handler = HttpHandler(
            route=self._route,
            faults=self.faults,
            tokens=self.rest.tokens,
            hub=self.hub,
            stats=self.stats,
            open_connection=self._open_connection,
            ssl_context=self._ssl_context,
        )
        self._server = StreamServer((config.host, config.port), handler)
        self._server.start()
        self._greenlets.append(gevent.spawn(self.hub.sweep_idle, config.idle_timeout))
        if config.autogen or config.replay:
            self.feed.start()
        return self

    def stop(self) -> None:
        """Close every connection (close frame 1001) and the listener. Idempotent."""
        if self._server is None or self._stopped:
            return
        self._stopped = True
        gevent.killall(self._greenlets, block=False)
        self.feed.stop()
        self.hub.close_all()
        self._server.stop(timeout=1)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _route(
        self, method: str, target: str, headers: dict[str, str], body: bytes, peer_host: str
    ) -> Reply:
        part = self.control if target.startswith(CONTROL_PREFIX) else self.rest
        return part.route(method, target, headers, body, peer_host)

    def _open_connection(self, sock: socket.socket, ws: Connection, token: str) -> WsConnection:
        return WsConnection(
            sock,
            ws,
            token,
            stats=self.stats,
            max_buffer_bytes=self.config.max_buffer_bytes,
            is_silent=self.faults.is_silent,
            on_request=self.dispatcher.handle,
        )

    # --- addresses and state ----------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("simulator not started")
        return self._server.server_port

    @property
    def _authority(self) -> str:
        host = self.config.host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{'https' if self.config.tls else 'http'}://{self._authority}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.config.tls else 'ws'}://{self._authority}/ws"

    @property
    def markets(self) -> list[str]:
        return list(self.catalog.symbols)

    @property
    def account(self) -> Account:
        return self._account

    @property
    def connections(self) -> int:
        return len(self.hub.connections)

    @property
    def tokens_seen(self) -> list[str]:
        return self.hub.tokens_seen

    def market(self, symbol: str) -> Market:
        market = self._books.get(symbol)
        if market is None:
            raise ValueError(f"unknown market {symbol!r}")
        return market

    def now(self) -> int:
        """Unix seconds of the simulated clock (wall clock unless ``epoch`` is set)."""
        return self.clock.now()

    def open_connections(self) -> list[WsConnection]:
        return self.hub.open_connections()

    # --- switches of a running simulator (see Faults) -----------------------------------

    def set_ack_failure(self, channels: str | Sequence[str]) -> None:
        """From now on subscribes to these channels are answered with ``data.status``
        "failure" (``()``: none); ``config.ack_failure_channels`` is the initial set."""
        self.faults.fail_acks(channels)

    def fail_scale_lists(self, markets: str | Sequence[str], status: int = 404) -> None:
        """From now on ``/api/v2/symbol-scales`` answers ``status`` for these markets."""
        self.faults.fail_scales(markets if isinstance(markets, str) else ",".join(markets), status)

    def restore_scale_lists(self) -> None:
        """Every market's scale list is served again (the failing acks stay)."""
        self.faults.restore_scales()

    # --- sending and pacing (see Hub and Generator) -------------------------------------

    def push(
        self, channel: str, data: object, *, event_id: object = None, method: str | None = None
    ) -> int:
        return self.hub.push(channel, data, event_id=event_id, method=method)

    def push_raw(self, payload: bytes | str) -> int:
        return self.hub.push_raw(payload)

    def blast(self, frames: Sequence[bytes], repeat: int = 1) -> int:
        return self.hub.blast(frames, repeat)

    def pause(self) -> None:
        self.feed.pause()

    def resume(self) -> None:
        self.feed.resume()
