"""Samples of frames the exporter saw but did not understand, for the user's bug report.

Every frame counted under a ``websocket_message_errors_total`` reason may be worth a
look, but a feed that sends nothing else must not flood the log. ``FrameSamples``
decides, per reason, whether this frame is logged: the first ``first`` frames, then
at most one per ``every`` seconds (on an injected monotonic clock). The sample is at
most ``max_bytes`` bytes, secrets redacted, and escaped so it pastes verbatim into a
bug report and ``unescape`` turns it back into the exact bytes the exchange sent:

- a backslash is written ``\\\\``; newline, carriage return and tab ``\\n``, ``\\r``, ``\\t``;
- any other character that is not printable ``\\uNNNN`` (or ``\\UNNNNNNNN``);
- a byte that is not part of valid UTF-8 ``\\xNN``.

Pure: no I/O, no logging; the caller logs the line at WARNING.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Protocol

FIRST_SAMPLES = 5
SAMPLE_EVERY_SECONDS = 600.0
MAX_SAMPLE_BYTES = 512

_SHORT_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNESCAPE = re.compile(r"\\(?:x([0-9a-f]{2})|u([0-9a-f]{4})|U([0-9a-f]{8})|(.))", re.DOTALL)
_SHORT_UNESCAPES = {"\\": "\\", "n": "\n", "r": "\r", "t": "\t"}


class Redacts(Protocol):
    """What is needed of exporter.logs.Redactor."""

    def redact(self, text: str) -> str: ...


def escape_char(char: str) -> str:
    """One character of a frame as it is written in a sample."""
    short = _SHORT_ESCAPES.get(char)
    if short is not None:
        return short
    if char.isprintable():
        return char
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def escape(text: str) -> str:
    """The whole ``text`` (decoded with surrogateescape) as one printable line."""
    return "".join(escape_char(char) for char in text)


def unescape(sample: str) -> bytes:
    """The bytes a sample that was not cut stands for (the inverse of ``escape``)."""
    out = bytearray()
    position = 0
    for match in _UNESCAPE.finditer(sample):
        out += sample[position:match.start()].encode("utf-8")
        raw, short, long, other = match.groups()
        if raw is not None:
            out.append(int(raw, 16))
        elif short is not None or long is not None:
            out += chr(int(short or long, 16)).encode("utf-8", "surrogatepass")
        elif other in _SHORT_UNESCAPES:
            out += _SHORT_UNESCAPES[other].encode("utf-8")
        else:
            raise ValueError(f"not a sample escape: \\{other}")
        position = match.end()
    out += sample[position:].encode("utf-8")
    return bytes(out)


def render(frame: bytes | bytearray | str, redactor: Redacts,
           max_bytes: int = MAX_SAMPLE_BYTES) -> tuple[str, bool]:
    """(the sample, whether it was cut): redacted, escaped, at most ``max_bytes`` bytes.

    The whole frame is redacted before it is cut, so a secret that straddles the cut
    cannot leave half of itself in the sample. The cut falls between two escaped
    characters, never inside a character or an escape.
    """
    text = (frame.decode("utf-8", "surrogateescape") if isinstance(frame, bytes | bytearray)
            else frame)
    text = redactor.redact(text)
    pieces: list[str] = []
    size = 0
    for char in text:
        piece = escape_char(char)
        piece_size = len(piece) if piece.isascii() else len(piece.encode("utf-8"))
        if size + piece_size > max_bytes:
            return "".join(pieces), True
        pieces.append(piece)
        size += piece_size
    return "".join(pieces), False


class _Budget:
    __slots__ = ("last", "not_shown", "shown")

    def __init__(self) -> None:
        self.shown = 0
        self.last = 0.0
        self.not_shown = 0


class FrameSamples:
    """Per reason: log the first ``first`` frames, then at most one per ``every`` seconds.

    Reasons are the bounded ``websocket_message_errors_total`` label values, so the
    state kept here is bounded too.
    """

    def __init__(
        self,
        redactor: Redacts,
        *,
        first: int = FIRST_SAMPLES,
        every: float = SAMPLE_EVERY_SECONDS,
        max_bytes: int = MAX_SAMPLE_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if first < 0 or every < 0 or max_bytes < 1:
            raise ValueError("first and every must be >= 0 and max_bytes >= 1")
        self.redactor = redactor
        self.first = first
        self.every = every
        self.max_bytes = max_bytes
        self.clock = clock
        self._budgets: dict[str, _Budget] = {}

    def due(self, reason: str) -> bool:
        """Whether this reason's next frame is sampled; counts it either way."""
        budget = self._budgets.get(reason)
        if budget is None:
            budget = self._budgets[reason] = _Budget()
        now = self.clock()
        if budget.shown < self.first or now - budget.last >= self.every:
            budget.shown += 1
            budget.last = now
            return True
        budget.not_shown += 1
        return False

    def take(self, reason: str, frame: bytes | bytearray | str, detail: str = "") -> str | None:
        """The WARNING line for this frame, or None when the reason's samples are spent.

        ``detail`` is the parser's short description (ProtocolError.detail), never frame text.
        """
        if not self.due(reason):
            return None
        budget = self._budgets[reason]
        not_shown, budget.not_shown = budget.not_shown, 0
        sample, cut = render(frame, self.redactor, self.max_bytes)
        size = (len(frame) if isinstance(frame, bytes | bytearray)
                else len(frame.encode("utf-8", "surrogatepass")))
        what = f" ({detail})" if detail else ""
        if budget.shown <= self.first:
            which = f"sample {budget.shown} of the first {self.first}"
        else:
            which = f"{not_shown} more since the last sample"
        shape = f"{size} bytes, cut to {self.max_bytes}" if cut else f"{size} bytes"
        return (f"frame not understood, reason {reason}{what}; {which}, then at most one per "
                f"{self.every:g} s; {shape}, secrets redacted, escaped: {sample}")

    def not_shown(self, reason: str) -> int:
        """Frames of this reason not sampled since its last sample."""
        budget = self._budgets.get(reason)
        return budget.not_shown if budget else 0
