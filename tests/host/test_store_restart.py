"""Nothing lost when the server goes away mid-stream, or when the writing process is SIGKILLed.

The SIGKILL test runs this module as a script (`python -m tests.host.test_store_restart writer
...`): a small process that streams posture points through a real spool and batcher into influxd
and reports after each batch that `submit` has returned (i.e. is durably spooled).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import neckline.influxd
from neckline.backoff import Backoff
from neckline.influxd import InfluxdState, LocalInfluxd
from neckline.influxql import ping, query, series_values
from neckline.store import (
    Batcher,
    LineBatch,
    Spool,
    V1Writer,
    encode_posture,
    ensure_schema_v1,
)

REPO = Path(__file__).resolve().parents[2]
T0 = (int(time.time() * 1000) // 60_000 - 30) * 60_000
DEVICE = "neckline-kill"


def _chunk(start: int, end: int) -> LineBatch:
    seq = np.arange(start, end, dtype=np.int64)
    batch = encode_posture(
        DEVICE, time_ms=T0 + seq * 100, flexion=seq * 0.01, lateral=0.0, rotation=0.0,
        flexion_raw=seq * 0.01, lateral_raw=0.0, seq=seq, boot=1, flags=0, worn=1, strain=0,
        backfill=0,
    )
    assert batch is not None
    return batch


def _seqs(url: str, db: str) -> list[int]:
    rows = series_values(query(url, 'SELECT "seq" FROM "posture"', db=db))
    return [int(r["seq"]) for r in rows]


# -- server stopped and started again mid-stream -------------------------------------------------


@pytest.fixture
def own_influxd(tmp_path: Path) -> Iterator[LocalInfluxd]:
    server = LocalInfluxd(tmp_path / "influxd")
    try:
        yield server
    finally:
        server.stop(grace=10.0)


async def test_server_restart_mid_stream_loses_nothing(
    own_influxd: LocalInfluxd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = own_influxd.start(die_with_parent=True)
    query(state.url, 'CREATE DATABASE "restart"')
    writer = V1Writer(state.url, "restart", retention_policies={"raw": None})
    batcher = Batcher(Spool(tmp_path / "spool"), writer, max_lines=100, max_delay=0.02,
                      backoff=Backoff(base=0.05, cap=0.25))
    total, chunk = 3000, 50
    async with batcher:
        for start in range(0, total, chunk):
            batcher.submit(_chunk(start, start + chunk))
            await asyncio.sleep(0.002)
            if start == 1000:
                await asyncio.to_thread(own_influxd.stop, grace=10.0)
                assert ping(state.url) is None
            if start == 2000:
                assert batcher.status().pending_lines >= 1000, "data piled up in the spool"
                # LocalInfluxd picks fresh ports on every start; hand it the old ones so the
                # writer's URL stays valid (see the report: a fixed-port option would help).
                same_ports = iter([state.port, state.rpc_port]).__next__
                monkeypatch.setattr(neckline.influxd, "free_port", same_ports)
                again = await asyncio.to_thread(own_influxd.start, die_with_parent=True)
                assert again.url == state.url
        assert await batcher.flush(timeout=30)
        status = batcher.status()
    assert status.retries > 0 and status.last_error is not None
    assert status.written_points == total and status.rejected_points == 0
    seqs = _seqs(state.url, "restart")
    assert len(seqs) == total and sorted(seqs) == list(range(total))


# -- the writing process killed with SIGKILL, then started again on the same spool --------------


def _run_writer(spool: Path, url: str, db: str, start: int, end: int, *, hold: bool = False,
                kill_after: int | None = None) -> tuple[list[str], int]:
    """Run the writer script; SIGKILL it once it reports `kill_after` (or when it holds)."""
    cmd = [sys.executable, "-m", "tests.host.test_store_restart", "writer", str(spool), url, db,
           str(start), str(end)] + (["--hold"] if hold else [])
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout is not None
    watchdog = threading.Timer(90.0, proc.kill)  # never let a stuck writer hang the test run
    watchdog.start()
    out: list[str] = []
    try:
        for raw in proc.stdout:
            line = raw.strip()
            out.append(line)
            word, _, value = line.partition(" ")
            if word == "HOLD" or (kill_after is not None and word == "P"
                                  and int(value) >= kill_after):
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=60)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return out, proc.returncode


def _progress(out: list[str], start: int) -> int:
    done = [int(line.split()[1]) for line in out if line.startswith("P ")]
    return done[-1] if done else start


def _recovered(out: list[str]) -> int:
    return int(next(line for line in out if line.startswith("R ")).split()[1])


def test_sigkilled_writer_resumes_and_every_point_is_stored_once(
    influxd: InfluxdState, influx_db: str, tmp_path: Path
) -> None:
    ensure_schema_v1(influxd.url, influx_db)
    spool, total = tmp_path / "spool", 4000
    # 1: killed at an arbitrary moment mid-stream.
    out, code = _run_writer(spool, influxd.url, influx_db, 0, total, kill_after=1200)
    assert code == -signal.SIGKILL
    resume = _progress(out, 0)
    assert 1200 <= resume < total
    # 2: resumes, then is killed while unsent lines wait in the spool (fewer than max_lines).
    out, code = _run_writer(spool, influxd.url, influx_db, resume, 2630, hold=True)
    assert code == -signal.SIGKILL
    resume = _progress(out, resume)
    assert resume == 2635
    # 3: resumes, finishes, closes cleanly.
    out, code = _run_writer(spool, influxd.url, influx_db, resume, total)
    assert code == 0, out
    assert out[-1] == "DONE"
    assert _recovered(out) > 0, "the killed run's unsent lines were replayed from the spool"
    seqs = _seqs(influxd.url, influx_db)
    assert len(seqs) == total, "every point exactly once"
    assert sorted(seqs) == list(range(total))
    assert not list(spool.glob("*.seg")), "everything delivered was acknowledged"


async def _writer_main(args: argparse.Namespace) -> None:
    batcher = Batcher(
        Spool(Path(args.spool)), V1Writer(args.url, args.db), max_lines=200, max_delay=60.0,
        backoff=Backoff(base=0.05, cap=0.5),
    )
    report = await batcher.start()
    print(f"R {report.pending_lines}", flush=True)
    for start in range(args.start, args.end, 10):
        end = min(start + 10, args.end)
        batcher.submit(_chunk(start, end))
        print(f"P {end}", flush=True)
        await asyncio.sleep(0.001)
    if args.hold:
        # Let full batches go; then one 5-line record makes sure some lines are left waiting
        # (all other records are 10 lines and batches 200, so the pending count can't be 0).
        await asyncio.sleep(0.5)
        batcher.submit(_chunk(args.end, args.end + 5))
        print(f"P {args.end + 5}", flush=True)
        print("HOLD", flush=True)
        await asyncio.sleep(60)  # killed long before; bounded in case nobody does
    delivered = await batcher.close(timeout=30)
    print("DONE" if delivered else "UNDELIVERED", flush=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["writer"])
    parser.add_argument("spool")
    parser.add_argument("url")
    parser.add_argument("db")
    parser.add_argument("start", type=int)
    parser.add_argument("end", type=int)
    parser.add_argument("--hold", action="store_true")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(_writer_main(parser.parse_args(argv)))


if __name__ == "__main__":
    main(sys.argv[1:])
