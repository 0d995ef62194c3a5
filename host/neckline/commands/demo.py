"""`neckline demo`: the main job on embedded defaults, with simulated data.

Today it runs the parts that exist end to end: the private local InfluxDB, the simulated wearer
and headache models, and the durable storage stage. Demo data goes into its own database
(`neckline_demo`) so it never mixes with a real wearer's data.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from neckline import config as config_mod
from neckline.influxd import InfluxdState, LocalInfluxd
from neckline.influxql import query, series_values
from neckline.paths import data_dir, ensure_private_dir
from neckline.sim.headache import HeadacheConfig
from neckline.sim.person import PersonData, simulate_person
from neckline.store import Batcher, Point, Spool, V1Writer, encode_points, ensure_schema_v1
from neckline.store.schema import destination

DEMO_DB = "neckline_demo"
DEMO_DEVICE = "demo-wearer"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "demo",
        help="run the main job on simulated data (what `make demo` runs)",
        description=(
            "Start the private InfluxDB, simulate weeks of a wearer's per-minute neck-strain "
            f"exposure and headache diary, store them through Neckline's storage stage into the "
            f"'{DEMO_DB}' database, and summarise what was stored."
        ),
    )
    parser.add_argument("--days", type=int, default=28, help="days of history to simulate")
    parser.add_argument("--seed", type=int, default=7, help="simulation seed")
    parser.add_argument(
        "--keep-running", action="store_true",
        help="leave the local InfluxDB running afterwards (to look at the data)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.days < 1:
        print("neckline demo: --days must be at least 1", file=sys.stderr)
        return 2
    cfg = config_mod.load()
    root = (cfg.data_dir or data_dir())
    with _influx(root / "influxdb", keep=args.keep_running or cfg.influx.external) as url:
        ensure_schema_v1(url, DEMO_DB)
        start = (datetime.now(UTC) - timedelta(days=args.days)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        print(f"Simulating {args.days} days of a wearer (seed {args.seed}) ...")
        # A planted effect: odds ratio 2.5 per hour of strain 6-12 h before onset.
        planted = HeadacheConfig(log_or_per_hour=float(np.log(2.5)), lag_h=(6.0, 12.0))
        person = simulate_person(args.seed, start, days=args.days, headache=planted)
        spool_dir = ensure_private_dir(root / "demo-spool")
        written = asyncio.run(_store(url, spool_dir, person))
        print(f"Stored {written} points through the spool into {url} (database {DEMO_DB}).")
        _summarise(url, person)
        print(f"\nData lives in {root / 'influxdb'}; the spool in {spool_dir}.")
    return 0


@contextlib.contextmanager
def _influx(root: Path, keep: bool) -> Iterator[str]:
    cfg = config_mod.load()
    if cfg.influx.external and cfg.influx.url:
        print(f"Using the configured external InfluxDB at {cfg.influx.url}")
        yield cfg.influx.url
        return
    server = LocalInfluxd(root)
    already = server.running()
    state: InfluxdState = already or server.start()
    print(f"Local InfluxDB at {state.url} (pid {state.pid})")
    try:
        yield state.url
    finally:
        if already is None and not keep:
            server.stop()
            print("Local InfluxDB stopped (`neckline influx start` brings it back).")


def _points(person: PersonData) -> Iterator[Point]:
    obs = person.observed
    minutes = obs.minute_epoch_s
    for i in np.flatnonzero(obs.wear_s > 0):
        yield Point(
            "exposure", int(minutes[i]) * 1000, {"device": DEMO_DEVICE},
            {
                "wear_s": float(obs.wear_s[i]), "strain_s": float(obs.strain_s[i]),
                "strain_load": float(obs.strain_load[i]), "mean_flexion": float(obs.flex_mean[i]),
                "max_flexion": float(obs.flex_max[i]), "source": 1,
            },
        )
    diary = person.diary
    for onset, severity, kind in zip(
        diary.onset_epoch_s, diary.severity, diary.kind, strict=True
    ):
        yield Point(
            "headache", int(onset) * 1000, {"source": "import"},
            {"severity": int(severity), "type": str(kind), "id": f"demo-{int(onset)}"},
        )


async def _store(url: str, spool_dir: Path, person: PersonData) -> int:
    batcher = Batcher(Spool(spool_dir), V1Writer(url, DEMO_DB))
    await batcher.start()
    try:
        report = encode_points(_points(person))
        for batch in report.batches:
            batcher.submit(batch)
        if not await batcher.flush(timeout=120):
            raise RuntimeError("the storage stage did not drain within 120 s")
        return batcher.status().written_points
    finally:
        await batcher.close()


def _qualified(measurement: str) -> str:
    return f'"{destination(measurement)}"."{measurement}"'


def _summarise(url: str, person: PersonData) -> None:
    rows = series_values(query(
        url,
        "SELECT sum(wear_s) AS wear, sum(strain_s) AS strain "
        f"FROM {_qualified('exposure')} "
        f"WHERE device = '{DEMO_DEVICE}' AND time > now() - 60d GROUP BY time(1d) fill(none)",
        db=DEMO_DB, epoch="s",
    ))
    print("\nDay         worn h  strain % of wear")
    for row in rows:
        day = datetime.fromtimestamp(row["time"], UTC).strftime("%a %m-%d")
        wear_h = row["wear"] / 3600
        pct = 100 * row["strain"] / row["wear"] if row["wear"] else float("nan")
        print(f"{day:10}  {wear_h:6.1f}  {pct:6.1f}  {'#' * int(pct / 2)}")
    headaches = series_values(query(
        url, f"SELECT count(severity) FROM {_qualified('headache')} WHERE time > now() - 60d",
        db=DEMO_DB,
    ))
    n_stored = int(headaches[0]["count"]) if headaches else 0
    print(f"\nHeadaches in the simulated diary: {len(person.diary)} (stored: {n_stored}).")
    print("To analyse it: neckline correlate (with INFLUX_DB=neckline_demo and the server running,")
    print("e.g. `neckline demo --keep-running`), or offline with --exposure/--headaches CSV files.")
