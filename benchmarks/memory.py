"""Resident memory of the exporter holding many markets, run as its own process.

    python benchmarks/memory.py MARKETS LEVELS

Builds the real exporter (not connected), measures its resident set size, feeds
MARKETS markets with every market channel (a full book of LEVELS levels per side,
ticker, last price, trades on both sides), scrapes /metrics over HTTP twice, once as
Prometheus asks (OpenMetrics, gzip) and once in the text format (so the scrape-time
caches exist, as in steady state), and measures again. Answers one JSON line.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import gc  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
import psutil  # noqa: E402
from harness import PROMETHEUS_HEADERS, say, scrape, series  # noqa: E402
from scrape import frame_handler, idle_exporter, market_frames  # noqa: E402


def rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


def main() -> int:
    markets, levels = int(sys.argv[1]), int(sys.argv[2])
    exporter = idle_exporter()
    before = rss()
    handle = frame_handler(exporter)
    for number in range(markets):
        for frame in market_frames(number, levels):
            handle(frame)
    book_levels = sum(sum(state.book.levels()) for state in exporter.state.markets.markets.values())
    exporter.server.start()
    # The client is blocking code: on a real thread, so the server's greenlet can answer.
    pool = gevent.get_hub().threadpool
    pool.apply(scrape, (exporter.http_port, PROMETHEUS_HEADERS))
    _, body = pool.apply(scrape, (exporter.http_port,))
    exporter.server.stop(timeout=1)
    say({"markets": markets, "levels_per_side": levels, "book_levels": book_levels,
         "series": series(body), "rss_before": before, "rss": rss()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
