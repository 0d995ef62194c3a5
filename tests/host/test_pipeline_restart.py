"""A host restart loses nothing and duplicates nothing, even after SIGKILL.

The worker (`python -m tests.host.test_pipeline_restart worker ...`) runs the real Pipeline,
Batcher and Spool over the scenario's records into influxd and SIGKILLs itself at a chosen
moment of a chosen step: right after the clocks were saved (before the step reached the spool),
right after the step was spooled (before the rest of the state was saved), or right after the
state was saved. Then a second worker on the same data directory is fed every record again from
the start, as a device backfill would deliver them. InfluxDB must hold every sample exactly once,
at the timestamps an uninterrupted run gives.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from neckline.influxd import InfluxdState
from neckline.influxql import query, series_values
from neckline.pipeline import Pipeline, PipelineSettings
from neckline.store import Batcher, Spool, V1Writer, ensure_schema_v1
from tests.host.pipeline_world import chunks, scenario

REPO = Path(__file__).resolve().parents[2]
STEP = 37  # records per step
RESTART_STEP = 400  # after a restart records come in other batches, as they would from the link


def _posture(url: str, db: str, start: int) -> dict[int, int]:
    rows = series_values(query(
        url, f'SELECT "seq", "flexion_raw" FROM "raw"."posture" WHERE time >= {start - 3_600_000}'
        f"ms AND time < {start + 6 * 3_600_000}ms", db=db))
    return {int(r["seq"]): int(r["time"]) for r in rows}


async def _work(data: Path, url: str, db: str, start: int, kill: str, at: int, step: int
                ) -> None:
    sc = scenario(start, seed=3)
    batcher = Batcher(Spool(data / "spool"), V1Writer(url, db), max_lines=1000, max_delay=0.02)
    await batcher.start()
    settings = PipelineSettings()  # fsync on, as in the service's default
    pipeline = Pipeline(batcher, data / "state", settings, max_lines=1000)
    calls = {"clocks": 0, "submit": 0, "state": 0}

    def wrap(name: str, fn: Any, before: str | None = None) -> Any:
        def inner(*args: Any) -> Any:
            if before is not None and kill == before and calls[name] + 1 == at:
                print(f"killed before {name} #{at}", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            result = fn(*args)
            calls[name] += 1
            if name == kill and calls[name] == at:
                print(f"killed after {name} #{at}", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            return result
        return inner

    pipeline._save_clocks = wrap("clocks", pipeline._save_clocks)  # type: ignore[method-assign]
    # "spooled": the step's output is in the spool, the rest of its state not yet saved.
    pipeline._save_state = wrap(  # type: ignore[method-assign]
        "state", pipeline._save_state, before="spooled")
    batcher.submit = wrap("submit", batcher.submit)  # type: ignore[method-assign]
    for part in chunks(sc.records, iter(lambda: step, None)):
        pipeline.process(part)
        await asyncio.sleep(0)
    pipeline.flush()
    assert await batcher.flush(timeout=60)
    await batcher.close()
    print("done", flush=True)


def _run_worker(data: Path, url: str, db: str, start: int, kill: str = "none", at: int = 0,
                step: int = STEP) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "tests.host.test_pipeline_restart", "worker", str(data), url,
           db, str(start), kill, str(at), str(step)]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


START = (int(time.time() * 1000) // 60_000 - 90) * 60_000


@pytest.fixture(scope="module")
def reference(influxd: InfluxdState, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[tuple[dict[int, int], list[dict[str, Any]]]]:
    """An uninterrupted run: its posture timestamps and its exposure rows."""
    url, db = influxd.url, "pipeline_reference"
    query(url, f'CREATE DATABASE "{db}"')
    try:
        ensure_schema_v1(url, db)
        ref = _run_worker(tmp_path_factory.mktemp("ref"), url, db, START)
        assert ref.returncode == 0, ref.stderr[-2000:]
        yield _posture(url, db, START), _exposure(url, db)
    finally:
        query(url, f'DROP DATABASE "{db}"')


def _exposure(url: str, db: str) -> list[dict[str, Any]]:
    return series_values(query(url, 'SELECT * FROM "forever"."exposure"', db=db))


def _boot_start_step(boot_id: int) -> int:
    """The step in which the first samples of a boot get placed (after the clock warm-up)."""
    records = scenario(START, seed=3).records
    first = next(i for i, r in enumerate(records)
                 if getattr(r, "kind", None) is not None and len(r.data) > 13
                 and r.data[0] == 0x11 and r.data[10] == boot_id)
    return (first + 65) // STEP + 1  # 30 s of evidence is 60 packets of 5 samples


@pytest.mark.parametrize(("kill", "at"), [
    ("clocks", 40), ("submit", 25), ("state", 30),
    # The riskiest moment: the first placement of a boot's samples is spooled, and the clock
    # mapping it used would be different if estimated again from the evidence of other batches.
    ("spooled", _boot_start_step(8)),
])
def test_sigkill_then_restart_and_full_refeed_stores_every_sample_once(
    influxd: InfluxdState, influx_db: str, tmp_path: Path, kill: str, at: int,
    reference: tuple[dict[int, int], list[dict[str, Any]]],
) -> None:
    url = influxd.url
    ensure_schema_v1(url, influx_db)
    killed = _run_worker(tmp_path / "data", url, influx_db, START, kill, at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert f"killed after {kill} #{at}" in killed.stdout or (
        f"killed before state #{at}" in killed.stdout)
    partial = _posture(url, influx_db, START)
    assert 0 < len(partial) < 10_000, "killed mid-stream"
    again = _run_worker(tmp_path / "data", url, influx_db, START, step=RESTART_STEP)
    assert again.returncode == 0 and "done" in again.stdout, again.stderr[-2000:]
    want_posture, want_exposure = reference
    got = _posture(url, influx_db, START)
    # Every sample once: a sample placed again at another millisecond would be a second point.
    assert len(got) == len(want_posture) == 10_000 and got.keys() == want_posture.keys()
    assert all(got[seq] == t for seq, t in partial.items())  # stored ones kept their time
    # Close to the uninterrupted run (other batches see the clock evidence at other moments).
    assert max(abs(got[seq] - t) for seq, t in want_posture.items()) <= 5
    assert [r["time"] for r in _exposure(url, influx_db)] == [r["time"] for r in want_exposure]


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    worker = sub.add_parser("worker")
    worker.add_argument("data", type=Path)
    worker.add_argument("url")
    worker.add_argument("db")
    worker.add_argument("start", type=int)
    worker.add_argument("kill")
    worker.add_argument("at", type=int)
    worker.add_argument("step", type=int)
    args = parser.parse_args()
    asyncio.run(_work(args.data, args.url, args.db, args.start, args.kill, args.at, args.step))


if __name__ == "__main__":
    main()
