"""Bounded soak: the exporter against a busy simulated exchange with a fault every
few seconds, then checks that it survived, kept no leaks and lost no counts.

    python benchmarks/soak.py                  # 600 s (the default)
    python benchmarks/soak.py --duration 60    # the short form CI runs
    python benchmarks/soak.py --json out.json  # also write the summary as JSON

The simulator runs in a child process (``cryptomus-exporter simulate``, generating
events at ``--rate``); the exporter runs in this process, so its resident memory,
greenlets and file descriptors can be counted directly. Faults rotate through every
kind the simulator has: abrupt drops, a silent socket, each kind of garbage frame
(not JSON, wrong types, unknown methods, a huge frame, truncated JSON), token storms
(HTTP 500 and 429 with Retry-After), refused upgrades (HTTP status and TCP reset),
crossed books and a partial depth update before a reload.

Checks (exit status 1 if any fails, with a summary table either way):
- no crash: the supervisor lives, no greenlet died with an exception, no ERROR log,
  /metrics answers throughout, the simulator is still running;
- resident memory flat: growth from the baseline (taken after the first rotation of
  faults, once every code path has run) to the end stays within ``--rss-limit-mib``;
- no greenlet and no file descriptor leak: counted (gc; /proc/self/fd) in the same
  settled state (connected, generator paused, stream drained) at start and end;
- every event accounted for. The run is cut into windows at checkpoints. At each
  checkpoint the generator is paused and a sentinel price is pushed on the one open
  connection; when the exporter shows it, every frame sent before it has been
  handled, so the simulator's counts (frames whose bytes ``sendall`` handed to the
  kernel) and the exporter's counters can be compared exactly, per label. A window
  in which nothing was lost in flight must match exactly: public trades per
  (market, side) and their volumes, fills per (market, role) and their volumes,
  fees, order events, finished orders, balance changes, frames per update method and
  one error per garbage frame. Destructive faults (drop, silence, token storm,
  refusal) alternate between two variants: injected after a drain (the window
  stays exact), or under load. Under load, frames the simulator wrote just before
  the socket died can be lost in the kernel buffers, the only unavoidable slack:
  such a window must satisfy 0 <= counted <= sent for every series, and its loss is
  reported. Depth frames are not accounted: a connection attempt that fails at the
  subscribe stage may or may not have read the book reloads sent to it.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import gc  # noqa: E402
import io  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter, deque  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import greenlet  # noqa: E402
import orjson  # noqa: E402
import psutil  # noqa: E402
import requests  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from exporter.app import Exporter  # noqa: E402
from exporter.logs import Redactor, setup_logging  # noqa: E402
from exporter.settings import Settings  # noqa: E402

MIN_DURATION, MAX_DURATION = 50.0, 3600.0  # at least one rotation of faults
BANNER = re.compile(r"REST (?P<base_url>http://\S+) WebSocket (?P<ws_url>ws://\S+)")
MIB = 1024 * 1024
WAIT_LIMIT = 20.0  # longest bounded wait for any one condition
SETTLE = 1.0  # seconds to let dying greenlets finish before counting
GREENLET_TOLERANCE = 2  # transient HTTP handler greenlets
FD_TOLERANCE = 2  # a REST keep-alive connection may or may not be pooled at that moment
EXPORTER_SETTINGS = {
    "ping_interval": 1.0,
    "pong_timeout": 1.0,
    "idle_timeout": 3.0,
    "subscribe_timeout": 2.0,
    "request_timeout": 3.0,
    "backoff_min": 0.1,
    "backoff_max": 1.0,
    "backoff_reset_after": 30.0,
    "resync_min_interval": 0.5,
    "stale_after": 120.0,
    "reconcile_interval": 5.0,
}
UPDATE_METHODS = ("lastprice_update", "ticker_update", "trade_update", "order_update",
                  "balance_update", "deal_update")


# --- what is accounted ------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    title: str
    sim_key: str  # a counter of the simulator's stats ("a/b" keys)
    sample: str  # the exporter's sample name
    labels: tuple[str, ...]
    fractional: bool = False


ACCOUNTS = (
    Account("trades", "trades_sent", "cryptomus_trades_total", ("market", "side")),
    Account("trade base volume", "trade_base_volume", "cryptomus_traded_base_volume_total",
            ("market", "side"), True),
    Account("trade quote volume", "trade_quote_volume", "cryptomus_traded_quote_volume_total",
            ("market", "side"), True),
    Account("fills", "deals_sent", "cryptomus_fills_total", ("market", "role")),
    Account("fill base volume", "deal_base_volume", "cryptomus_filled_base_volume_total",
            ("market", "role"), True),
    Account("fill quote volume", "deal_quote_volume", "cryptomus_filled_quote_volume_total",
            ("market", "role"), True),
    Account("fees", "fees_sent", "cryptomus_fees_total", ("currency",), True),
    Account("order events", "order_events_sent", "cryptomus_order_events_total",
            ("market", "side", "event")),
    Account("orders finished", "orders_finished_sent", "cryptomus_orders_finished_total",
            ("market", "side", "state")),
    Account("balance changes", "balance_updates_sent", "cryptomus_balance_changes_total",
            ("currency",)),
    Account("update frames", "sent_by_method", "cryptomus_websocket_messages_total",
            ("method",)),
    Account("frame errors", "garbage_sent", "cryptomus_websocket_message_errors_total", ()),
)


def simulator_totals(stats: dict) -> dict[tuple[str, str], float]:
    totals: dict[tuple[str, str], float] = {}
    for account in ACCOUNTS:
        counts = stats[account.sim_key]
        if account.sim_key == "sent_by_method":
            counts = {method: counts.get(method, 0) for method in UPDATE_METHODS}
        if not account.labels:  # one series: everything of the family
            counts = {"all": sum(counts.values())}
        for key, value in counts.items():
            totals[(account.title, key)] = float(value)
    return totals


def exporter_totals(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    by_sample = {account.sample: account for account in ACCOUNTS}
    totals: dict[tuple[str, str], float] = {}
    for family in registry.collect():
        for sample in family.samples:
            account = by_sample.get(sample.name)
            if account is None:
                continue
            if account.labels:
                if account.sample.endswith("messages_total") and \
                        sample.labels["method"] not in UPDATE_METHODS:
                    continue
                key = "/".join(sample.labels[name] for name in account.labels)
            else:
                key = "all"
            totals[(account.title, key)] = totals.get((account.title, key), 0.0) + sample.value
    return totals


FRACTIONAL = {account.title for account in ACCOUNTS if account.fractional}


def same(title: str, counted: float, sent: float) -> bool:
    if title in FRACTIONAL:
        return math.isclose(counted, sent, rel_tol=1e-9, abs_tol=1e-9)
    return counted == sent


# --- the simulator child ------------------------------------------------------------------


class SimulatorChild:
    """``python -m exporter simulate`` on a free loopback port; output to a temp file."""

    def __init__(self, rate: float, markets: int, seed: int) -> None:
        self.output = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            [sys.executable, "-m", "exporter", "simulate", "--listen", "127.0.0.1:0",
             "--rate", str(rate), "--markets", str(markets), "--seed", str(seed)],
            stdout=self.output, stderr=subprocess.STDOUT, text=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("CRYPTOMUS_")})
        self.http = requests.Session()
        match = wait_until(self._banner, "the simulator's banner")
        self.base_url, self.ws_url = match["base_url"], match["ws_url"]

    def _banner(self):
        if self.process.poll() is not None:
            raise SoakError(f"the simulator exited: {self.tail()}")
        self.output.seek(0)
        return BANNER.search(self.output.read())

    def tail(self) -> str:
        self.output.seek(0)
        return self.output.read()[-2000:]

    def call(self, method: str, path: str, **kwargs) -> dict:
        response = self.http.request(method, f"{self.base_url}/_sim/{path}", timeout=10, **kwargs)
        if response.status_code != 200:
            raise SoakError(f"simulator {path}: HTTP {response.status_code} {response.text}")
        return response.json()

    def fault(self, name: str, **params) -> None:
        self.call("POST", f"faults/{name}", params=params)

    def stats(self) -> dict:
        return self.call("GET", "stats")

    def push(self, channel: str, data: dict) -> int:
        return self.call("POST", "push", data=orjson.dumps({"channel": channel,
                                                            "data": data}))["sent"]

    def stop(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.output.close()


# --- observation ------------------------------------------------------------------------


class SoakError(Exception):
    pass


def wait_until(condition, what: str, timeout: float = WAIT_LIMIT, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SoakError(f"timed out after {timeout:.0f} s waiting for {what}")
        gevent.sleep(interval)


class LogTail(io.TextIOBase):
    """The exporter's log: counted by level, last lines kept (bounded memory)."""

    def __init__(self) -> None:
        self.lines: deque[str] = deque(maxlen=200)
        self.levels: Counter[str] = Counter()

    def write(self, text: str) -> int:
        for line in text.splitlines():
            self.lines.append(line)
            parts = line.split(" ", 3)
            if len(parts) > 2:
                self.levels[parts[2]] += 1
        return len(text)


class CrashRecorder(io.TextIOBase):
    """Receives what gevent prints when a greenlet dies with an exception."""

    def __init__(self) -> None:
        self.text: deque[str] = deque(maxlen=100)

    def write(self, text: str) -> int:
        self.text.append(text)
        sys.stderr.write(text)
        return len(text)


def greenlet_counts() -> tuple[int, int]:
    """(greenlet objects alive in memory, of which not dead)."""
    gc.collect()
    greenlets = [obj for obj in gc.get_objects() if isinstance(obj, greenlet.greenlet)]
    return len(greenlets), sum(1 for obj in greenlets if not obj.dead)


def fd_counts() -> tuple[int, int]:
    """(open file descriptors, of which sockets)."""
    fds = os.listdir("/proc/self/fd")
    sockets = 0
    for fd in fds:
        with contextlib.suppress(OSError):  # the listdir's own fd, closed by now
            sockets += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return len(fds), sockets


class RssSampler:
    def __init__(self, interval: float = 0.5) -> None:
        self.process = psutil.Process()
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        while True:
            self.samples.append((time.monotonic(), self.process.memory_info().rss))
            gevent.sleep(self.interval)

    def stop(self) -> None:
        self._greenlet.kill()

    def now(self) -> int:
        return self.process.memory_info().rss


# --- the run ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    name: str
    destructive: bool
    outage: float = 0.0  # seconds the exchange stays broken after injection


# The huge frame comes early: the buffers it grows once belong in the RSS baseline.
ROTATION = (
    Fault("drop", True),
    Fault("garbage:huge", False),
    Fault("token_500", True),
    Fault("garbage:wrong_types", False),
    Fault("silent", True, 3.0),
    Fault("garbage:unknown_method", False),
    Fault("refuse_status", True, 1.5),
    Fault("garbage:not_json", False),
    Fault("refuse_reset", True, 1.5),
    Fault("garbage:truncated", False),
    Fault("token_429", True),
    Fault("crossed_book", False),
    Fault("partial_before_reload", False),
)


@dataclass
class Window:
    fault: str
    exact: bool
    loss: dict[str, float] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.failures: list[str] = []
        self.windows: list[Window] = []
        self.faults: Counter[str] = Counter()
        self.recoveries: list[float] = []
        self.scrapes: list[float] = []
        self.sentinel = 1_000_000.0
        self.destructive_count = 0
        self.previous: tuple[dict, dict] | None = None
        self.sim = SimulatorChild(args.rate, args.markets, args.seed)
        self.markets: list[str] = []
        self.log = LogTail()
        self.crashes = CrashRecorder()
        gevent.get_hub().exception_stream = self.crashes
        redactor = Redactor()
        setup_logging("info", "text", redactor, stream=self.log)
        settings = Settings(
            user_id="demo-user", api_key="demo-api-key", ws_url=self.sim.ws_url,
            api_url=self.sim.base_url, market_api_url=self.sim.base_url,
            scales_api_url=self.sim.base_url, listen_address="127.0.0.1:0", log_level="info",
            **EXPORTER_SETTINGS)
        self.exporter = Exporter(settings, registry=CollectorRegistry(), redactor=redactor)
        self.registry = self.exporter.registry

    # --- probes ---------------------------------------------------------------------

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(f"cryptomus_{name}", labels) or 0.0

    def scrape(self) -> None:
        started = time.monotonic()
        response = requests.get(f"http://127.0.0.1:{self.exporter.http_port}/metrics",
                                headers={"Connection": "close"}, timeout=10)
        if response.status_code != 200 or "cryptomus_websocket_connected" not in response.text:
            raise SoakError(f"/metrics answered {response.status_code}")
        self.scrapes.append(time.monotonic() - started)

    def connected_once(self) -> bool:
        return self.value("websocket_connected") == 1 and self.sim.stats()["connections"] == 1

    def drain(self) -> None:
        """Wait for one connection, then until a sentinel price pushed on it is seen."""
        wait_until(self.connected_once, "one connection, exporter connected")
        self.sentinel += 1
        data = {"symbol": self.markets[0], "timestamp": 1, "price": f"{self.sentinel:.1f}"}
        wait_until(lambda: self.sim.push("lastprice", data), "the sentinel queued")
        wait_until(lambda: self.value("last_price", market=self.markets[0]) == self.sentinel,
                   "the sentinel handled")

    # --- accounting -----------------------------------------------------------------

    def checkpoint(self, fault: str, exact: bool) -> None:
        """Pause, drain, and compare this window's counts (the caller resumes)."""
        self.sim.call("POST", "pause")
        self.drain()
        current = (simulator_totals(self.sim.stats()), exporter_totals(self.registry))
        if self.previous is not None:
            self.windows.append(self._compare(fault, exact, self.previous, current))
        self.previous = current

    @staticmethod
    def _compare(fault: str, exact: bool, before: tuple[dict, dict],
                 after: tuple[dict, dict]) -> Window:
        window = Window(fault, exact)
        (sent_before, counted_before), (sent_after, counted_after) = before, after
        for key in sorted(set(sent_after) | set(counted_after)):
            title = key[0]
            sent = sent_after.get(key, 0.0) - sent_before.get(key, 0.0)
            counted = counted_after.get(key, 0.0) - counted_before.get(key, 0.0)
            if exact and not same(title, counted, sent):
                window.mismatches.append(f"{title} {key[1]}: sent {sent:g}, counted {counted:g}")
            elif not exact:
                if counted < -1e-9 or (counted > sent and not same(title, counted, sent)):
                    window.mismatches.append(
                        f"{title} {key[1]}: counted {counted:g} of {sent:g} sent")
                window.loss[title] = window.loss.get(title, 0.0) + max(0.0, sent - counted)
        return window

    # --- faults ---------------------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        sim, name = self.sim, fault.name
        if name.startswith("garbage:"):
            sim.fault("send_garbage", kind=name.partition(":")[2])
        elif name == "crossed_book":
            sim.fault("crossed_book", market=self.markets[1])
        elif name == "partial_before_reload":  # shows on the resync a crossed book triggers
            sim.fault("partial_depth_before_reload", market=self.markets[0])
            sim.fault("crossed_book", market=self.markets[1])
        elif name == "silent":
            sim.fault("go_silent", seconds=fault.outage)
        else:
            if name.startswith("token_"):
                status = int(name.partition("_")[2])
                sim.fault("fail_token", count=3 if status == 500 else 2, status=status)
            elif name.startswith("refuse_"):
                sim.fault("refuse_connections", seconds=fault.outage,
                          mode=name.partition("_")[2])
            sim.fault("drop_connections")
        self.faults[name] += 1

    def run_step(self, fault: Fault) -> None:
        self.sim.call("POST", "resume")
        gevent.sleep(self.args.fault_interval)
        exact = True
        if fault.destructive:
            self.destructive_count += 1
            exact = self.destructive_count % 2 == 1  # alternate: drained first, under load
            if exact:
                self.sim.call("POST", "pause")
                self.drain()
            connects = self.value("websocket_connects_total")
            self.inject(fault)
            injected = time.monotonic()
            wait_until(lambda: self.value("websocket_connects_total") > connects
                       and self.connected_once(),
                       f"reconnection after {fault.name}", timeout=fault.outage + WAIT_LIMIT)
            self.recoveries.append(time.monotonic() - injected - fault.outage)
            self.sim.call("POST", "resume")
        else:
            self.inject(fault)
        gevent.sleep(0.5)
        self.scrape()
        self.checkpoint(fault.name, exact)

    def run(self) -> dict:
        args = self.args
        started = time.monotonic()
        self.exporter.start()
        wait_until(lambda: self.exporter.state.markets.known, "the market list")
        self.markets = sorted(self.exporter.state.markets.known)
        rss = RssSampler()
        self.checkpoint("start", True)
        rss_start = rss.now()
        gevent.sleep(SETTLE)
        greenlets_start, fds_start = greenlet_counts(), fd_counts()
        deadline = started + args.duration - 3 * SETTLE
        rss_baseline = None
        step = 0
        while time.monotonic() < deadline - args.fault_interval - 1.0:
            self.run_step(ROTATION[step % len(ROTATION)])
            step += 1
            if step == len(ROTATION):  # every path has run once: the memory baseline
                rss_baseline = rss.now()
        self.checkpoint("end", True)  # paused and drained: the state of the start
        gevent.sleep(SETTLE)
        greenlets_end, fds_end = greenlet_counts(), fd_counts()
        rss_end = rss.now()
        rss.stop()
        if rss_baseline is None:  # too short for a whole rotation
            self.failures.append("the run was too short for one rotation of faults")
            rss_baseline = rss_start
        return self.verdict(started, rss, (rss_start, rss_baseline, rss_end),
                            (greenlets_start, greenlets_end), (fds_start, fds_end))

    # --- verdict --------------------------------------------------------------------

    def verdict(self, started, rss, rss_points, greenlets, fds) -> dict:
        args, failures = self.args, self.failures
        rss_start, rss_baseline, rss_end = rss_points
        peak = max(value for _, value in rss.samples)
        growth = (rss_end - rss_baseline) / MIB
        if growth > args.rss_limit_mib:
            failures.append(f"RSS grew {growth:.1f} MiB after the baseline "
                            f"(limit {args.rss_limit_mib} MiB)")
        (total_start, live_start), (total_end, live_end) = greenlets
        if live_end > live_start + GREENLET_TOLERANCE or \
                total_end > total_start + GREENLET_TOLERANCE:
            failures.append(f"greenlets: {total_start} ({live_start} live) at the start, "
                            f"{total_end} ({live_end} live) at the end")
        (fd_start, sockets_start), (fd_end, sockets_end) = fds
        if fd_end > fd_start + FD_TOLERANCE or sockets_end > sockets_start + FD_TOLERANCE:
            failures.append(f"file descriptors: {fd_start} ({sockets_start} sockets) at the "
                            f"start, {fd_end} ({sockets_end} sockets) at the end")
        for window in self.windows:
            for mismatch in window.mismatches[:5]:
                failures.append(f"window after {window.fault} "
                                f"({'exact' if window.exact else 'under load'}): {mismatch}")
        if self.crashes.text:
            failures.append("a greenlet died: " + "".join(self.crashes.text)[-500:])
        if self.log.levels["ERROR"] or self.log.levels["CRITICAL"]:
            failures.append(f"{self.log.levels['ERROR']} ERROR log lines")
        if not self.exporter.health.live()[0]:
            failures.append("the exporter is not live: " + self.exporter.health.live()[1])
        if self.sim.process.poll() is not None:
            failures.append("the simulator died")
        sent, counted = self.previous
        accounting = {}
        for account in ACCOUNTS:
            keys = [key for key in set(sent) | set(counted) if key[0] == account.title]
            accounting[account.title] = {
                "sent": sum(sent.get(key, 0.0) for key in keys),
                "counted": sum(counted.get(key, 0.0) for key in keys),
                "lost_under_load": sum(w.loss.get(account.title, 0.0) for w in self.windows),
                "series": len(keys),
            }
        if accounting["trades"]["sent"] == 0 or accounting["fills"]["sent"] == 0:
            failures.append("the simulator sent no trades or no fills: nothing was tested")
        stats = self.sim.stats()
        return {
            "result": "fail" if failures else "pass",
            "failures": failures,
            "duration_seconds": round(time.monotonic() - started, 1),
            "requested_duration_seconds": args.duration,
            "rate": args.rate,
            "markets": args.markets,
            "faults": sum(self.faults.values()),
            "faults_by_kind": dict(self.faults),
            "windows": {"exact": sum(w.exact for w in self.windows),
                        "under_load": sum(not w.exact for w in self.windows)},
            "accounting": accounting,
            "reconnects": self.value("websocket_connects_total") - 1,
            "recovery_seconds": {
                "max": round(max(self.recoveries, default=0.0), 3),
                "median": round(statistics.median(self.recoveries), 3) if self.recoveries
                else 0.0},
            "token_requests": stats["tokens_issued"] + stats["token_failures"],
            "frames_suppressed_by_silence": stats["frames_suppressed"],
            "orderbook_resyncs": sum(
                s.value for f in self.registry.collect() for s in f.samples
                if s.name == "cryptomus_orderbook_resyncs_total"),
            "rss_mib": {"start": round(rss_start / MIB, 1),
                        "baseline": round(rss_baseline / MIB, 1),
                        "peak": round(peak / MIB, 1), "end": round(rss_end / MIB, 1),
                        "growth_after_baseline": round(growth, 2),
                        "limit": args.rss_limit_mib,
                        "every_10_s": [round(value / MIB, 1) for _, value in rss.samples[::20]]},
            "greenlets": {"start": greenlets[0][0], "start_live": greenlets[0][1],
                          "end": greenlets[1][0], "end_live": greenlets[1][1]},
            "fds": {"start": fds[0][0], "start_sockets": fds[0][1],
                    "end": fds[1][0], "end_sockets": fds[1][1]},
            "scrape_seconds_max": round(max(self.scrapes, default=0.0), 3),
            "log_lines_by_level": dict(self.log.levels),
        }

    def close(self) -> None:
        try:
            self.exporter.stop()
        finally:
            self.sim.stop()


def print_table(summary: dict) -> None:
    rows = [("soak", f"{summary['duration_seconds']} s at {summary['rate']:g} events/s, "
                     f"{summary['markets']} markets")]
    rows.append(("faults injected", f"{summary['faults']}: " + ", ".join(
        f"{name} {count}" for name, count in sorted(summary["faults_by_kind"].items()))))
    rows.append(("windows", f"{summary['windows']['exact']} exact, "
                            f"{summary['windows']['under_load']} with a fault under load"))
    rows.append(("reconnects", f"{summary['reconnects']:g}; recovery after the outage "
                               f"max {summary['recovery_seconds']['max']} s, median "
                               f"{summary['recovery_seconds']['median']} s"))
    rows.append(("token requests", str(summary["token_requests"])))
    rows.append(("not sent", f"{summary['frames_suppressed_by_silence']} frames withheld while "
                             "the exchange was silent (never written, so not accounted)"))
    rss = summary["rss_mib"]
    rows.append(("RSS MiB", f"start {rss['start']}, baseline {rss['baseline']}, peak "
                            f"{rss['peak']}, end {rss['end']} "
                            f"(growth {rss['growth_after_baseline']:+} MiB, limit {rss['limit']})"))
    g, f = summary["greenlets"], summary["fds"]
    rows.append(("greenlets", f"start {g['start']} ({g['start_live']} live), "
                              f"end {g['end']} ({g['end_live']} live)"))
    rows.append(("file descriptors", f"start {f['start']} ({f['start_sockets']} sockets), "
                                     f"end {f['end']} ({f['end_sockets']} sockets)"))
    rows.append(("/metrics", f"slowest scrape {summary['scrape_seconds_max']} s"))
    width = max(len(name) for name, _ in rows)
    for name, text in rows:
        print(f"{name:<{width}}  {text}")
    print()
    print(f"{'accounted':<20} {'sent':>16} {'counted':>16} {'lost under load':>16}")
    for title, row in summary["accounting"].items():
        print(f"{title:<20} {row['sent']:>16.8g} {row['counted']:>16.8g} "
              f"{row['lost_under_load']:>16.8g}")
    print()
    for failure in summary["failures"]:
        print(f"FAIL: {failure}")
    print(f"RESULT: {summary['result'].upper()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0,
                        help=f"seconds, {MIN_DURATION:g}..{MAX_DURATION:g} (default 600)")
    parser.add_argument("--rate", type=float, default=300.0,
                        help="simulated events per second (default 300)")
    parser.add_argument("--markets", type=int, default=5, help="simulated markets (default 5)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fault-interval", type=float, default=1.5,
                        help="seconds of undisturbed traffic before each fault (default 1.5)")
    parser.add_argument("--rss-limit-mib", type=float, default=8.0,
                        help="allowed RSS growth after the baseline (default 8 MiB)")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args(argv)
    args.duration = min(MAX_DURATION, max(MIN_DURATION, args.duration))
    # The hard cap: whatever happens, the process ends (SIGALRM terminates it).
    signal.alarm(int(args.duration + 5 * WAIT_LIMIT + 60))
    soak = None
    try:
        soak = Soak(args)
        summary = soak.run()
    except SoakError as error:
        summary = {"result": "fail", "failures": [str(error)]}
        if soak is not None:
            summary["log_tail"] = list(soak.log.lines)[-30:]
            summary["simulator_output"] = soak.sim.tail()
    finally:
        if soak is not None:
            soak.close()
    if "accounting" in summary:
        print_table(summary)
    else:
        print("\n".join(summary.get("log_tail", [])))
        print(f"FAIL: {summary['failures'][0]}\nRESULT: FAIL")
    if args.json:
        args.json.write_text(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    return 0 if summary["result"] == "pass" else 1


if __name__ == "__main__":
    sys.exit(main())
