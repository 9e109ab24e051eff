"""Recordings of what an exchange sent on a WebSocket: one JSON line per frame.

Format (UTF-8, one line per received frame, in order)::

    {"t": 1750953362.123456, "frame": "{\\"id\\": 0, \\"method\\": \\"lastprice_update\\", ...}"}

``t`` is the Unix time (float seconds) the frame was received and ``frame`` the frame
text exactly as received (not re-encoded, so a malformed frame is kept as it was). A path
ending in ``.gz`` is written gzip-compressed; :func:`read_recording` reads both forms
(it goes by the file's content, not its name).

Writing::

    with RecordingWriter("session.jsonl.gz") as recording:
        recording.write(frame_text)            # t = time.time()
        recording.write(frame_text, t=1750953362.5)

Each frame is flushed to the file as it is written (``flush_seconds`` > 0 flushes at
most that often instead, for high frame rates). A process that closes the writer on
SIGTERM/SIGINT leaves a complete file; one that dies without closing it leaves every
flushed line readable (a gzip file then lacks its trailer, which the reader accepts).
The writer records only what it is given: keep secrets out of the frames you pass.

Reading::

    for t, frame in read_recording(path): ...

A line that is not ``{"t": <number>, "frame": <string>}`` raises
:class:`RecordingError` naming the file and the line number. Empty lines are skipped.
Only the standard library and orjson are used here.
"""

from __future__ import annotations

import gzip
import math
import os
import time
import zlib
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import IO

import orjson

GZIP_MAGIC = b"\x1f\x8b"
READ_CHUNK = 256 * 1024
__all__ = ["RecordingError", "RecordingWriter", "read_recording"]


class RecordingError(ValueError):
    """A recording that cannot be read; ``line`` is 1-based (0: not about a line)."""

    def __init__(self, path: str | os.PathLike, line: int, reason: str) -> None:
        where = f"{os.fspath(path)}:{line}" if line else os.fspath(path)
        super().__init__(f"{where}: {reason}")
        self.path = os.fspath(path)
        self.line = line
        self.reason = reason


class RecordingWriter:
    """Writes a recording to ``path`` (gzip when it ends in ``.gz``); a context manager."""

    def __init__(self, path: str | os.PathLike, *, flush_seconds: float = 0.0) -> None:
        self.path = os.fspath(path)
        self.frames_written = 0
        self._flush_seconds = flush_seconds
        self._last_flush = time.monotonic()
        self._raw: IO[bytes] = open(self.path, "wb")  # noqa: SIM115 (closed by close())
        self._file: IO[bytes] = self._raw
        if self.path.endswith(".gz"):
            self._file = gzip.GzipFile(fileobj=self._raw, mode="wb")

    def write(self, frame: str | bytes, t: float | None = None) -> None:
        """Append one frame (text; bytes are decoded as UTF-8, bad bytes replaced)."""
        if isinstance(frame, bytes):
            frame = frame.decode("utf-8", "replace")
        record = {"t": time.time() if t is None else t, "frame": frame}
        try:
            line = orjson.dumps(record)
        except orjson.JSONEncodeError:  # lone surrogates: not encodable as UTF-8
            record["frame"] = frame.encode("utf-8", "replace").decode("utf-8")
            line = orjson.dumps(record)
        self._file.write(line + b"\n")
        self.frames_written += 1
        if self._flush_seconds <= 0 or time.monotonic() - self._last_flush >= self._flush_seconds:
            self.flush()

    def flush(self) -> None:
        self._file.flush()  # gzip: a sync flush, so every line so far can be decompressed
        self._last_flush = time.monotonic()

    def close(self) -> None:
        """Finish the file (the gzip trailer too). Idempotent."""
        if self._raw.closed:
            return
        try:
            self._file.close()
        finally:
            self._raw.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def read_recording(path: str | os.PathLike) -> Iterator[tuple[float, str]]:
    """(t, frame) of every line, in file order; plain or gzip (by content)."""
    with open(path, "rb") as file:
        compressed = file.read(2) == GZIP_MAGIC
        file.seek(0)
        chunks = iter(lambda: file.read(READ_CHUNK), b"")
        if compressed:
            chunks = _gunzip(chunks, path)
        for number, line in enumerate(_lines(chunks), start=1):
            if line.strip():
                yield _parse_line(line, number, path)


def _gunzip(chunks: Iterable[bytes], path: str | os.PathLike) -> Iterator[bytes]:
    """Decompress gzip members one after another; a last member without its
    trailer (a writer that died) ends the data instead of failing."""
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    for chunk in chunks:
        data = chunk
        while data:
            try:
                yield decompressor.decompress(data)
            except zlib.error as error:
                raise RecordingError(path, 0, f"not a valid gzip stream ({error})") from None
            data = decompressor.unused_data
            if decompressor.eof:
                decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
            else:
                data = b""
    yield decompressor.flush()


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    pending = b""
    for chunk in chunks:
        if not chunk:
            continue
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        yield from lines
    if pending:
        yield pending


def _parse_line(line: bytes, number: int, path: str | os.PathLike) -> tuple[float, str]:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise RecordingError(path, number, f"not JSON ({error})") from None
    if not isinstance(record, dict):
        raise RecordingError(path, number, 'expected an object {"t": ..., "frame": ...}')
    t, frame = record.get("t"), record.get("frame")
    if type(t) not in (int, float) or not math.isfinite(t):
        raise RecordingError(path, number, '"t" must be a finite number (Unix seconds)')
    if not isinstance(frame, str):
        raise RecordingError(path, number, '"frame" must be a string (the frame text)')
    return float(t), frame
