"""`python -m neckline.vble serve ...` runs the virtual BlueZ; `... ctl OP k=v ...` drives it.

Examples:
    python -m neckline.vble serve --runtime-dir /tmp/vble
    python -m neckline.vble ctl --control 127.0.0.1:40123 state
    python -m neckline.vble ctl --control 127.0.0.1:40123 drop_link addr=AA:BB:CC:DD:EE:FF seconds=3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from neckline.vble.client import VBleClient, VBleControlError
from neckline.vble.server import ServeError, ServeOptions, serve


def _parse_value(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neckline.vble", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("serve", help="run the virtual BlueZ (prints one JSON ready line)")
    run.add_argument("--bus", help="use this bus address instead of starting a private daemon")
    run.add_argument("--runtime-dir", type=Path, help="where the private bus socket lives")
    run.add_argument("--state-file", type=Path, help="keep bonds in this JSON file")
    run.add_argument("--bridge-port", type=int, default=0)
    run.add_argument("--control-port", type=int, default=0)
    run.add_argument("--ready-file", type=Path, help="also write the ready line here")
    run.add_argument("--log-level", default="INFO")

    ctl = sub.add_parser("ctl", help="send one control request and print the result")
    ctl.add_argument("--control", required=True, help="HOST:PORT from the ready line")
    ctl.add_argument("op")
    ctl.add_argument("args", nargs="*", metavar="key=value",
                     help="arguments; values are parsed as JSON when they parse")

    args = parser.parse_args(argv)
    if args.command == "serve":
        logging.basicConfig(
            level=args.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        opts = ServeOptions(
            bus_address=args.bus, runtime_dir=args.runtime_dir, state_file=args.state_file,
            bridge_port=args.bridge_port, control_port=args.control_port,
            ready_file=args.ready_file,
        )
        try:
            asyncio.run(serve(opts))
        except ServeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0

    kwargs: dict[str, object] = {}
    for item in args.args:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"argument {item!r} is not key=value")
        kwargs[key] = _parse_value(value)
    try:
        with VBleClient(args.control) as client:
            print(json.dumps(client.call(args.op, **kwargs), indent=1))
    except (VBleControlError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
