"""Command line: flags (Prometheus exporter style) -> Settings -> run.

Subcommands: ``run`` (the default), ``simulate`` (the built-in fake exchange),
``record`` (capture what the exchange sends) and ``check-config``. Every
option is also an environment variable (CRYPTOMUS_*); a flag wins over the
environment. A bad value stops start-up with one line naming the option and
exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from .app import Exporter
from .logs import Redactor, setup_logging
from .settings import ENV_PREFIX, ConfigError, Settings, load_settings, option_names
from .webconfig import WebConfigError, load_web_config

PROG = "cryptomus-exporter"
COMMANDS = ("run", "simulate", "record", "check-config")
EXIT_CONFIG = 2

DESCRIPTION = """\
Prometheus exporter for the Cryptomus exchange: prices, 24 h tickers, order books,
trades, the account's balances, orders and fills, and the WebSocket's own health.

  cryptomus-exporter --demo            try it on the built-in simulator, no credentials
  cryptomus-exporter                   run (needs CRYPTOMUS_USER_ID and CRYPTOMUS_API_KEY)
  cryptomus-exporter check-config      validate the configuration and exit
  cryptomus-exporter record --output F capture what the exchange sends (replay: simulate --replay)
  cryptomus-exporter simulate --help   the simulated exchange on its own

Every option is also an environment variable, shown in brackets.
"""


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    groups: dict[str, argparse._ArgumentGroup] = {}
    for name, field in Settings.model_fields.items():
        flag = (field.json_schema_extra or {}).get("flag")
        if not flag:
            continue
        section = flag.removeprefix("--").split(".")[0]
        group = groups.get(section) or groups.setdefault(
            section, parser.add_argument_group(f"{section} options"))
        env = f"{ENV_PREFIX}{name.upper()}"
        default = (field.json_schema_extra or {}).get("derived") or field.default
        if isinstance(default, tuple):
            default = ",".join(str(item) for item in default)
        shown = "" if default in (None, False) else f"; default {default}"
        help_text = f"{field.description} [{env}{shown}]".replace("%", "%%")
        if field.annotation is bool:
            group.add_argument(flag, dest=name, action="store_true", default=argparse.SUPPRESS,
                               help=help_text)
        else:
            group.add_argument(flag, dest=name, metavar=name.upper(), default=argparse.SUPPRESS,
                               help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_settings_arguments(parser)
    commands = parser.add_subparsers(dest="command",
                                     metavar="{run,simulate,record,check-config}")
    run = commands.add_parser("run", help="run the exporter (default)")
    add_settings_arguments(run)
    check = commands.add_parser("check-config", help="validate the configuration and exit")
    add_settings_arguments(check)
    recorder = commands.add_parser(
        "record", help="connect and subscribe as the exporter does, and write every frame "
                       "received to a file (replay it with simulate --replay)")
    recorder.add_argument("--output", required=True, metavar="FILE",
                          help="the recording: one JSON line per frame; gzip when FILE ends "
                               "in .gz")
    recorder.add_argument("--seconds", type=_seconds, metavar="N",
                          help="stop after N seconds (default: at SIGINT/SIGTERM)")
    add_settings_arguments(recorder)
    # Its options are parsed by the simulator's own parser, imported only for this command.
    commands.add_parser("simulate", help="run the simulated Cryptomus exchange", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "simulate":
        simulator_cli = _simulator_cli()
        simulate = argparse.ArgumentParser(prog=f"{PROG} simulate",
                                           description="The simulated Cryptomus exchange.")
        simulator_cli.add_arguments(simulate)
        return simulator_cli.run(simulate.parse_args(rest))
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    overrides = {name: value for name, value in vars(args).items()
                 if name in Settings.model_fields}
    try:
        settings = load_settings(**overrides)
    except ConfigError as error:
        return _fail(f"invalid configuration: {error}", EXIT_CONFIG)
    redactor = Redactor()
    setup_logging(settings.log_level, settings.log_format, redactor)
    if args.command == "check-config":
        return check_config(settings)
    if args.command == "record":
        return record_frames(settings, redactor, args.output, args.seconds)
    return run(settings, redactor)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {value!r}")
    return seconds


def record_frames(settings: Settings, redactor: Redactor, output: str,
                  seconds: float | None) -> int:
    from .record import record  # noqa: PLC0415 - only for this command

    try:
        return record(settings, redactor, output, seconds)
    except OSError as error:
        return _fail(f"cannot write {output}: {error.strerror or error}", 1)


def check_config(settings: Settings) -> int:
    if settings.web_config_file:
        try:
            load_web_config(str(settings.web_config_file))
        except WebConfigError as error:
            return _fail(f"invalid configuration: {option_names('web_config_file')}: {error}",
                         EXIT_CONFIG)
    markets = "all" if settings.all_markets else ",".join(settings.markets)
    print(f"configuration OK: markets={markets} channels={','.join(settings.channels)} "
          f"listen={settings.listen_address} demo={settings.demo}")
    return 0


def run(settings: Settings, redactor: Redactor) -> int:
    try:
        exporter = Exporter(settings, redactor=redactor)
    except WebConfigError as error:
        return _fail(f"invalid configuration: {option_names('web_config_file')}: {error}",
                     EXIT_CONFIG)
    except ValueError as error:  # e.g. an unusable listen address
        return _fail(f"invalid configuration: {option_names('listen_address')}: {error}",
                     EXIT_CONFIG)
    try:
        return exporter.serve_forever()
    except OSError as error:
        exporter.stop()
        return _fail(f"cannot listen on {settings.listen_address}: {error.strerror or error}", 1)


def _simulator_cli():
    """The simulator's command line, imported only when it is needed."""
    from .simulator import cli  # noqa: PLC0415 - not on every run

    return cli


def _fail(message: str, status: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status
