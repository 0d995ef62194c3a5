"""`neckline influx start|stop|status`: the private local InfluxDB."""

from __future__ import annotations

import argparse
from pathlib import Path

from neckline import config as config_mod
from neckline.influxd import LocalInfluxd
from neckline.influxql import ping, query
from neckline.paths import local_influx_dir


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "influx",
        help="run the private local InfluxDB",
        description=(
            "Start, stop or inspect Neckline's private InfluxDB 1.x server. It listens on "
            "127.0.0.1 only, on a free port. When an external server is configured (INFLUX_URL "
            "or [influx] url in the config file), Neckline uses that instead."
        ),
    )
    parser.add_argument(
        "--dir", type=Path, default=None,
        help="where the server keeps its files (default: the user data dir)",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    start = actions.add_parser("start", help="start the server (no-op if already running)")
    start.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for /ping")
    start.set_defaults(func=_start)
    actions.add_parser("stop", help="stop the server cleanly").set_defaults(func=_stop)
    actions.add_parser(
        "status", help="show whether it runs, its URL and where the data lives"
    ).set_defaults(func=_status)


def _server(args: argparse.Namespace) -> LocalInfluxd:
    if args.dir is not None:
        return LocalInfluxd(args.dir)
    cfg = config_mod.load()
    root = cfg.data_dir / "influxdb" if cfg.data_dir else local_influx_dir()
    return LocalInfluxd(root)


def _start(args: argparse.Namespace) -> int:
    cfg = config_mod.load()
    if cfg.influx.external:
        print(f"An external InfluxDB is configured ({cfg.influx.url}); no local server started.")
        print("Unset INFLUX_URL / [influx] url to use the private local server instead.")
        return 0
    server = _server(args)
    state = server.start(timeout=args.timeout)
    query(state.url, f'CREATE DATABASE "{cfg.influx.database}"')
    print(f"influxd running (pid {state.pid})")
    print(f"  url:      {state.url}")
    print(f"  database: {cfg.influx.database}")
    print(f"  data:     {server.root}")
    print(f"  log:      {server.log_path}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    server = _server(args)
    if server.stop():
        print(f"influxd stopped; data kept in {server.root}")
    else:
        print("influxd is not running")
    return 0


def _status(args: argparse.Namespace) -> int:
    cfg = config_mod.load()
    if cfg.influx.external:
        version = ping(cfg.influx.url or "")
        state = f"reachable (InfluxDB {version})" if version else "NOT reachable"
        print(f"external InfluxDB {cfg.influx.url}: {state}")
    server = _server(args)
    running = server.running()
    if running is None:
        print(f"local influxd: stopped (data dir {server.root})")
        return 0 if cfg.influx.external else 3
    version = ping(running.url)
    health = f"answering, InfluxDB {version}" if version else "NOT answering /ping"
    print(f"local influxd: running (pid {running.pid}), {health}")
    print(f"  url:  {running.url}")
    print(f"  data: {server.root}")
    print(f"  log:  {server.log_path}")
    return 0 if version else 1
