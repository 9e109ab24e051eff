"""RFC 6455 frames from a server, decoded incrementally: bytes in, messages out, no I/O.

``FrameDecoder.feed(chunk)`` takes whatever the socket returned, split anywhere;
``FrameDecoder.events(limit)`` returns what the buffered bytes complete, in order:

- a text message: its payload as ``bytes`` (UTF-8 is not checked here; the JSON parser
  rejects what is not text). Nearly every frame is one, so it is not wrapped;
- ``Binary(payload)``, ``Ping(payload)`` (the caller answers with a pong carrying the
  payload), ``Pong(payload)``, ``Close(code, reason)`` (``code`` None: the frame had no
  status; nothing is decoded after it);
- ``TooLarge(size)``: a message longer than ``max_message_bytes``, dropped as it
  arrives (the size is known from the headers, so its payload is never buffered).

Fragmented messages are reassembled; control frames may arrive between fragments.
Anything else a server must not send raises ``FrameError`` whose ``reason`` is one of
``FRAME_ERROR_REASONS`` (bounded label values); the connection must then be failed.

Hot path: the frames in a chunk are cut from one ``bytes`` object by offset (a
``bytes`` slice is the cheapest copy Python has, and orjson parses ``bytes`` faster than
``bytearray``); an unfragmented text frame with a 7- or 16-bit length, unmasked, without
reserved bits, costs a few index reads and one slice. Every other frame takes the
general path, which checks every rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from struct import Struct

OP_CONTINUATION, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
MAX_CONTROL_PAYLOAD = 125
FIN = 0x80
_FIN_TEXT = FIN | OP_TEXT
_RESERVED_BITS = 0x70  # RSV1-3: no extension is negotiated
_MASKED = 0x80

# Protocol errors (label values of websocket_message_errors_total; the connection is failed).
MASKED_FRAME = "masked_frame"
RESERVED_BITS = "reserved_bits"
RESERVED_OPCODE = "reserved_opcode"
FRAGMENTED_CONTROL_FRAME = "fragmented_control_frame"
CONTROL_FRAME_TOO_LONG = "control_frame_too_long"
UNEXPECTED_CONTINUATION = "unexpected_continuation"
INTERRUPTED_MESSAGE = "interrupted_message"
LENGTH_OVERFLOW = "length_overflow"
INVALID_CLOSE_FRAME = "invalid_close_frame"
FRAME_ERROR_REASONS = (MASKED_FRAME, RESERVED_BITS, RESERVED_OPCODE, FRAGMENTED_CONTROL_FRAME,
                       CONTROL_FRAME_TOO_LONG, UNEXPECTED_CONTINUATION, INTERRUPTED_MESSAGE,
                       LENGTH_OVERFLOW, INVALID_CLOSE_FRAME)

STATUS_NORMAL = 1000
STATUS_PROTOCOL_ERROR = 1002

_U16 = Struct(">H").unpack_from
_U64 = Struct(">Q").unpack_from


class FrameError(Exception):
    """The server broke RFC 6455; ``reason`` is a short label from FRAME_ERROR_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Binary:
    payload: bytes


@dataclass(frozen=True, slots=True)
class Ping:
    payload: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    payload: bytes


@dataclass(frozen=True, slots=True)
class Close:
    code: int | None  # None: the close frame carried no status code (1005)
    reason: str


@dataclass(frozen=True, slots=True)
class TooLarge:
    size: int  # the message's length as far as its headers announced it


Event = bytes | Binary | Ping | Pong | Close | TooLarge


def valid_close_code(code: int) -> bool:
    """Codes a close frame may carry (RFC 6455 7.4, and IANA's 1012-1014)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


class FrameDecoder:
    """Incremental decoder of server frames; see the module docstring."""

    __slots__ = (
        "_available",
        "_data",
        "_dropping",
        "_error",
        "_fragments",
        "_more",
        "_need",
        "_opcode",
        "_pos",
        "_ready",
        "_size",
        "_skip",
        "_skip_fin",
        "closed",
        "max_message_bytes",
    )

    def __init__(self, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        self.closed = False  # a close frame was decoded: nothing after it is
        self._data = b""  # bytes being decoded; the next frame starts at _pos
        self._pos = 0
        self._more: list[bytes] = []  # fed after _data, not yet joined to it
        self._available = 0  # len(_data) - _pos + the lengths in _more
        self._need = 1  # bytes needed before the next frame can make progress
        self._ready: list[Event] = []  # decided while feeding (a dropped message's end)
        self._opcode = 0  # of the fragmented message being received, else 0
        self._fragments: list[bytes] = []
        self._size = 0  # payload bytes of that message so far
        self._dropping = False  # that message is over the limit: its fragments are dropped
        self._skip = 0  # payload bytes of the current frame still to drop as they arrive
        self._skip_fin = False  # that frame ends its message
        self._error: FrameError | None = None

    @property
    def ready(self) -> bool:
        """``events()`` has something to return (or an error to raise)."""
        return bool(self._ready) or self._error is not None or (
            not self.closed and self._available >= self._need)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Buffer bytes received from the server (any amount, split anywhere)."""
        if self.closed or not data:
            return
        skip = self._skip
        if skip:  # the rest of an over-long frame: dropped, never buffered
            if len(data) < skip:
                self._skip = skip - len(data)
                return
            data = data[skip:]
            self._skip = 0
            if self._skip_fin:
                self._ready.append(TooLarge(self._size))
                self._end_message()
            if not data:
                return
        self._more.append(data if type(data) is bytes else bytes(data))
        self._available += len(data)

    def events(self, limit: int = 1 << 62) -> list[Event]:
        """What the buffered bytes complete, decoding at most ``limit`` frames; raises
        ``FrameError`` at the first bad frame, once the events before it are returned."""
        if self._error is not None:
            raise self._error
        events, self._ready = self._ready, []
        if self.closed or self._available < self._need:
            return events
        data, pos = self._buffered()
        end = len(data)
        need = 1  # bytes the frame at pos needs before it can be decoded
        append = events.append
        cap = self.max_message_bytes
        fragmented = self._opcode
        try:
            while limit:
                limit -= 1
                start = pos + 2
                if start > end:
                    need = 2
                    break
                length = data[pos + 1]  # the mask bit is 0: a masked frame takes the other path
                if data[pos] == _FIN_TEXT and not fragmented and length < 127 and (
                        length < 126 or start + 2 <= end):
                    if length == 126:
                        start += 2
                        length = data[pos + 2] << 8 | data[pos + 3]
                    stop = start + length
                    if stop <= end and length <= cap:
                        append(data[start:stop])
                        pos = stop
                        continue
                stop = self._frame(data, pos, end, append)
                if stop < 0:
                    need = -stop
                    break
                pos = stop
                fragmented = self._opcode
        except FrameError as error:
            self._error = error  # raised by the next call: what came before it is returned
            if not events:
                raise
        if pos == end:  # keep no chunk alive while the socket is read again
            data, pos = b"", 0
        self._data, self._pos = data, pos
        self._available, self._need = end - pos, need
        return events

    def _buffered(self) -> tuple[bytes, int]:
        """The undecoded bytes as one ``bytes`` object, and where in it they start."""
        more = self._more
        if not more:  # the previous call stopped at its limit
            return self._data, self._pos
        if self._pos < len(self._data):
            more.insert(0, memoryview(self._data)[self._pos:])
        data = more[0] if len(more) == 1 else b"".join(more)
        more.clear()
        return data, 0

    # --- the general path: every rule -------------------------------------------------------

    def _frame(self, data: bytes, pos: int, end: int, append: Callable[[Event], None]) -> int:
        """Decode the frame at ``pos``; return where decoding goes on (``end`` after a close
        or when the rest of the frame is to be dropped as it arrives) or, while the frame is
        incomplete, minus the bytes it needs (header, or header and payload)."""
        b0, b1 = data[pos], data[pos + 1]
        opcode, fin, length = b0 & 0x0F, b0 & FIN, b1 & 0x7F
        self._check_header(b0, b1, opcode, fin, length)
        start = pos + (2 if length < 126 else 4 if length == 126 else 10)
        if start > end:
            return pos - start
        if length == 126:
            length = _U16(data, pos + 2)[0]
        elif length == 127:
            length = _U64(data, pos + 2)[0]
            if length >> 63:
                raise FrameError(LENGTH_OVERFLOW, "64-bit length with its top bit set")
        stop = start + length
        if opcode < OP_CLOSE and (self._dropping or self._size + length > self.max_message_bytes):
            return end if self._drop(opcode, fin, length, stop - end, append) else stop
        if stop > end:
            return pos - stop
        payload = data[start:stop]
        if opcode >= OP_CLOSE:
            return end if self._control(opcode, payload, append) else stop
        if fin and opcode:  # a whole message in one frame
            append(payload if opcode == OP_TEXT else Binary(payload))
            return stop
        self._fragments.append(payload)
        if opcode:
            self._opcode = opcode
        if fin:
            message = b"".join(self._fragments)
            append(message if self._opcode == OP_TEXT else Binary(message))
            self._end_message()
        else:
            self._size += length
        return stop

    def _check_header(self, b0: int, b1: int, opcode: int, fin: int, length: int) -> None:
        if b1 & _MASKED:
            raise FrameError(MASKED_FRAME, "a server must not mask its frames")
        if b0 & _RESERVED_BITS:
            raise FrameError(RESERVED_BITS, f"reserved bits {b0 & _RESERVED_BITS:#x} set")
        if opcode >= OP_CLOSE:
            if opcode > OP_PONG:
                raise FrameError(RESERVED_OPCODE, f"opcode {opcode:#x}")
            if not fin:
                raise FrameError(FRAGMENTED_CONTROL_FRAME, f"opcode {opcode:#x} without FIN")
            if length > MAX_CONTROL_PAYLOAD:
                raise FrameError(CONTROL_FRAME_TOO_LONG, f"opcode {opcode:#x}")
        elif opcode > OP_BINARY:
            raise FrameError(RESERVED_OPCODE, f"opcode {opcode:#x}")
        elif opcode == OP_CONTINUATION:
            if not self._opcode:
                raise FrameError(UNEXPECTED_CONTINUATION, "no fragmented message to continue")
        elif self._opcode:
            raise FrameError(INTERRUPTED_MESSAGE, "a new message began inside a fragmented one")

    def _control(self, opcode: int, payload: bytes, append: Callable[[Event], None]) -> bool:
        """Append a ping, pong or close; True after a close (nothing after it is decoded)."""
        if opcode == OP_PING:
            append(Ping(payload))
        elif opcode == OP_PONG:
            append(Pong(payload))
        else:
            append(_close(payload))
            self.closed = True
            return True
        return False

    def _drop(self, opcode: int, fin: int, length: int, missing: int,
              append: Callable[[Event], None]) -> bool:
        """Drop a frame of a message over the limit; True when its ``missing`` bytes (not
        received yet) are to be dropped by ``feed`` as they arrive."""
        if opcode:
            self._opcode = opcode
        self._dropping = True
        self._fragments.clear()
        self._size += length
        if missing > 0:
            self._skip, self._skip_fin = missing, bool(fin)
            return True
        if fin:
            append(TooLarge(self._size))
            self._end_message()
        return False

    def _end_message(self) -> None:
        self._opcode = 0
        self._fragments = []
        self._size = 0
        self._dropping = False


def _close(payload: bytes) -> Close:
    if not payload:
        return Close(None, "")
    if len(payload) < 2:
        raise FrameError(INVALID_CLOSE_FRAME, "a one-byte close payload")
    code = _U16(payload)[0]
    if not valid_close_code(code):
        raise FrameError(INVALID_CLOSE_FRAME, f"close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(INVALID_CLOSE_FRAME, "close reason is not UTF-8") from None
    return Close(code, reason)
