"""Replay of a recording (``exporter.recording``) over the simulator's WebSocket.

Each connection gets the whole recording once it has subscribed (to every channel
the recording has updates of, or after ``SETTLE_SECONDS`` from its first subscribe,
whichever comes first): every recorded frame in order, time-scaled by ``speed``
(0: as fast as possible), except the recorder's own replies (acks, pongs, errors:
the client's requests are answered live by the dispatcher) and updates of channels
the client did not subscribe. Frames that are not understood (not JSON, unknown
methods) are replayed as they are: they are what the exchange sent.

The market list and depth scales come from the markets seen in the recording.
"""

from __future__ import annotations

import logging
import time
import uuid
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

import gevent
import orjson
from gevent.event import Event
from gevent.pool import Group

from exporter.recording import RecordingError, read_recording

from .catalog import Catalog
from .config import SYMBOL_PATTERN
from .connection import WsConnection
from .hub import Hub
from .market import KNOWN_ASSETS, MarketSpec
from .stats import Record, Stats, summarize
from .wire import CHANNELS, text_frame

log = logging.getLogger(__name__)

SETTLE_SECONDS = 2.0  # longest wait, after a first subscribe, for the other channels
SETTLE_POLL = 0.02
YIELD_EVERY = 64  # frames between yields to the hub when replaying flat out
DEFAULT_PRICE_DECIMALS = 2
DEFAULT_QTY_DECIMALS = 8
REPLY_SUFFIXES = ("_subscribe", "_unsubscribe")
REPLY_KEYS = frozenset({"id", "data", "error"})


@dataclass(frozen=True)
class Frame:
    """One recorded frame as the replay sees it."""

    t: float
    text: str
    is_reply: bool
    channel: str | None  # a known channel's ``<channel>_update``
    record: Record


def classify(t: float, text: str) -> Frame:
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        message = None
    if not isinstance(message, dict):
        return Frame(t, text, False, None, (None, None))
    method = message.get("method")
    if not isinstance(method, str):
        # acks without "method" (unsubscribe, deal_subscribe): only id/data/error
        is_reply = type(message.get("id")) is int and message.keys() <= REPLY_KEYS
        return Frame(t, text, is_reply, None, (None, None))
    if method.endswith("_update"):
        channel = method.removesuffix("_update")
        known = channel if channel in CHANNELS else None
        return Frame(t, text, False, known, (method, summarize(method, message.get("data"))))
    is_reply = (
        method == "pong" or method.endswith(REPLY_SUFFIXES) or message.get("error") is not None
    )
    return Frame(t, text, is_reply, None, (method, None))


def frames(path: str) -> Iterator[Frame]:
    for t, text in read_recording(path):
        yield classify(t, text)


def _decimals(text: object) -> int | None:
    if not isinstance(text, str):
        return None
    _, dot, fraction = text.partition(".")
    return len(fraction) if dot else 0


class _SeenMarkets:
    """Markets, currencies and number precisions seen in a recording's updates."""

    def __init__(self) -> None:
        self.price_decimals: dict[str, int] = {}
        self.qty_decimals: dict[str, int] = {}
        self.currencies: set[str] = set()

    def add(self, channel: str, data: object) -> None:
        if not isinstance(data, dict):
            return
        info = data.get("info")
        if isinstance(info, dict):
            if isinstance(info.get("currencyCode"), str):
                self.currencies.add(info["currencyCode"])
            data = info
        symbol = data.get("symbol")
        if not isinstance(symbol, str) or not SYMBOL_PATTERN.match(symbol):
            return
        self.price_decimals.setdefault(symbol, 0)
        self.qty_decimals.setdefault(symbol, 0)
        if channel in ("lastprice", "ticker"):
            self._widen(self.price_decimals, symbol, data.get("price"))
        elif channel == "depth":
            for side in ("asks", "bids"):
                for level in data.get(side) or ():
                    if isinstance(level, list) and len(level) == 2:
                        self._widen(self.price_decimals, symbol, level[0])
                        self._widen(self.qty_decimals, symbol, level[1])

    @staticmethod
    def _widen(table: dict[str, int], symbol: str, text: object) -> None:
        decimals = _decimals(text)
        if decimals is not None:
            table[symbol] = max(table[symbol], decimals)

    def spec(self, symbol: str) -> MarketSpec:
        base, quote = symbol.split("_")
        return MarketSpec(
            market_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"cryptomus-replay:{symbol}")),
            symbol=symbol,
            base=base,
            quote=quote,
            base_name=KNOWN_ASSETS.get(base, (base.title(), 0.0))[0],
            quote_name=KNOWN_ASSETS.get(quote, (quote.title(), 0.0))[0],
            base_usd=1.0,
            quote_usd=1.0,
            price_decimals=self.price_decimals[symbol] or DEFAULT_PRICE_DECIMALS,
            qty_decimals=self.qty_decimals[symbol] or DEFAULT_QTY_DECIMALS,
        )


@dataclass(frozen=True)
class RecordingSummary:
    path: str
    catalog: Catalog
    channels: frozenset[str]  # channels with updates in the recording
    frames: int
    replies: int


def scan(path: str) -> RecordingSummary:
    """Read the whole recording once (a malformed line fails here, with its number)."""
    seen = _SeenMarkets()
    channels: set[str] = set()
    count = replies = 0
    for frame in frames(path):
        count += 1
        replies += frame.is_reply
        if frame.channel is not None:
            channels.add(frame.channel)
            seen.add(frame.channel, orjson.loads(frame.text).get("data"))
    specs = [seen.spec(symbol) for symbol in seen.price_decimals]
    catalog = Catalog(specs, seen.currencies, lenient=True)
    return RecordingSummary(path, catalog, frozenset(channels), count, replies)


class ReplayFeed:
    """Plays a scanned recording to each subscribed connection."""

    def __init__(self, recording: RecordingSummary, speed: float, hub: Hub, stats: Stats) -> None:
        self._path = recording.path
        self._speed = speed
        self._channels = recording.channels
        self._hub = hub
        self._stats = stats
        self._started: weakref.WeakSet[WsConnection] = weakref.WeakSet()  # one replay each
        self._group = Group()
        self._running = Event()
        self._running.set()

    def on_subscribed(self, conn: WsConnection) -> None:
        if conn not in self._started:
            self._started.add(conn)
            self._group.spawn(self._replay, conn)

    def start(self) -> None:
        """Nothing to start: each connection's replay starts with its subscriptions."""

    def stop(self) -> None:
        self._group.kill(block=False)

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def _wait_for_subscriptions(self, conn: WsConnection) -> None:
        deadline = time.monotonic() + SETTLE_SECONDS
        while not conn.closing and not self._channels <= conn.subs.keys():
            if time.monotonic() >= deadline:
                return
            gevent.sleep(SETTLE_POLL)

    def _replay(self, conn: WsConnection) -> None:
        self._wait_for_subscriptions(conn)
        try:
            self._play(conn)
        except (OSError, RecordingError) as error:  # the file changed after the scan
            log.warning("replay stopped: %s", error)

    def _play(self, conn: WsConnection) -> None:
        stats, speed = self._stats, self._speed
        start = first_t = None
        since_yield = 0
        for frame in frames(self._path):
            if not self._running.is_set():
                paused_at = time.monotonic()
                self._running.wait()
                if start is not None:
                    start += time.monotonic() - paused_at
            if conn.closing:
                return
            if frame.is_reply:
                stats.replay_replies_skipped += 1
                continue
            if frame.channel is not None and frame.channel not in conn.subs:
                stats.replay_unsubscribed_skipped += 1
                continue
            if start is None or first_t is None:
                start, first_t = time.monotonic(), frame.t
            delay = start + (frame.t - first_t) / speed - time.monotonic() if speed > 0 else 0.0
            if delay > 0:
                gevent.sleep(delay)
                since_yield = 0
            if conn.queue(text_frame(frame.text.encode()), frame.record):
                stats.replay_frames_queued += 1
            self._hub.wait_writable(conn)
            since_yield += 1
            if since_yield >= YIELD_EVERY:
                gevent.sleep(0)
                since_yield = 0
        if not conn.closing:
            stats.replays_completed += 1
