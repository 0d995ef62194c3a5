"""Micro-benchmark of the storage stage: posture encoding against influxdb-client's Point API and
against the server's own ingest time (bare POSTs to a private influxd), plus the whole pipeline
(encode, spool with fsync, batch, POST).

Prints ONE JSON line. Usage: .venv/bin/python bench/ingest_store.py [--rows N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
from influxdb_client import Point, WritePrecision

from neckline.influxd import temporary_influxd
from neckline.influxql import query
from neckline.store import Batcher, LineBatch, Spool, V1Writer, encode_posture

BATCH = 5000


def _columns(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    seq = np.arange(n, dtype=np.int64)
    now_ms = (int(time.time() * 1000) // 60_000 - 120) * 60_000
    return {
        "time_ms": now_ms + seq * 100, "seq": seq,
        "flexion": rng.normal(15, 12, n), "lateral": rng.normal(0, 6, n),
        "rotation": rng.normal(0, 20, n),
        "flexion_raw": np.round(rng.normal(15, 12, n), 2),
        "lateral_raw": np.round(rng.normal(0, 6, n), 2),
        "boot": np.full(n, 3), "flags": rng.integers(0, 8, n), "worn": np.ones(n, int),
        "strain": (rng.random(n) < 0.2).astype(int), "backfill": np.zeros(n, int),
    }


def _best(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _encode(cols: dict[str, np.ndarray], decimals: int | None) -> list[LineBatch]:
    out = []
    for i in range(0, len(cols["seq"]), BATCH):
        part = {k: v[i : i + BATCH] for k, v in cols.items()}
        batch = encode_posture("neckline-bench", decimals=decimals, **part)
        assert batch is not None
        out.append(batch)
    return out


def _point_api(cols: dict[str, np.ndarray], n: int) -> bytes:
    lists = {k: v[:n].tolist() for k, v in cols.items()}
    lines = []
    for i in range(n):
        p = Point("posture").tag("device", "neckline-bench").time(lists["time_ms"][i],
                                                                  WritePrecision.MS)
        for name in ("flexion", "lateral", "rotation", "flexion_raw", "lateral_raw", "seq",
                     "boot", "flags", "worn", "strain", "backfill"):
            p.field(name, lists[name][i])
        lines.append(p.to_line_protocol())
    return "\n".join(lines).encode()


def _post(url: str, db: str, body: bytes) -> None:
    req = urllib.request.Request(f"{url}/write?db={db}&precision=ms", data=body)
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 204


async def _pipeline(url: str, db: str, batches: list[LineBatch], spool_dir: Path) -> float:
    batcher = Batcher(Spool(spool_dir), V1Writer(url, db, retention_policies={"raw": None}),
                      max_lines=BATCH, max_delay=0.05)
    t0 = time.perf_counter()
    async with batcher:
        for batch in batches:
            batcher.submit(batch)
            await asyncio.sleep(0)
        assert await batcher.flush(timeout=300)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    rows = parser.parse_args().rows
    cols = _columns(rows)
    encode_s = _best(lambda: _encode(cols, 4))
    exact_s = _best(lambda: _encode(cols, None))
    point_n = min(rows, 20_000)
    point_s = _best(lambda: _point_api(cols, point_n), repeat=1)
    batches = _encode(cols, 4)
    with tempfile.TemporaryDirectory() as tmp, temporary_influxd(Path(tmp) / "db") as state:
        query(state.url, 'CREATE DATABASE "bench"')
        query(state.url, 'CREATE DATABASE "bench2"')
        t0 = time.perf_counter()
        for batch in batches:
            _post(state.url, "bench", batch.body)
        post_s = time.perf_counter() - t0
        pipeline_s = asyncio.run(_pipeline(state.url, "bench2", batches, Path(tmp) / "spool"))
    per_line = 1e6 / rows
    result = {
        "bench": "ingest_store",
        "rows": rows,
        "batch_lines": BATCH,
        "bytes_per_line": round(sum(len(b.body) for b in batches) / rows, 1),
        "encode_us_per_line": round(encode_s * per_line, 3),
        "encode_exact_us_per_line": round(exact_s * per_line, 3),
        "point_api_us_per_line": round(point_s * 1e6 / point_n, 3),
        "post_us_per_line": round(post_s * per_line, 3),
        "encode_fraction_of_post": round(encode_s / post_s, 3),
        "pipeline_points_per_s": round(rows / pipeline_s),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
