"""Run every benchmark and print a table of results against the targets.

    python benchmarks/run.py            # full run (about 13 minutes: the soak is 10)
    python benchmarks/run.py --quick    # small sizes for CI (about 30 s)
    python benchmarks/run.py --json results.json

Each measurement runs in processes of its own (see README.md): the sender, the
bare readers (floor, limit), the real exporter (pipeline), the exporter serving /metrics.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import frames as frame_set
import orderbook
import orjson
from harness import PROMETHEUS_HEADERS, Child, Pipeline, Sender, scrape, series

MIB = 1024 * 1024


@dataclass(frozen=True)
class Sizes:
    repeat: int  # times the frame set (20,000 frames) is sent per throughput measurement
    rounds: int  # floor/limit/pipeline measurements, in turn; the medians are compared
    saturation_repeat: int
    scrape_rounds: int
    book_updates: int
    book_rounds: int
    soak_seconds: float
    reconnect_every: float


FULL = Sizes(repeat=10, rounds=5, saturation_repeat=50, scrape_rounds=9,
             book_updates=100_000, book_rounds=5, soak_seconds=600.0, reconnect_every=60.0)
QUICK = Sizes(repeat=2, rounds=1, saturation_repeat=5, scrape_rounds=2, book_updates=10_000,
              book_rounds=1, soak_seconds=20.0, reconnect_every=4.0)
SCRAPE_MARKETS = {"1k": 24, "10k": 242, "50k": 1218}  # 41 series per market, plus the rest
SATURATED_SCRAPE_INTERVAL = 0.1
SATURATED_MARKETS, SATURATED_LEVELS = 50, 100
SATURATED_SCRAPE_TARGET = 0.050
MEMORY_MARKETS, MEMORY_LEVELS = 500, 200
# Growth below this is allocator noise (arenas, caches warming up), not a leak.
GROWTH_NOISE = 2 * MIB


@dataclass
class Row:
    name: str
    result: str
    target: str = ""
    ok: bool | None = None  # None: informative, no target


@dataclass
class Report:
    machine: dict
    sizes: Sizes
    results: dict = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)


def machine() -> dict:
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_before": os.getloadavg(),
    }


# --- throughput -------------------------------------------------------------------------


def throughput(sizes: Sizes) -> dict:
    """Floor, limit and pipeline on the same frames, in turn, each in a fresh process."""
    rates: dict[str, list[float]] = {"floor": [], "limit": [], "pipeline": []}
    with Sender(frame_set.MARKETS, frame_set.FRAMES, frame_set.DEPTH_LEVELS) as sender:
        expected = sender.info["frames"] * sizes.repeat
        for _ in range(sizes.rounds):
            # One receiver at a time: the sender blasts every subscribed connection.
            for reader in ("floor", "limit"):
                with Child("throughput.py", reader, sender.info_json, expected) as child:
                    child.read()
                    sender.blast(sizes.repeat)
                    rates[reader].append(child.read()["rate"])
            with Pipeline(sender) as exporter:
                exporter.ask(f"arm {expected}")
                sender.blast(sizes.repeat)
                rates["pipeline"].append(exporter.read()["rate"])
    medians = {name: statistics.median(values) for name, values in rates.items()}
    return {
        "frames": frame_set.describe(frame_set.build_frames()),
        "frames_per_measurement": expected,
        **{f"{name}_rates": values for name, values in rates.items()},
        **medians,
        "ratio": medians["pipeline"] / medians["floor"],
        "ratio_to_limit": medians["pipeline"] / medians["limit"],
    }


def saturated_scrape(sizes: Sizes) -> dict:
    """/metrics latency while the exporter's reader is saturated by the sender."""
    with Sender(SATURATED_MARKETS, frame_set.FRAMES, SATURATED_LEVELS) as sender, \
            Pipeline(sender) as exporter:
        port = exporter.http_port
        expected = sender.info["frames"] * sizes.saturation_repeat
        scrapes: list[tuple[float, float, int]] = []  # (started, seconds, series), wall clock
        done = threading.Event()

        def scraper() -> None:
            while not done.is_set():
                started = time.time()
                seconds, body = scrape(port)
                scrapes.append((started, seconds, series(body)))
                done.wait(SATURATED_SCRAPE_INTERVAL)

        exporter.ask(f"arm {expected}")
        thread = threading.Thread(target=scraper, daemon=True)
        thread.start()
        sender.blast(sizes.saturation_repeat)
        measured = exporter.read()
        done.set()
        thread.join(timeout=30)
    # Scrapes that overlapped the time frames were arriving (the reader was busy).
    during = sorted(seconds for started, seconds, _ in scrapes
                    if started < measured["last_at"] and started + seconds > measured["first_at"])
    if not during:
        raise RuntimeError("no scrape completed while the reader was saturated")
    return {
        "scrapes": len(during),
        "series": scrapes[-1][2],
        "p50": during[len(during) // 2],
        "p99": during[min(len(during) - 1, round(0.99 * (len(during) - 1)))],
        "max": during[-1],
        "pipeline_rate": measured["rate"],
        "markets": SATURATED_MARKETS,
        "levels": SATURATED_LEVELS,
    }


# --- scrape -----------------------------------------------------------------------------


def scrape_latency(sizes: Sizes) -> dict:
    """/metrics latency with 1k, 10k and 50k series, idle and after every market changed."""
    results = {}
    with Child("scrape.py") as exporter:
        port = exporter.read()["http_port"]
        for label, markets in SCRAPE_MARKETS.items():
            exporter.ask(f"grow {markets}")
            _, body = scrape(port)  # warm-up
            idle, busy = [], []
            for _ in range(sizes.scrape_rounds):
                idle.append(scrape(port)[0])
                exporter.ask("touch")
                busy.append(scrape(port)[0])
            results[label] = {"markets": markets, "series": series(body), "bytes": len(body),
                              "idle": statistics.median(idle), "busy": statistics.median(busy),
                              "busy_max": max(busy)}
            if label == "10k":
                scrape(port, PROMETHEUS_HEADERS)  # after the last touch: books recomputed here
                prometheus_like = [scrape(port, PROMETHEUS_HEADERS)[0]
                                   for _ in range(sizes.scrape_rounds)]
                results["10k"]["openmetrics_gzip"] = statistics.median(prometheus_like)
    return results


# --- memory -----------------------------------------------------------------------------


def memory_static() -> dict:
    with Child("memory.py", MEMORY_MARKETS, MEMORY_LEVELS) as child:
        return child.read()


def memory_soak(sizes: Sizes) -> dict:
    """Saturated for ``soak_seconds`` with the connection dropped every ``reconnect_every``."""
    with Sender(frame_set.MARKETS, frame_set.FRAMES, frame_set.DEPTH_LEVELS) as sender, \
            Pipeline(sender) as exporter:
        connects = 1
        sender.blast(sizes.repeat)  # warm up: every code path has run once
        sender.drop()
        connects += 1
        exporter.ask(f"wait_connects {connects}")
        start = exporter.ask("stats")
        began = time.monotonic()
        next_drop = began + sizes.reconnect_every
        while time.monotonic() - began < sizes.soak_seconds:
            sender.blast(1)
            if time.monotonic() >= next_drop:
                sender.drop()
                connects += 1
                exporter.ask(f"wait_connects {connects}")
                next_drop += sizes.reconnect_every
        end = exporter.ask("stats")
    return {"seconds": time.monotonic() - began, "reconnects": connects - 2,
            "start": start, "end": end}


# --- report -----------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def rate(value: float) -> str:
    return f"{value:,.0f}/s"


def throughput_rows(tp: dict) -> list[Row]:
    return [
        Row("throughput: floor (websocket-client recv_frame + orjson)",
            rate(tp["floor"]) + " msgs"),
        Row("throughput: limit (buffered frame decoder + orjson, no handling)",
            rate(tp["limit"]) + " msgs"),
        Row("throughput: pipeline (real exporter)", rate(tp["pipeline"]) + " msgs"),
        Row("throughput: pipeline / floor", f"{tp['ratio']:.3f}", ">= 2.00", tp["ratio"] >= 2.0),
        Row("throughput: pipeline / limit", f"{tp['ratio_to_limit']:.3f}", ">= 0.50",
            tp["ratio_to_limit"] >= 0.5),
    ]


def scrape_rows(sc: dict) -> list[Row]:
    rows = []
    targets = {"1k": None, "10k": 0.030, "50k": 0.175}
    for label, target in targets.items():
        entry = sc[label]
        name = f"scrape {label} ({entry['series']:,} series), every market changed"
        rows.append(Row(name, ms(entry["busy"]), f"<= {ms(target)}" if target else "",
                        entry["busy"] <= target if target else None))
        rows.append(Row(f"scrape {label}, nothing changed", ms(entry["idle"]),
                        f"<= {ms(target)}" if target else "",
                        entry["idle"] <= target if target else None))
    rows.append(Row("scrape 10k as Prometheus asks (OpenMetrics, gzip), nothing changed",
                    ms(sc["10k"]["openmetrics_gzip"])))
    return rows


def saturated_scrape_rows(sat: dict) -> list[Row]:
    return [Row(f"scrape while saturated ({sat['markets']} markets x {sat['levels']} levels, "
                f"{sat['scrapes']} scrapes, {sat['series']} series)",
                f"p50 {ms(sat['p50'])}, p99 {ms(sat['p99'])}, max {ms(sat['max'])}",
                f"max <= {ms(SATURATED_SCRAPE_TARGET)}", sat["max"] <= SATURATED_SCRAPE_TARGET)]


def orderbook_rows(ob: dict) -> list[Row]:
    return [
        Row(f"order book: OrderBook, {ob['levels_per_side']} levels",
            rate(ob["orderbook_rate"]) + " level updates", ">= 500,000/s",
            ob["orderbook_rate"] >= 500_000),
        Row("order book: naive sorted list", rate(ob["naive_rate"]) + " level updates"),
    ]


def memory_rows(mem: dict) -> list[Row]:
    return [Row(f"memory: {mem['markets']} markets x {mem['levels_per_side']} levels, "
                "all channels", f"{mem['rss'] / MIB:.1f} MiB RSS "
                f"({mem['rss_before'] / MIB:.1f} before the data)",
                "<= 80.0 MiB", mem["rss"] <= 80 * MIB)]


def soak_rows(soak: dict) -> list[Row]:
    start, end = soak["start"], soak["end"]
    growth = end["rss"] - start["rss"]
    steady = growth <= GROWTH_NOISE and end["greenlets"] == start["greenlets"] \
        and end["fds"] == start["fds"]
    return [Row(
        f"memory soak: {soak['seconds']:.0f} s saturated, {soak['reconnects']} reconnects",
        f"RSS {start['rss'] / MIB:.1f} -> {end['rss'] / MIB:.1f} MiB, "
        f"greenlets {start['greenlets']} -> {end['greenlets']}, "
        f"fds {start['fds']} -> {end['fds']}",
        f"growth <= {GROWTH_NOISE / MIB:.0f} MiB, same greenlets and fds", steady)]


# In the table's order.
ROWS = {"throughput": throughput_rows, "scrape": scrape_rows,
        "saturated_scrape": saturated_scrape_rows, "orderbook": orderbook_rows,
        "memory": memory_rows, "soak": soak_rows}


def build_rows(report: Report) -> None:
    for name, rows in ROWS.items():
        if name in report.results:
            report.rows += rows(report.results[name])


def print_table(report: Report) -> None:
    m = report.machine
    print(f"cryptomus-exporter benchmarks, {m['date']}")
    print(f"{m['nproc']} CPUs, {m['cpu']}, Python {m['python']}, {m['platform']}, "
          f"load average before {m['load_average_before'][0]:.2f}")
    headers = ("benchmark", "result", "target", "")
    table = [(row.name, row.result, row.target,
              "" if row.ok is None else ("ok" if row.ok else "MISSED")) for row in report.rows]
    widths = [max(len(str(line[i])) for line in (headers, *table)) for i in range(4)]
    for line in (headers, tuple("-" * width for width in widths), *table):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True))
              .rstrip())


def main() -> int:
    parser = argparse.ArgumentParser(description="Run every benchmark and print a table.")
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke test)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    parser.add_argument("--only", metavar="NAME,...", type=lambda value: value.split(","),
                        help=f"run only these benchmarks, of: {', '.join(ROWS)}")
    args = parser.parse_args()
    unknown = set(args.only or ()) - set(ROWS)
    if unknown:
        parser.error(f"--only: unknown benchmark(s) {', '.join(sorted(unknown))}")
    sizes = QUICK if args.quick else FULL
    report = Report(machine(), sizes)
    steps = (
        ("throughput", lambda: throughput(sizes)),
        ("saturated_scrape", lambda: saturated_scrape(sizes)),
        ("scrape", lambda: scrape_latency(sizes)),
        ("orderbook", lambda: orderbook.measure(sizes.book_updates, sizes.book_rounds)),
        ("memory", memory_static),
        ("soak", lambda: memory_soak(sizes)),
    )
    for name, step in steps:
        if args.only and name not in args.only:
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        report.results[name] = step()
    report.machine["load_average_after"] = os.getloadavg()
    build_rows(report)
    print_table(report)
    if args.json:
        payload = {"machine": report.machine, "sizes": report.sizes.__dict__,
                   "results": report.results,
                   "rows": [row.__dict__ for row in report.rows]}
        args.json.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
