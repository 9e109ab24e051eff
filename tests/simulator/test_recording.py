"""exporter.recording: the JSON-lines format written and read back, gzip or not,
malformed lines named by number, and a writer killed by SIGTERM leaves its lines."""

from __future__ import annotations

import gzip
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import gevent
import orjson
import pytest

from exporter.recording import RecordingError, RecordingWriter, read_recording

REPO = Path(__file__).resolve().parents[2]
FRAMES = [
    '{"id": 0, "method": "lastprice_update", "data": {"symbol": "BTC_USDT", "price": "1.5"}}',
    'not json at all {"',
    '{"text": "line\\nbreak, \\"quotes\\", unicode: \u00e9\u20ac\U0001f600"}',
    "",
    "tab\tand real\nnewline",
]


@pytest.mark.parametrize("name", ["session.jsonl", "session.jsonl.gz"])
def test_frames_round_trip_exactly(tmp_path, name: str) -> None:
    path = tmp_path / name
    before = time.time()
    with RecordingWriter(path) as recording:
        for number, frame in enumerate(FRAMES):
            recording.write(frame, t=1750000000.25 + number)
        recording.write("stamped now")
        recording.write(b"bytes \xff frame")
        assert recording.frames_written == len(FRAMES) + 2
    records = list(read_recording(path))
    assert records[: len(FRAMES)] == [(1750000000.25 + n, f) for n, f in enumerate(FRAMES)]
    assert records[-2][1] == "stamped now" and before <= records[-2][0] <= time.time()
    assert records[-1] == (records[-1][0], "bytes \ufffd frame")
    raw = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
    lines = raw.decode().splitlines()
    assert len(lines) == len(FRAMES) + 2  # one line per frame, newlines in frames escaped
    assert orjson.loads(lines[0]) == {"t": 1750000000.25, "frame": FRAMES[0]}
    copy = tmp_path / "renamed.jsonl"  # the reader goes by content, not by name
    shutil.copy(path, copy)
    assert list(read_recording(copy)) == records


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "expected an object"),
        (b'{"t": true, "frame": "x"}', '"t" must be'),
        (b'{"t": "1", "frame": "x"}', '"t" must be'),
        (b'{"frame": "x"}', '"t" must be'),
        (b'{"t": 1, "frame": 5}', '"frame" must be'),
        (b'{"t": 1}', '"frame" must be'),
        (b'{"t": 1, "frame": "trunc', "not JSON"),
    ],
)
def test_a_malformed_line_is_reported_with_its_number(tmp_path, line: bytes, reason: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"t": 1, "frame": "first"}\n\n' + line + b'\n{"t": 2, "frame": "x"}\n')
    records = read_recording(path)
    assert next(records) == (1.0, "first")
    with pytest.raises(RecordingError, match=f"bad.jsonl:3: {reason}") as error:
        next(records)
    assert error.value.line == 3


def test_a_corrupt_gzip_file_is_an_error(tmp_path) -> None:
    path = tmp_path / "bad.jsonl.gz"
    path.write_bytes(b"\x1f\x8b" + b"\x00" * 40)
    with pytest.raises(RecordingError, match="gzip"):
        list(read_recording(path))


WRITER = """
import sys, time
from exporter.recording import RecordingWriter
recording = RecordingWriter(sys.argv[1])
for number in range(200):
    recording.write('{"n": %d}' % number, t=1750000000 + number / 10)
print("written", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("name", ["killed.jsonl", "killed.jsonl.gz"])
def test_a_writer_stopped_by_sigterm_leaves_every_frame(tmp_path, name: str) -> None:
    path = tmp_path / name
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        with gevent.Timeout(30):
            assert process.stdout.readline().strip() == "written"
        process.send_signal(signal.SIGTERM)  # default action: no cleanup, no gzip trailer
        with gevent.Timeout(30):
            assert process.wait() == -signal.SIGTERM
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
    frames = [orjson.loads(frame)["n"] for _, frame in read_recording(path)]
    assert frames == list(range(200))
