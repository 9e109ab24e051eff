"""``cryptomus-exporter simulate``: run the simulator, or inject a fault into a running one.

This module monkey-patches nothing: the simulator only uses gevent APIs, and the
fault client only makes one blocking HTTP call.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gevent
import orjson
from gevent.event import Event

from .config import REPEAT_SUBSCRIPTION_MODES, SimulatorConfig
from .control import FAULT_PARAMS
from .faults import Faults
from .wire import CHANNELS

DEFAULT_LISTEN = "127.0.0.1:8765"
CONTROL_TIMEOUT = 5.0
DEMO_API_KEY = "demo-api-key"


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) -> (host, port)."""
    host, separator, port = value.rpartition(":")
    if not separator or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def parse_markets(value: str) -> int | list[str]:
    if value.isdigit():
        return int(value)
    return [symbol.strip() for symbol in value.split(",") if symbol.strip()]


def parse_scales(value: str) -> list[int]:
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        message = f"expected scale indices like 0,1, got {value!r}"
        raise argparse.ArgumentTypeError(message) from None


def parse_channels(value: str) -> list[str]:
    channels = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [channel for channel in channels if channel not in CHANNELS]
    if unknown or not channels:
        raise argparse.ArgumentTypeError(
            f"expected channels from {', '.join(CHANNELS)}, got {value!r}"
        )
    return channels


def parse_speed(value: str) -> float:
    """A replay speed factor; 0 or "max": as fast as possible."""
    if value == "max":
        return 0.0
    try:
        speed = float(value)
    except ValueError:
        speed = -1.0
    if not speed >= 0:
        raise argparse.ArgumentTypeError(f"expected a factor >= 0 or 'max', got {value!r}")
    return speed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run a protocol-faithful fake Cryptomus exchange (REST and WebSocket on one port), "
        "replay a recorded session with --replay, or with --fault/--stats talk to a running one."
    )
    parser.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"address to serve on (default {DEFAULT_LISTEN}; port 0 picks a free one)",
    )
    parser.add_argument(
        "--markets",
        default="3",
        type=parse_markets,
        metavar="N|A,B",
        help="number of markets (1..1000) or a comma list of symbols (default 3)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=20.0,
        help="generated events per second over all markets; 0 = as fast as possible (default 20)",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=60.0,
        help="close a WebSocket after this many seconds without a client request (default 60)",
    )
    parser.add_argument(
        "--token-ttl",
        type=float,
        default=300.0,
        help="seconds a one-time token stays valid (default 300)",
    )
    parser.add_argument(
        "--depth-levels",
        type=int,
        default=50,
        help="order book levels per side, 1..200 (default 50)",
    )
    parser.add_argument(
        "--user-id", default="demo-user", help="accepted userId header (default demo-user)"
    )
    parser.add_argument(
        "--api-key",
        default=DEMO_API_KEY,
        help="API key signs are checked against (default demo-api-key)",
    )
    parser.add_argument(
        "--no-autogen", action="store_true", help="do not generate market or account activity"
    )
    parser.add_argument(
        "--tls-cert",
        metavar="PEM",
        help="serve REST and the WebSocket over TLS (https://, wss://) with this certificate",
    )
    parser.add_argument("--tls-key", metavar="PEM", help="private key for --tls-cert")
    switches = parser.add_argument_group(
        "exchange behaviour switches (readings of the protocol's open points)"
    )
    switches.add_argument(
        "--depth-scales",
        type=parse_scales,
        default=[0],
        metavar="I,J",
        help="scale indices that depth_subscribe [\"all\"] delivers per market; several "
        "interleave depth_update frames of each scale_index for one symbol (default 0)",
    )
    switches.add_argument(
        "--ack-failure",
        type=parse_channels,
        default=[],
        metavar="CHANNEL[,CHANNEL]",
        help='answer subscribes to these channels with data {"status": "failure"} and '
        "error null, subscribing nothing",
    )
    switches.add_argument(
        "--pong-id-zero",
        action="store_true",
        help="pongs always carry id 0 instead of the ping's id",
    )
    switches.add_argument(
        "--repeat-subscription",
        choices=REPEAT_SUBSCRIPTION_MODES,
        default="reject",
        help="a second subscribe to a channel on one connection: reject it with error code 2 "
        "(default), or replace the old subscription (success ack; depth books reload)",
    )
    switches.add_argument(
        "--late-book",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="send each book's full reload this long after the depth subscribe's ack, and "
        "partial depth updates of it meanwhile (default 0: right after the ack)",
    )
    replay = parser.add_argument_group("replaying a recording")
    replay.add_argument(
        "--replay",
        metavar="FILE",
        help='serve this recording (JSON lines {"t": unix time, "frame": text}, gzip if it '
        "ends in .gz, as `record` writes them) to every WebSocket client once it has "
        "subscribed, instead of generated markets; the client's own requests are answered "
        "live, the recorded replies are not replayed",
    )
    replay.add_argument(
        "--speed",
        type=parse_speed,
        default=1.0,
        metavar="X",
        help="replay X times as fast as recorded; 0 or max: as fast as possible (default 1)",
    )
    control = parser.add_argument_group("controlling a running simulator")
    control.add_argument(
        "--fault",
        choices=sorted(FAULT_PARAMS),
        metavar="NAME",
        help=f"inject a fault and exit: {', '.join(sorted(FAULT_PARAMS))}",
    )
    control.add_argument(
        "--stats", action="store_true", help="print the running simulator's counters and exit"
    )
    control.add_argument(
        "--target",
        metavar="URL",
        help="base URL of the running simulator (default http://<--listen>)",
    )
    control.add_argument(
        "--seconds", type=float, help="duration for go_silent / refuse_connections"
    )
    control.add_argument("--count", type=int, help="number of failing calls for fail_token")
    control.add_argument(
        "--status", type=int, help="HTTP status for fail_token / refuse_connections / fail_scales"
    )
    control.add_argument(
        "--market",
        help="market for partial_depth_before_reload / crossed_book; markets (a comma list) "
        "for fail_scales",
    )
    control.add_argument(
        "--channels", help="fail_acks: channels (a comma list; empty: none) whose subscribes fail"
    )
    control.add_argument(
        "--kind", choices=Faults.GARBAGE_KINDS, help="garbage kind for send_garbage"
    )
    control.add_argument(
        "--mode", choices=("status", "reset"), help="refuse_connections: HTTP status or TCP reset"
    )


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    """Raises ValueError (or ArgumentTypeError) naming the bad option."""
    host, port = parse_listen(args.listen)
    return SimulatorConfig(
        host=host,
        port=port,
        seed=args.seed,
        markets=args.markets,
        rate=args.rate,
        autogen=not args.no_autogen,
        idle_timeout=args.idle_timeout,
        token_ttl=args.token_ttl,
        depth_levels=args.depth_levels,
        user_id=args.user_id,
        api_key=args.api_key,
        depth_scales=args.depth_scales,
        ack_failure_channels=args.ack_failure,
        pong_id_zero=args.pong_id_zero,
        repeat_subscription=args.repeat_subscription,
        late_book=args.late_book,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        replay=args.replay,
        replay_speed=args.speed,
    )


def run(args: argparse.Namespace) -> int:
    if args.fault or args.stats:
        return _control(args)
    try:
        config = config_from_args(args)
        from .simulator import Simulator  # noqa: PLC0415 - not loaded by `exporter run`

        sim = Simulator(config)  # reads the recording and the TLS files
    except (ValueError, OSError, argparse.ArgumentTypeError) as error:
        print(f"simulate: {error}", file=sys.stderr)
        return 2
    try:
        sim.start()
    except OSError as error:
        print(f"simulate: cannot listen on {args.listen}: {error}", file=sys.stderr)
        return 1
    stop = Event()
    handlers = [
        gevent.signal_handler(signum, stop.set) for signum in (signal.SIGINT, signal.SIGTERM)
    ]
    # The demo key is printed so a user can copy it; a key of the user's own is not.
    shown_key = config.api_key if config.api_key == DEMO_API_KEY else "<from --api-key>"
    if sim.recording is not None:
        feed = (
            f"replay={config.replay} frames={sim.recording.frames} "
            f"speed={'max' if config.replay_speed == 0 else f'{config.replay_speed:g}'}"
        )
    else:
        feed = f"rate={config.rate:g}/s seed={config.seed}"
    print(
        f"cryptomus simulator: REST {sim.base_url} WebSocket {sim.ws_url} "
        f"userId={config.user_id} apiKey={shown_key} markets={len(sim.markets)} {feed} "
        f"(control: POST {sim.base_url}/_sim/faults/<name>)",
        flush=True,
    )
    try:
        stop.wait()
    finally:
        for handler in handlers:
            handler.cancel()
        sim.stop()
    return 0


def _control(args: argparse.Namespace) -> int:
    import requests  # noqa: PLC0415 (only the control client needs it)

    target = (args.target or f"http://{args.listen}").rstrip("/")
    try:
        if args.stats:
            response = requests.get(f"{target}/_sim/stats", timeout=CONTROL_TIMEOUT)
        else:
            params = {
                name: getattr(args, name)
                for name in FAULT_PARAMS[args.fault]
                if getattr(args, name, None) is not None
            }
            response = requests.post(
                f"{target}/_sim/faults/{args.fault}", params=params, timeout=CONTROL_TIMEOUT
            )
    except requests.RequestException as error:
        print(f"simulate: cannot reach {target}: {error}", file=sys.stderr)
        return 1
    try:
        body = orjson.dumps(response.json(), option=orjson.OPT_INDENT_2).decode()
    except ValueError:
        body = response.text
    print(body)
    return 0 if response.status_code == 200 else 1
