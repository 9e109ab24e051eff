"""Logging set-up: text, JSON or logfmt lines, with secrets redacted from every record.

Secrets (API key, request signature, one-time tokens) are registered with the
``Redactor`` as soon as they exist; a filter on the root handler replaces them,
and any ``token=...`` query parameter, before a record is formatted.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

import gevent
import orjson

REDACTED = "<redacted>"
_TOKEN_PARAM = re.compile(r"(token=)[^&\s\"']+", re.IGNORECASE)
_KEEP_TOKENS = 64
LOG_FORMATS = ("text", "json", "logfmt")
# logfmt uses the level names of Prometheus' own logs (go-kit log).
_LOGFMT_LEVELS = {"DEBUG": "debug", "INFO": "info", "WARNING": "warn", "ERROR": "error",
                  "CRITICAL": "error"}
_LOGFMT_BARE = re.compile(r'^[^\x00-\x20="\\\x7f]+$')
_LOGFMT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_LOGFMT_CONTROL = re.compile(r'[\x00-\x1f\x7f"\\]')



class Redactor(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self._fixed: set[str] = set()
        self._tokens: deque[str] = deque(maxlen=_KEEP_TOKENS)

    def add(self, secret: str | None, *, rotating: bool = False) -> None:
        if not secret or len(secret) < 4:
            return
        if rotating:
            self._tokens.append(secret)
        else:
            self._fixed.add(secret)

    def redact(self, text: str) -> str:
        text = _TOKEN_PARAM.sub(r"\1" + REDACTED, text)
        for secret in (*self._fixed, *self._tokens):
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
            record.exc_info = None
            record.exc_text = None
        record.msg = self.redact(message)
        record.args = None
        return True


class RedactingStream:
    """A text stream that redacts every write before passing it to ``target()``.

    For output that does not go through logging: tracebacks gevent prints for a
    greenlet that died, and Python's report of an uncaught exception. ``target``
    is looked up at each write, so a replaced ``sys.stderr`` is honoured.
    """

    def __init__(self, redactor: Redactor, target: Callable[[], Any]) -> None:
        self.redactor = redactor
        self.target = target

    def write(self, text: str) -> int:
        return self.target().write(self.redactor.redact(text))

    def flush(self) -> None:
        self.target().flush()


def install_crash_redaction(redactor: Redactor) -> None:
    """Route crash output (dead greenlets, uncaught exceptions) through ``redactor``.

    Called once by the process entry point; in-process tests keep their own streams.
    """
    stream = RedactingStream(redactor, lambda: sys.stderr)
    gevent.get_hub().exception_stream = stream

    def excepthook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        stream.write("".join(traceback.format_exception(kind, value, tb)))
        stream.flush()

    sys.excepthook = excepthook


class _UtcFormatter(logging.Formatter):
    converter = time.gmtime

    def timestamp(self, record: logging.LogRecord) -> str:
        """RFC 3339 in UTC with milliseconds, as Prometheus writes ``ts``."""
        return self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z"


class JsonFormatter(_UtcFormatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        return orjson.dumps(entry).decode()


def logfmt_value(value: str) -> str:
    """A logfmt value: bare when it can be, else double-quoted with Go-style escapes."""
    if _LOGFMT_BARE.match(value):
        return value
    return '"' + _LOGFMT_CONTROL.sub(_logfmt_escape, value) + '"'


def _logfmt_escape(match: re.Match[str]) -> str:
    char = match.group()
    return _LOGFMT_ESCAPES.get(char) or f"\\u{ord(char):04x}"


class LogfmtFormatter(_UtcFormatter):
    """One ``key=value`` line per record, like Prometheus' own logs::

        ts=2026-01-02T03:04:05.678Z level=info caller=session.py:88 logger=exporter.session \
        msg="subscribed"

    A traceback stays on the same line (newlines escaped), so a line is always a record.
    """

    def format(self, record: logging.LogRecord) -> str:
        fields = (
            ("ts", self.timestamp(record)),
            ("level", _LOGFMT_LEVELS.get(record.levelname, record.levelname.lower())),
            ("caller", f"{record.filename}:{record.lineno}"),
            ("logger", record.name),
            ("msg", record.getMessage()),
        )
        return " ".join(f"{key}={logfmt_value(value)}" for key, value in fields)


def _formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter()
    if fmt == "logfmt":
        return LogfmtFormatter()
    if fmt == "text":
        return logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise ValueError(f"unknown log format {fmt!r}; expected one of {', '.join(LOG_FORMATS)}")


def setup_logging(level: str, fmt: str, redactor: Redactor, stream: Any = None) -> None:
    formatter = _formatter(fmt)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(redactor)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("urllib3", "websocket"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
