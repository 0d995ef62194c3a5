"""The whole store against a real influxd 1.6.7: every measurement round trip, idempotent re-sends,
partial writes, flush on close, and the retention/CQ schema set-up."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from neckline.backoff import Backoff
from neckline.influxd import InfluxdState
from neckline.influxql import query, series_values
from neckline.store import (
    Batcher,
    LineBatch,
    Point,
    Spool,
    StoreError,
    V1Writer,
    encode_posture,
    ensure_schema_v1,
    rollup_range,
)
from neckline.store.schema import (
    MEASUREMENTS,
    POSTURE_FLOAT_FIELDS,
    POSTURE_ROLLUP_CQ,
    duration_seconds,
    posture_rollup_select,
)

# Recent, minute-aligned: older points would fall outside the 30-day `raw` policy.
T0 = (int(time.time() * 1000) // 60_000 - 60) * 60_000
DEVICE = "neckline-a1b2c3"


def _rows(url: str, db: str, rp: str, measurement: str) -> list[dict[str, Any]]:
    return series_values(query(url, f'SELECT * FROM "{rp}"."{measurement}"', db=db))


def _posture(n: int, *, start: int = 0, nan_every: int = 0, worn: Any = 1) -> tuple[
    LineBatch, dict[str, np.ndarray]
]:
    rng = np.random.default_rng(start + n)
    seq = np.arange(start, start + n, dtype=np.int64)
    cols = {name: rng.normal(10, 15, n) for name in POSTURE_FLOAT_FIELDS}
    cols["flexion_raw"] = np.round(cols["flexion_raw"], 2)
    if nan_every:
        cols["lateral"][::nan_every] = math.nan
    batch = encode_posture(
        DEVICE, time_ms=T0 + seq * 100, seq=seq, boot=2, flags=seq % 8, worn=worn,
        strain=(seq % 3 == 0), backfill=0, **cols,
    )
    assert batch is not None
    return batch, {**cols, "seq": seq}


def _batcher(tmp_path: Path, url: str, db: str, **kw: Any) -> Batcher:
    return Batcher(
        Spool(tmp_path / "spool"), V1Writer(url, db),
        backoff=Backoff(base=0.05, cap=0.2), **{"max_delay": 0.05, **kw},
    )


SAMPLES = [
    Point("exposure", T0, {"device": DEVICE},
          {"wear_s": 60, "strain_s": 12.5, "strain_load": 30.25, "mean_flexion": 21.5,
           "max_flexion": 40.0, "episodes": 1, "alerts": 2, "source": 1}),
    Point("strain_episode", T0, {"device": DEVICE},
          {"end": T0 + 90_000, "duration_s": 90.0, "peak_flexion": 44.5, "mean_flexion": 31.0}),
    Point("device_event", T0 + 5, {"device": DEVICE, "type": "headache_marker"},
          {"code": 3, "value": 1.5, "detail": 'button "long", 2s', "event_seq": 17}),
    Point("link", T0 + 7, {"device": DEVICE},
          {"state": "connected", "rssi": -61, "battery_pct": 88, "backlog": 0,
           "spool_bytes": 1234, "rejected": 0}),
    Point("headache", T0 + 9, {"source": "cli"},
          {"severity": 6, "type": "tension", "end": T0 + 3_600_000, "aura": 0,
           "medication": "ibuprofen 400", "notes": "after long desk day, \\o/",
           "needs_details": 0, "id": "h-0001"}),
    Point("correlation", T0 + 11, {"window": "6-12h"},
          {"odds_ratio": 2.25, "ci_low": 1.1, "ci_high": 4.6, "p_value": 0.012,
           "p_adjusted": 0.048, "n_cases": 23, "sufficient": 1, "verdict": "association"}),
]


async def test_every_measurement_round_trips(influxd: InfluxdState, influx_db: str,
                                             tmp_path: Path) -> None:
    ensure_schema_v1(influxd.url, influx_db)
    batch, cols = _posture(300, nan_every=7)
    async with _batcher(tmp_path, influxd.url, influx_db) as batcher:
        batcher.submit(batch)
        report = batcher.submit_points(SAMPLES)
        assert report.refused == []
        assert await batcher.flush(timeout=20)
        status = batcher.status()
    assert status.written_points == 300 + len(SAMPLES) and status.rejected_points == 0

    rows = _rows(influxd.url, influx_db, "raw", "posture")
    assert [r["seq"] for r in rows] == list(range(300))
    for i, row in enumerate(rows):
        assert row["time"] == T0 + i * 100 and row["device"] == DEVICE
        assert row["flags"] == i % 8 and row["strain"] == int(i % 3 == 0) and row["boot"] == 2
        assert row["flexion_raw"] == cols["flexion_raw"][i]  # 2 decimals: exact
        assert abs(row["flexion"] - cols["flexion"][i]) <= 0.5e-4
        if i % 7 == 0:
            assert row["lateral"] is None
        else:
            assert abs(row["lateral"] - cols["lateral"][i]) <= 0.5e-4

    for point in SAMPLES:
        rp = MEASUREMENTS[point.measurement].dest
        (row,) = _rows(influxd.url, influx_db, rp, point.measurement)
        assert row["time"] == point.time_ms
        for key, value in {**point.tags, **point.fields}.items():
            assert row[key] == value, (point.measurement, key)
    # Nothing of the low-rate data went to the short-lived policy by mistake.
    assert _rows(influxd.url, influx_db, "raw", "exposure") == []


async def test_missing_policy_keeps_data_until_the_schema_exists(
    influxd: InfluxdState, influx_db: str, tmp_path: Path
) -> None:
    batch, _ = _posture(20)
    async with _batcher(tmp_path, influxd.url, influx_db) as batcher:
        batcher.submit(batch)
        assert await batcher.flush(timeout=1.0) is False
        status = batcher.status()
        assert status.pending_lines == 20 and status.rejected_points == 0
        assert status.last_error is not None and "retention policy not found" in status.last_error
        assert status.retries >= 1
        ensure_schema_v1(influxd.url, influx_db)
        assert await batcher.flush(timeout=20)
    assert len(_rows(influxd.url, influx_db, "raw", "posture")) == 20


async def test_sending_the_same_batch_twice_stores_it_once(
    influxd: InfluxdState, influx_db: str, tmp_path: Path
) -> None:
    ensure_schema_v1(influxd.url, influx_db)
    batch, _ = _posture(500)
    async with _batcher(tmp_path, influxd.url, influx_db, max_lines=200) as batcher:
        for _ in range(2):
            batcher.submit(batch)
            assert await batcher.flush(timeout=20)
        assert batcher.status().written_points == 1000
    (count,) = series_values(query(influxd.url, 'SELECT count("seq") FROM "raw"."posture"',
                                   db=influx_db))
    assert count["count"] == 500


async def test_partial_writes_are_isolated_and_the_rest_is_stored(
    influxd: InfluxdState, influx_db: str, tmp_path: Path
) -> None:
    ensure_schema_v1(influxd.url, influx_db)
    good, _ = _posture(100)
    lines = good.body.split(b"\n")
    # Between the good rows (every 100 ms from T0) and in their shard: a time hours later can
    # fall past UTC midnight into a new daily shard, where no field type is fixed yet and the
    # float would be accepted.
    lines.insert(30, f"posture,device={DEVICE} seq=1.5 {T0 + 50}".encode())
    lines.insert(70, f"posture,device={DEVICE} seq=tru {T0 + 51}".encode())
    mixed = LineBatch("raw", b"\n".join(lines), len(lines))
    async with _batcher(tmp_path, influxd.url, influx_db) as batcher:
        batcher.submit(good)  # fixes the field types first
        assert await batcher.flush(timeout=20)
        batcher.submit(mixed)
        assert await batcher.flush(timeout=20)
        status = batcher.status()
    assert status.rejected_points == 2 and status.pending_batches == 0
    assert status.written_points == 200
    (count,) = series_values(query(influxd.url, 'SELECT count("seq") FROM "raw"."posture"',
                                   db=influx_db))
    assert count["count"] == 100
    kept = (tmp_path / "spool" / "quarantine" / "rejected.lp").read_text()
    assert "seq=1.5" in kept and "seq=tru" in kept and "HTTP 400" in kept


async def test_close_flushes_what_is_waiting(influxd: InfluxdState, influx_db: str,
                                             tmp_path: Path) -> None:
    ensure_schema_v1(influxd.url, influx_db)
    batch, _ = _posture(50)
    batcher = _batcher(tmp_path, influxd.url, influx_db, max_delay=3600.0)
    await batcher.start()
    batcher.submit(batch)
    assert batcher.status().pending_lines == 50
    assert await batcher.close(timeout=20) is True
    assert batcher.status().state == "closed"
    assert len(_rows(influxd.url, influx_db, "raw", "posture")) == 50


# -- schema ------------------------------------------------------------------------------------


def _policies(url: str, db: str) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in series_values(query(url, f'SHOW RETENTION POLICIES ON "{db}"'))}


def _cqs(url: str, db: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for series in query(url, "SHOW CONTINUOUS QUERIES")[0].get("series", []):
        if series["name"] == db:
            out.update({v[0]: v[1] for v in series.get("values", [])})
    return out


def test_schema_set_up_is_idempotent_and_corrects_drift(influxd: InfluxdState,
                                                        influx_db: str) -> None:
    url = influxd.url
    first = ensure_schema_v1(url, influx_db)
    assert any("CREATE RETENTION POLICY \"raw\"" in s for s in first)
    assert ensure_schema_v1(url, influx_db) == []
    policies = _policies(url, influx_db)
    assert duration_seconds(policies["raw"]["duration"]) == 30 * 86400
    assert policies["raw"]["default"] is True
    assert duration_seconds(policies["forever"]["duration"]) == 0.0
    assert POSTURE_ROLLUP_CQ in _cqs(url, influx_db)

    query(url, f'CREATE CONTINUOUS QUERY "posture_1m_v0" ON "{influx_db}" BEGIN '
               f'SELECT mean("flexion") INTO "forever"."old" FROM "raw"."posture" '
               f'GROUP BY time(1m) END')
    changed = ensure_schema_v1(url, influx_db, raw_duration="7d")
    assert any(s.startswith("ALTER RETENTION POLICY \"raw\"") for s in changed)
    assert any("DROP CONTINUOUS QUERY \"posture_1m_v0\"" in s for s in changed)
    assert duration_seconds(_policies(url, influx_db)["raw"]["duration"]) == 7 * 86400
    assert set(_cqs(url, influx_db)) == {POSTURE_ROLLUP_CQ}
    with pytest.raises(StoreError):
        ensure_schema_v1(url, influx_db, raw_duration="INF")


def test_a_fresh_database_is_created(influxd: InfluxdState) -> None:
    db = "test_store_fresh"
    try:
        statements = ensure_schema_v1(influxd.url, db)
        assert statements[0] == f'CREATE DATABASE "{db}"'
        names = [r["name"] for r in series_values(query(influxd.url, "SHOW DATABASES"))]
        assert db in names
    finally:
        query(influxd.url, f'DROP DATABASE "{db}"')


async def test_rollup_of_worn_samples_matches_numpy(influxd: InfluxdState, influx_db: str,
                                                    tmp_path: Path) -> None:
    ensure_schema_v1(influxd.url, influx_db)
    n = 3 * 600  # three minutes at 10 Hz
    worn = (np.arange(n) % 10 != 0).astype(int)
    batch, cols = _posture(n, worn=worn)
    async with _batcher(tmp_path, influxd.url, influx_db) as batcher:
        batcher.submit(batch)
        assert await batcher.flush(timeout=20)
    written = rollup_range(influxd.url, influx_db, T0, T0 + n * 100)
    rows = _rows(influxd.url, influx_db, "forever", "posture_1m")
    assert written == len(rows) and len(rows) >= 3
    times = T0 + np.arange(n) * 100
    # The values the server holds are the 4-decimal ones that were sent.
    flexion = np.array([float(f"{round(v * 1e4)}e-4") for v in cols["flexion"]])
    for row in rows:
        in_minute = (times >= row["time"]) & (times < row["time"] + 60_000) & (worn == 1)
        assert row["device"] == DEVICE
        assert row["samples"] == in_minute.sum()
        assert row["flexion_max"] == flexion[in_minute].max()
        assert row["flexion_min"] == flexion[in_minute].min()
        assert row["flexion_mean"] == pytest.approx(flexion[in_minute].mean(), abs=1e-9)
    assert "GROUP BY time(1m)" in posture_rollup_select(influx_db)
