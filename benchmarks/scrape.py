"""The exporter serving /metrics for the scrape benchmark, run as its own process.

    python benchmarks/scrape.py

Builds the real exporter (``exporter.app.Exporter``: the same registry, metric
objects, collectors and pywsgi server as in production, with ``max_markets``
raised to 5000) without connecting it anywhere, says ``{"ready": true,
"http_port": p}`` and answers commands, one JSON line each:

- ``grow N``: feed frames through ``FrameHandler.handle`` until N markets carry
  every market channel: a full book of ``LEVELS`` levels per side, a ticker, a
  last price and trades on both sides. Answers ``{"markets": N}``.
- ``touch``: one depth update (a changed level on each side), one last price and
  one trade for every market, as a busy exchange does between two scrapes (so
  each book's depth bands are computed again). Answers ``{"touched": N}``.
- ``quit``.

Each market exposes 41 series (7 price/ticker gauges, 4 update times, 12 book
gauges, 3 trade counters x 2 sides and 3 resync reasons, each with its
``_created`` sample).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import logging  # noqa: E402
import sys  # noqa: E402

import orjson  # noqa: E402
from gevent.fileobject import FileObjectPosix  # noqa: E402
from harness import say  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from exporter.app import Exporter  # noqa: E402
from exporter.frames import FrameHandler  # noqa: E402
from exporter.settings import Settings  # noqa: E402

LEVELS = 50
TIMESTAMP = 1_750_953_000


def symbol(number: int) -> str:
    return f"M{number:04d}_USDT"


def frame(method: str, data: dict) -> bytes:
    return orjson.dumps({"id": 0, "method": method, "data": data, "error": None})


def book_levels(mid: float, side: int, count: int) -> list[list[str]]:
    """``count`` levels outward from ``mid`` (side -1: bids, +1: asks)."""
    return [[f"{mid + side * (index + 1) * 0.01:.2f}", f"{1 + index % 7 * 0.25:.2f}"]
            for index in range(count)]


def market_frames(number: int, levels: int = LEVELS) -> list[bytes]:
    """Frames that give market ``number`` every market channel and a book of ``levels``."""
    market, mid = symbol(number), 100.0 + number
    return [
        frame("depth_update", {"symbol": market, "timestamp": TIMESTAMP, "full_reload": True,
                               "scale_index": 0, "bids": book_levels(mid, -1, levels),
                               "asks": book_levels(mid, 1, levels)}),
        frame("ticker_update", {"symbol": market, "timestamp": TIMESTAMP, "price": f"{mid:.2f}",
                                "open": f"{mid - 1:.2f}", "high": f"{mid + 2:.2f}",
                                "low": f"{mid - 2:.2f}", "volume": "1531.027982",
                                "quote_volume": "164564314.80174687", "price_change": "0.04"}),
        frame("lastprice_update", {"symbol": market, "timestamp": TIMESTAMP,
                                   "price": f"{mid:.2f}"}),
        frame("trade_update", {"symbol": market, "timestamp": TIMESTAMP, "trades": [
            {"price": mid + 0.01, "quantity": 0.25, "timestamp": TIMESTAMP, "direction": "buy"},
            {"price": mid - 0.01, "quantity": 0.5, "timestamp": TIMESTAMP, "direction": "sell"}]}),
    ]


def touch_frames(number: int, tick: int) -> list[bytes]:
    market, mid = symbol(number), 100.0 + number
    return [
        frame("depth_update", {"symbol": market, "timestamp": TIMESTAMP + tick,
                               "full_reload": False, "scale_index": 0,
                               "bids": [[f"{mid - 0.03:.2f}", f"{1 + tick % 5:.2f}"]],
                               "asks": [[f"{mid + 0.03:.2f}", f"{1 + tick % 3:.2f}"]]}),
        frame("lastprice_update", {"symbol": market, "timestamp": TIMESTAMP + tick,
                                   "price": f"{mid + tick % 3 * 0.01:.2f}"}),
        frame("trade_update", {"symbol": market, "timestamp": TIMESTAMP + tick, "trades": [
            {"price": mid, "quantity": 0.1, "timestamp": TIMESTAMP + tick, "direction": "buy"}]}),
    ]


def frame_handler(exporter: Exporter):
    """The function a session hands every frame to, for an exporter without a session."""
    return FrameHandler(exporter.state, on_reply=lambda reply: None,
                        on_resync=lambda channel, market: None).handle


def idle_exporter() -> Exporter:
    """The real exporter, built but not connected (its URLs point at a closed port)."""
    logging.disable(logging.WARNING)
    unused = "http://127.0.0.1:9"
    settings = Settings(user_id="bench", api_key="bench", ws_url="ws://127.0.0.1:9/ws",
                        api_url=unused, market_api_url=unused, scales_api_url=unused,
                        listen_address="127.0.0.1:0", max_markets=5000)
    return Exporter(settings, registry=CollectorRegistry())


def main() -> int:
    exporter = idle_exporter()
    exporter.server.start()
    handle = frame_handler(exporter)
    markets = ticks = 0
    say({"ready": True, "http_port": exporter.http_port})
    try:
        for line in FileObjectPosix(sys.stdin.fileno(), "rb", close=False):
            command, *params = line.decode().split()
            if command == "grow":
                for number in range(markets, int(params[0])):
                    for data in market_frames(number):
                        handle(data)
                markets = max(markets, int(params[0]))
                say({"markets": markets})
            elif command == "touch":
                ticks += 1
                for number in range(markets):
                    for data in touch_frames(number, ticks):
                        handle(data)
                say({"touched": markets})
            elif command == "quit":
                break
            else:
                say({"error": f"unknown command {command!r}"})
    finally:
        exporter.server.stop(timeout=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
