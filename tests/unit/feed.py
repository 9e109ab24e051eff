"""The exporter's write and read sides without a socket: frames in, a registry out."""

from __future__ import annotations

import orjson
from prometheus_client import CollectorRegistry

from exporter import channels, collectors, protocol
from exporter.frames import FrameHandler


class Feed:
    def __init__(self, now: float, **state_options) -> None:
        self.now = now  # every frame's arrival time
        self.registry = CollectorRegistry()
        self.state = channels.new_state(now=now, **state_options)
        collectors.register(self.registry, self.state, version="test", process=False)
        self.resubscribed: list[str] = []  # channels the apply functions asked to renew
        self.resync_markets: list[str | None] = []  # ... and the market whose data broke
        self.replies: list[protocol.Response] = []
        self.frames = FrameHandler(self.state, on_reply=self.replies.append,
                                   on_resync=self._resync, clock=lambda: now)

    def _resync(self, channel: str, market: str | None) -> None:
        self.resubscribed.append(channel)
        self.resync_markets.append(market)

    def handle(self, frame: bytes | str) -> protocol.Response | None:
        """Handle one frame; the reply it carried, if any."""
        before = len(self.replies)
        self.frames.handle(frame)
        return self.replies[-1] if len(self.replies) > before else None

    def send(self, method: str, data, frame_id=0) -> protocol.Response | None:
        return self.handle(
            orjson.dumps({"id": frame_id, "method": method, "data": data, "error": None}))

    def value(self, name: str, **labels) -> float | None:
        return self.registry.get_sample_value(f"cryptomus_{name}", labels)
