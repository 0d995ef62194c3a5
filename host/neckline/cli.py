"""The `neckline` command line: one entry point, one module per command group.

Each command module exposes `register(subparsers)`, which adds its parser and sets `func`,
a callable taking the parsed arguments and returning the exit status.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from neckline import __version__
from neckline.errors import NecklineError

COMMAND_MODULES = (
    "neckline.commands.influx",
    "neckline.commands.simulate",
    "neckline.commands.demo",
    "neckline.commands.scan",
    "neckline.commands.pair",
    "neckline.commands.calibrate",
    "neckline.commands.run",
    "neckline.commands.status",
    "neckline.commands.config_cmd",
    "neckline.commands.headache",
    "neckline.commands.correlate",
    "neckline.commands.sim",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neckline",
        description="Open, local-first neck-posture sensing for people with headaches.",
    )
    parser.add_argument("--version", action="version", version=f"neckline {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except NecklineError as exc:
        print(f"neckline: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
