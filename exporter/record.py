"""``cryptomus-exporter record``: capture what the exchange sends, for a bug report,
a regression test or a benchmark on real traffic.

The recorder is the exporter without its metrics port: the same configuration, the
same supervisor and sessions (token, connect, scale check, subscribe, keep-alive,
resyncs, reconnects), with a tap that writes every message received, in order, to a
recording (``recording.RecordingWriter``: one JSON line per frame, gzip when the file
ends in ``.gz``). ``cryptomus-exporter simulate --replay FILE`` serves it back.

Secrets never reach the file: each frame goes through the log redactor (the API key,
the signature and every token the session fetched) before it is written. The exchange
does not echo them, so this changes nothing in practice, and if it ever did the file
would hold ``<redacted>`` instead.
"""

from __future__ import annotations

import logging
import signal

import gevent
from gevent.event import Event

from .app import Exporter
from .logs import Redactor
from .recording import RecordingWriter
from .settings import Settings

log = logging.getLogger(__name__)


class FrameRecorder:
    """The session's frame tap: redact, then append to the recording."""

    def __init__(self, writer: RecordingWriter, redactor: Redactor) -> None:
        self.writer = writer
        self.redactor = redactor

    def __call__(self, frame: bytes | str) -> None:
        text = frame.decode("utf-8", "replace") if isinstance(frame, bytes | bytearray) else frame
        self.writer.write(self.redactor.redact(text))


def record(settings: Settings, redactor: Redactor, output: str,
           seconds: float | None = None, stop: Event | None = None) -> int:
    """Record until ``seconds`` have passed, SIGINT/SIGTERM, or ``stop`` is set; 0 when
    the file is complete. Raises ``OSError`` when ``output`` cannot be created."""
    stop = stop or Event()
    with RecordingWriter(output, flush_seconds=1.0) as writer:
        exporter = Exporter(settings, redactor=redactor, serve_http=False,
                            frame_tap=FrameRecorder(writer, redactor))
        handlers = [gevent.signal_handler(signum, stop.set)
                    for signum in (signal.SIGTERM, signal.SIGINT)]
        log.info("recording to %s%s", output,
                 f" for {seconds:g} s" if seconds is not None else " until interrupted")
        try:
            exporter.start()
            stop.wait(seconds)
        finally:
            exporter.stop()
            for handler in handlers:
                handler.cancel()
        log.info("recorded %d frames to %s", writer.frames_written, output)
    return 0
