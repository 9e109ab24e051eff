"""The benchmark's frames: a deterministic, realistic mix of public market data.

Frames come from the simulator's own market model (``exporter.simulator``'s
``World``), so prices, books and trades are consistent with each other: depth
deltas of one to a few levels, trades that eat the book, ticker and last price.
The set starts with a full reload of every book (so it can be replayed any number
of times and every book stays consistent) and carries a further full reload of
one market every ``RELOAD_EVERY`` generator steps, as a resync would.
"""

from __future__ import annotations

from collections import Counter

import orjson

from exporter.simulator import SimulatorConfig
from exporter.simulator.wire import PUBLIC_CHANNELS, event_payload
from exporter.simulator.world import World

EPOCH = 1_750_953_000
SEED = 11
MARKETS = 20
DEPTH_LEVELS = 50
FRAMES = 20000
RELOAD_EVERY = 2000


def simulator_config(markets: int = MARKETS, depth_levels: int = DEPTH_LEVELS) -> SimulatorConfig:
    """The sender's simulator: the same markets as the frames, no generator of its own."""
    return SimulatorConfig(host="127.0.0.1", port=0, seed=SEED, markets=markets, rate=0.0,
                           autogen=False, depth_levels=depth_levels, epoch=EPOCH)


def build_frames(markets: int = MARKETS, count: int = FRAMES,
                 depth_levels: int = DEPTH_LEVELS) -> list[bytes]:
    """``count`` JSON frames (plus the initial full reloads), identical on every call."""
    world = World(simulator_config(markets, depth_levels), EPOCH)
    frames = [event_payload("depth", market.full_reload(0, EPOCH))
              for market in world.markets.values()]
    step = 0
    while len(frames) < count:
        step += 1
        timestamp = EPOCH + step // 100
        if step % RELOAD_EVERY == 0:
            market = world.markets[world.symbols[step // RELOAD_EVERY % len(world.symbols)]]
            frames.append(event_payload("depth", market.full_reload(0, timestamp)))
        for event in world.step(timestamp):
            if event.channel in PUBLIC_CHANNELS:
                frames.append(event_payload(event.channel, event.data))
    return frames


def describe(frames: list[bytes]) -> dict:
    """Methods, reloads and sizes of a frame set, for the report."""
    methods: Counter[str] = Counter()
    reloads = levels = deltas = 0
    for frame in frames:
        message = orjson.loads(frame)
        methods[message["method"]] += 1
        if message["method"] == "depth_update":
            data = message["data"]
            if data["full_reload"]:
                reloads += 1
            else:
                deltas += 1
                levels += len(data["bids"]) + len(data["asks"])
    return {
        "frames": len(frames),
        "methods": dict(sorted(methods.items())),
        "full_reloads": reloads,
        "levels_per_delta": round(levels / deltas, 2) if deltas else 0.0,
        "mean_bytes": round(sum(map(len, frames)) / len(frames), 1),
    }
