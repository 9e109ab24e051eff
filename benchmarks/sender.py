"""The loopback sender, run as its own process: the simulator, driven over stdin.

    python benchmarks/sender.py [--markets N] [--depth-levels L] [--frames F]

prints one JSON line ``{"port", "ws_url", "base_url", "user_id", "api_key", "frames",
"symbols"}`` once it listens, then executes one command per stdin line and answers
each with one JSON line:

- ``blast R``: wait (bounded) for a subscribed connection, then write the frame set
  R times with ``Simulator.blast`` as fast as the socket takes it;
  answers ``{"written": frames, "seconds": s}``.
- ``drop``: close every WebSocket connection abruptly (a reconnect for the client);
  answers ``{"dropped": n}``.
- ``quit``: stop.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import frames as frame_set  # noqa: E402
import gevent  # noqa: E402
import orjson  # noqa: E402
from gevent.fileobject import FileObjectPosix  # noqa: E402

from exporter.simulator import Simulator  # noqa: E402

SUBSCRIBER_TIMEOUT = 30.0


def reply(payload: dict) -> None:
    sys.stdout.write(orjson.dumps(payload).decode() + "\n")
    sys.stdout.flush()


def wait_for_subscriber(sim: Simulator) -> bool:
    deadline = time.monotonic() + SUBSCRIBER_TIMEOUT
    while time.monotonic() < deadline:
        if any(conn.subs for conn in sim.open_connections()):
            return True
        gevent.sleep(0.01)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markets", type=int, default=frame_set.MARKETS)
    parser.add_argument("--depth-levels", type=int, default=frame_set.DEPTH_LEVELS)
    parser.add_argument("--frames", type=int, default=frame_set.FRAMES)
    args = parser.parse_args()
    frames = frame_set.build_frames(args.markets, args.frames, args.depth_levels)
    sim = Simulator(frame_set.simulator_config(args.markets, args.depth_levels)).start()
    reply({"port": sim.port, "ws_url": sim.ws_url, "base_url": sim.base_url,
           "user_id": sim.config.user_id, "api_key": sim.config.api_key,
           "frames": len(frames), "symbols": sim.markets})
    commands = FileObjectPosix(sys.stdin.fileno(), "rb", close=False)
    try:
        for line in commands:
            command, *params = line.decode().split()
            if command == "blast":
                if not wait_for_subscriber(sim):
                    reply({"error": "no subscribed connection"})
                    continue
                started = time.perf_counter()
                written = sim.blast(frames, int(params[0]))
                reply({"written": written, "seconds": time.perf_counter() - started})
            elif command == "drop":
                connections = sim.open_connections()
                for conn in connections:
                    conn.drop()
                reply({"dropped": len(connections)})
            elif command == "quit":
                break
            else:
                reply({"error": f"unknown command {command!r}"})
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
