"""Receivers for the throughput benchmark, each run as its own process under gevent.

    python benchmarks/throughput.py floor SENDER_INFO_JSON FRAMES
    python benchmarks/throughput.py limit SENDER_INFO_JSON FRAMES
    python benchmarks/throughput.py pipeline SENDER_INFO_JSON

All connect to the sender (``sender.py``) with a fresh token, subscribe to the
same channels and markets and read the subscription replies and initial books
before they say ``{"ready": true}``. All run with gevent's monkey patching, as
the exporter does.

- floor: the cheapest bare websocket-client reader, ``recv_frame()`` + ``orjson.loads``
  (every frame the sender writes is a whole message, as the exchange's are), what a
  naive client reaches; receives FRAMES blasted frames and answers
  ``{"frames", "seconds", "rate"}``, timed from the first to the last of them.
- limit: the most a Python reader can do: ``recv`` of 256 KiB at a time from the
  connected socket, frames cut out by ``exporter.wsframes.FrameDecoder``, each message
  ``orjson.loads``-ed, no handling. Timed from the end of its first read.
- pipeline: the real exporter (``exporter.app.Exporter``: supervisor, session and
  its reader greenlet, handlers, metrics in a CollectorRegistry, HTTP server on a
  loopback port given in the ready line), configured for the sender's markets.
  It then answers commands, one JSON line each:

  - ``arm N``: answers ``{"armed": true}`` at once, then, once N more frames have
    been handled, ``{"frames", "seconds", "rate"}``. Frames are counted from
    ``websocket_messages_total``; the time is that of the frames' arrival
    (``websocket_last_message_timestamp_seconds``), sampled whenever the reader
    yields to the hub (after each chunk, or batch of ``FRAMES_PER_TURN`` frames), so
    the measurement adds nothing to the reader's own loop.
  - ``stats``: resident memory, greenlets, open file descriptors, connections.
  - ``wait_connects K``: answers once the exporter has connected K times in all
    and is ready again (after the sender dropped the connection).
  - ``quit``.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import gc  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import orjson  # noqa: E402
import psutil  # noqa: E402
import requests  # noqa: E402
import websocket  # noqa: E402
from gevent.fileobject import FileObjectPosix  # noqa: E402
from greenlet import greenlet  # noqa: E402
from harness import say  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from exporter import channels as channel_table  # noqa: E402
from exporter import protocol  # noqa: E402
from exporter.app import Exporter  # noqa: E402
from exporter.protocol import MAX_FRAME_BYTES  # noqa: E402
from exporter.rest import TOKEN_PATH, sign  # noqa: E402
from exporter.settings import Settings  # noqa: E402
from exporter.wsframes import FrameDecoder  # noqa: E402
from exporter.wsreader import CHUNK_BYTES  # noqa: E402

CHANNELS = ("lastprice", "ticker", "depth", "trade")
READERS = ("floor", "limit")
READY_TIMEOUT = 30.0
MEASURE_TIMEOUT = 600.0
POLL_INTERVAL = 0.005
# Reconnect quickly after a dropped connection (the memory benchmark drops it on purpose).
FAST_RECONNECT = {"backoff_min": 0.05, "backoff_max": 0.2}


def token(info: dict) -> str:
    response = requests.get(info["base_url"] + TOKEN_PATH, timeout=10, headers={
        "userId": info["user_id"], "sign": sign(b"", info["api_key"])})
    response.raise_for_status()
    return response.json()["token"]


def bare_reader(info: dict, expected: int, reader: str) -> None:
    """floor or limit: connect, subscribe, then time ``expected`` blasted frames."""
    ws = websocket.create_connection(f"{info['ws_url']}?token={token(info)}", timeout=10,
                                     skip_utf8_validation=True)
    ws.settimeout(None)
    symbols = tuple(info["symbols"])
    for request_id, channel in enumerate(CHANNELS, 1):
        params = channel_table.by_name()[channel].params(
            channel_table.Selection(symbols, 0, frozenset()))
        ws.send(protocol.subscribe(request_id, channel, params))
    for _ in range(len(CHANNELS) + len(symbols)):  # the acks, then one full book per market
        ws.recv_data()
    say({"ready": True})
    first, frames = (recv_frame_loop if reader == "floor" else buffered_loop)(ws, expected)
    seconds = time.perf_counter() - first
    ws.close()
    say({"frames": expected, "seconds": seconds, "rate": frames / seconds})


def recv_frame_loop(ws: websocket.WebSocket, expected: int) -> tuple[float, int]:
    """(start time, frames read after it): websocket-client, a frame at a time."""
    loads, recv_frame = orjson.loads, ws.recv_frame
    loads(recv_frame().data)
    first = time.perf_counter()
    for _ in range(expected - 1):
        loads(recv_frame().data)
    return first, expected - 1


def buffered_loop(ws: websocket.WebSocket, expected: int) -> tuple[float, int]:
    """(start time, frames read after it): the buffered decoder, a chunk at a time.
    websocket-client's recv_data above read no byte past the frames it returned."""
    loads, recv = orjson.loads, ws.sock.recv
    decoder = FrameDecoder(MAX_FRAME_BYTES)
    feed, events = decoder.feed, decoder.events
    feed(recv(CHUNK_BYTES))
    seen = 0
    for data in events():
        loads(data)
        seen += 1
    first, after_first = time.perf_counter(), seen
    while seen < expected:
        feed(recv(CHUNK_BYTES))
        for data in events():
            loads(data)
            seen += 1
    return first, seen - after_first


class Pipeline:
    def __init__(self, info: dict) -> None:
        self.symbols = info["symbols"]
        settings = Settings(
            user_id=info["user_id"], api_key=info["api_key"], ws_url=info["ws_url"],
            api_url=info["base_url"], market_api_url=info["base_url"],
            scales_api_url=info["base_url"], markets=",".join(self.symbols),
            channels=",".join(CHANNELS), listen_address="127.0.0.1:0", log_level="error",
            **FAST_RECONNECT,
        )
        self.exporter = Exporter(settings, registry=CollectorRegistry())
        self.link = self.exporter.state.link

    def messages_seen(self) -> int:
        return int(sum(self.link.message_counts.values()))

    def ready(self) -> bool:
        markets = self.exporter.state.markets.markets
        return self.exporter.health.ready()[0] and all(
            symbol in markets and markets[symbol].book.loaded for symbol in self.symbols)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while not self.ready():
            if time.monotonic() > deadline:
                raise TimeoutError("the exporter did not get ready in time")
            gevent.sleep(0.01)

    def connects(self) -> int:
        value = self.exporter.registry.get_sample_value("cryptomus_websocket_connects_total")
        return int(value or 0)

    def wait_connects(self, connects: int) -> None:
        """Wait until the exporter has connected ``connects`` times in all, and is ready."""
        deadline = time.monotonic() + READY_TIMEOUT
        while self.connects() < connects or not self.ready():
            if time.monotonic() > deadline:
                raise TimeoutError("the exporter did not reconnect in time")
            gevent.sleep(0.01)

    def measure(self, expected: int) -> dict:
        """Rate of the next ``expected`` frames (call before they are sent)."""
        baseline = self.messages_seen()
        say({"armed": True})
        first = None
        deadline = time.monotonic() + MEASURE_TIMEOUT
        while time.monotonic() < deadline:
            gevent.sleep(POLL_INTERVAL)
            # Read while the reader is paused: a count and the arrival time of its last frame.
            seen, at = self.messages_seen() - baseline, self.link.last_message_time
            if seen and first is None:
                first = (seen, at)
            if seen >= expected:
                frames, seconds = seen - first[0], at - first[1]
                return {"frames": seen, "seconds": seconds, "rate": frames / seconds,
                        "first_at": first[1], "last_at": at}
        raise TimeoutError(f"{expected} frames did not arrive in {MEASURE_TIMEOUT:.0f} s")

    def stats(self) -> dict:
        gc.collect()
        process = psutil.Process()
        return {
            "rss": process.memory_info().rss,
            "greenlets": sum(1 for item in gc.get_objects() if isinstance(item, greenlet)),
            "fds": process.num_fds(),
            "connects": self.connects(),
            "messages": self.messages_seen(),
        }

    def serve(self) -> None:
        self.exporter.start()
        try:
            self.wait_ready()
            say({"ready": True, "http_port": self.exporter.http_port})
            for line in FileObjectPosix(sys.stdin.fileno(), "rb", close=False):
                command, *params = line.decode().split()
                if command == "arm":
                    say(self.measure(int(params[0])))
                elif command == "stats":
                    say(self.stats())
                elif command == "wait_connects":
                    self.wait_connects(int(params[0]))
                    say({"ready": True})
                elif command == "quit":
                    break
                else:
                    say({"error": f"unknown command {command!r}"})
        finally:
            self.exporter.stop()


def main() -> int:
    logging.disable(logging.WARNING)  # a dropped connection is expected here, not news
    mode, info = sys.argv[1], orjson.loads(sys.argv[2])
    if mode in READERS:
        bare_reader(info, int(sys.argv[3]), mode)
    else:
        Pipeline(info).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
