"""One frame in: decode it, apply an update event, hand a reply to the session.

``FrameHandler.handle`` is the one function every received message goes through.
Update events go to their channel's route (``channels.routes``: parse, apply,
count); replies to our own requests (pongs, acks, errors) go to the session's
``on_reply``. A frame that breaks the protocol is counted in
``websocket_message_errors_total{reason}`` and skipped; nothing else changes.
A bug in an apply function costs one frame, never the connection. The first
frames of each reason, then one per reason every ten minutes, are logged at
WARNING with a redacted sample of what the exchange sent (``samples.FrameSamples``):
this is the one place that still holds the raw frame when it is counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from . import channels, protocol
from .samples import FrameSamples
from .state.link import INTERNAL_ERROR, count_message, first_internal_error, reject_frame
from .state.model import State

log = logging.getLogger(__name__)


class FrameHandler:
    def __init__(
        self,
        state: State,
        *,
        on_reply: Callable[[protocol.Response], None],
        on_resync: Callable[[str, str | None], None],
        table: Iterable[channels.Channel] = channels.CHANNELS,
        clock: Callable[[], float] = time.time,
        samples: FrameSamples | None = None,
    ) -> None:
        table = tuple(table)
        self.link = state.link
        self.routes = channels.routes(state, table, on_resync)
        self.message_labels = channels.message_labels(table)
        self.on_reply = on_reply
        self.clock = clock
        self.samples = samples
        self.last_frame_time = 0.0  # Unix time the last frame arrived (the keepalive's clock)

    def handle(self, frame: bytes | str) -> None:
        now = self.last_frame_time = self.clock()
        try:
            message = protocol.decode(frame)
            method = message.get("method")
            route = self.routes.get(method) if type(method) is str else None
            if route is not None:
                route(message, now)
                return
            if protocol.is_response(method):
                response = protocol.parse_response(message)
                label = method or "ack"
                count_message(self.link, label if label in self.message_labels else "other", now)
                self.on_reply(response)
                return
            raise protocol.ProtocolError(protocol.UNKNOWN_METHOD, "method not in the protocol")
        except protocol.ProtocolError as error:
            self._reject(frame, error.reason, error.detail, now)
        except Exception as error:  # a bug must cost one frame, never the connection
            if first_internal_error(self.link, INTERNAL_ERROR):  # the traceback once, then counts
                log.exception("internal error handling a frame")
            self._reject(frame, INTERNAL_ERROR, type(error).__name__, now)

    def _reject(self, frame: bytes | str, reason: str, detail: str, now: float) -> None:
        samples = self.samples
        if samples is None:
            reject_frame(self.link, reason, detail, now)
            return
        reject_frame(self.link, reason, detail, now, logged=False)
        line = samples.take(reason, frame, detail)
        if line is not None:
            log.warning("%s", line)
