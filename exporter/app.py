"""Composition root: one registry, and everything wired to it.

``Exporter`` is what ``cryptomus-exporter run`` starts and what the integration
tests start in-process (with their own registry, against the simulator).
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import Event
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from . import __version__, channels, collectors
from .backoff import Backoff
from .depthscales import DepthScales
from .descriptors import apply_descriptor_budget
from .health import Health
from .http import http_limits, make_guard, make_server
from .httpapp import make_app
from .logs import Redactor, install_crash_redaction
from .rest import RestClient, sign
from .samples import FrameSamples
from .session import Session
from .settings import Settings
from .supervisor import Reconciler, Supervisor
from .webconfig import load_web_config

log = logging.getLogger(__name__)


class Exporter:
    def __init__(
        self,
        settings: Settings,
        *,
        registry: CollectorRegistry | None = None,
        redactor: Redactor | None = None,
        frame_tap: Callable[[bytes | str], None] | None = None,
        serve_http: bool = True,
    ) -> None:
        """``frame_tap`` sees every message received (``record``); ``serve_http=False``
        opens no metrics port (the state is kept all the same)."""
        self.simulator: Any = None
        if settings.demo:
            settings = self._start_demo_simulator(settings)
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self.redactor = redactor or Redactor()
        self.frame_tap = frame_tap
        self.stop_event = Event()
        api_key = settings.secret_api_key()
        self.redactor.add(api_key)
        self.redactor.add(sign(b"", api_key))  # the signature of every GET: as secret as the key
        self.samples = FrameSamples(self.redactor)  # one budget across reconnects
        self.state = channels.new_state(
            subscribed=settings.channels,
            markets=None if settings.all_markets else settings.markets,
            depth_bands=settings.depth_bands,
            depth_scale=settings.depth_scale,
            resync_min_interval=settings.resync_min_interval,
            max_markets=settings.max_markets,
        )
        guard = make_guard(http_limits(settings, apply_descriptor_budget()))
        self.instruments = collectors.register(self.registry, self.state, version=__version__,
                                               http=guard)
        link = self.state.link
        self.health = Health(settings.idle_timeout, lambda: link.last_event_time,
                             supervisor_alive=lambda: self.supervisor.alive())  # noqa: PLW0108 - built below
        self.rest = RestClient(
            link,
            self.instruments.api_request_duration_seconds,
            api_url=settings.api_url,
            market_api_url=settings.market_api_url,
            scales_api_url=settings.scales_api_url,
            user_id=settings.user_id,
            api_key=api_key,
            timeout=settings.request_timeout,
            wait=self.stop_event.wait,
        )
        # The scale lists fetched (kept for the exporter's life) decide the depth params.
        self.depth_scales = DepthScales(
            self.rest, self.state.markets,
            configured=None if settings.all_markets else settings.markets,
            scale=settings.depth_scale, max_markets=settings.max_markets)
        self.reconciler = Reconciler(
            self.rest,
            self.state,
            interval=settings.reconcile_interval,
            private=bool(settings.private_channels),
            stop=self.stop_event,
        )
        self.supervisor = Supervisor(
            self.new_session,
            state=self.state,
            health=self.health,
            backoff=Backoff(settings.backoff_min, settings.backoff_max),
            backoff_reset_after=settings.backoff_reset_after,
            stale_after=settings.stale_after,
            stop=self.stop_event,
        )
        web_config = load_web_config(str(settings.web_config_file)) \
            if settings.web_config_file else None
        self.server = make_server(
            settings.listen_address,
            make_app(self.registry, self.health, web_config, version=__version__, guard=guard),
            web_config,
            guard=guard,
        ) if serve_http else None

    def _start_demo_simulator(self, settings: Settings) -> Settings:
        from .simulator import Simulator, SimulatorConfig  # noqa: PLC0415 - only for --demo

        self.simulator = Simulator(SimulatorConfig(host="127.0.0.1", port=0))
        self.simulator.start()
        base = self.simulator.base_url
        log.info("demo mode: simulated exchange at %s", base)
        return settings.model_copy(update={
            "ws_url": self.simulator.ws_url,
            "api_url": base,
            "market_api_url": base,
            "scales_api_url": base,
            "user_id": self.simulator.config.user_id,
            "api_key": SecretStr(self.simulator.config.api_key),
        })

    def new_session(self) -> Session:
        settings = self.settings
        return Session(
            ws_url=settings.ws_url,
            channels=settings.channels,
            markets=None if settings.all_markets else settings.markets,
            depth_scale=settings.depth_scale,
            rest=self.rest,
            state=self.state,
            instruments=self.instruments,
            health=self.health,
            redactor=self.redactor,
            ping_interval=settings.ping_interval,
            pong_timeout=settings.pong_timeout,
            idle_timeout=settings.idle_timeout,
            subscribe_timeout=settings.subscribe_timeout,
            connect_timeout=settings.request_timeout,
            resync_min_interval=settings.resync_min_interval,
            on_established=self.reconciler.request,
            samples=self.samples,
            depth_scales=self.depth_scales,
            frame_tap=self.frame_tap,
        )

    @property
    def http_port(self) -> int:
        return self.server.server_port

    def start(self) -> None:
        if self.server is not None:
            self.server.start()
            log.info("serving /metrics on %s (port %d)", self.settings.listen_address,
                     self.http_port)
        if self.settings.depth_scale != 0 and self.settings.all_markets:
            self.reconciler.refresh_markets()  # depth params need the market list
        self.reconciler.start()
        self.supervisor.start()

    def stop(self) -> None:
        log.info("shutting down")
        self.supervisor.shutdown()
        if self.server is not None:
            self.server.stop(timeout=1)
        self.rest.close()
        if self.simulator is not None:
            self.simulator.stop()

    def serve_forever(self) -> int:
        """Run until SIGTERM or SIGINT; exit status 0 on a clean stop."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            gevent.signal_handler(signum, self.stop_event.set)
        install_crash_redaction(self.redactor)
        self.start()
        self.stop_event.wait()
        self.stop()
        return 0

