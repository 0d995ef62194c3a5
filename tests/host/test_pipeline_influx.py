"""The whole pipeline into a real influxd 1.6.7: what the database holds afterwards.

Records as the link hands them over (live and backfill with duplicates, lost notifications, a
disconnection, reboots with the counter continuing and restarting, u32 wraps of seq and t_ms,
malformed payloads, SET_TIME responses, events and device summary records) go through the real
Pipeline, Batcher, Spool and V1Writer; the assertions read InfluxDB back with neckline.queries.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import neckline.influxd
from neckline import queries as q
from neckline.backoff import Backoff
from neckline.headache.store import entry_point, row_entry
from neckline.influxd import InfluxdState, LocalInfluxd
from neckline.influxql import ping, query, series_values
from neckline.pipeline import Pipeline, PipelineSettings
from neckline.store import Batcher, Spool, V1Writer, encode_points, ensure_schema_v1
from neckline.strain import Direction, StrainDetector
from neckline.strain_config import StrainConfig
from tests.host.pipeline_world import Scenario, chunks, scenario

DEVICE = "neckline-c0de00000001"
ADDRESS = "C0:DE:00:00:00:01"
_extra_db = itertools.count()


def recent_start() -> int:
    return (int(time.time() * 1000) // 60_000 - 90) * 60_000


def rows(url: str, db: str, statement: str) -> list[dict[str, Any]]:
    return series_values(query(url, statement, db=db))


@pytest.fixture
def second_db(influxd: InfluxdState) -> Iterator[str]:
    name = f"pipeline_b_{next(_extra_db)}"
    query(influxd.url, f'CREATE DATABASE "{name}"')
    yield name
    query(influxd.url, f'DROP DATABASE "{name}"')


async def store_records(
    url: str, db: str, tmp: Path, batches: list[list[Any]], *,
    settings: PipelineSettings | None = None, restart_at: int | None = None,
) -> Pipeline:
    """Feed record batches through a real Pipeline + Batcher into `db`; flush; close."""
    ensure_schema_v1(url, db)
    batcher = Batcher(Spool(tmp / "spool"), V1Writer(url, db), max_lines=2000, max_delay=0.05)
    settings = settings or PipelineSettings(fsync=False)
    await batcher.start()
    try:
        pipeline = Pipeline(batcher, tmp / "state", settings, max_lines=2000)
        for i, batch in enumerate(batches):
            if restart_at is not None and i == restart_at:
                pipeline = Pipeline(batcher, tmp / "state", settings, max_lines=2000)
            pipeline.process(batch)
            await asyncio.sleep(0)
        pipeline.flush()
        assert await batcher.flush(timeout=60)
        assert batcher.status().rejected_points == 0
    finally:
        await batcher.close()
    return pipeline


def posture_rows(url: str, db: str, time_range: q.TimeRange) -> list[dict[str, Any]]:
    fields = q.POSTURE_FIELDS
    return rows(url, db, q.posture(q.Layout(db), DEVICE, time_range, fields))


def wide(start: int) -> q.TimeRange:
    return q.TimeRange.between(start - 6 * 3_600_000, start + 6 * 3_600_000)


def expected_strain(sc: Scenario) -> tuple[list[tuple[float, float]], int, int]:
    """Flexion episodes that ended, IN_STRAIN samples and flexion episodes confirmed (ended or
    not), as the definition finds them on the ground truth."""
    s = sc.world.samples
    det = StrainDetector(StrainConfig())
    result = det.feed(
        np.array([round(x.utc) for x in s]), np.array([x.period for x in s]),
        np.array([x.flexion for x in s]), np.array([x.lateral for x in s]),
        np.array([x.flags for x in s]), np.array([x.boot for x in s]),
    )
    episodes = [(e.start_ms, e.duration_ms / 1000) for e in result.episodes
                if e.direction is Direction.FLEXION]
    confirmed = sum(1 for d, _ in result.started if d is Direction.FLEXION)
    return episodes, int(result.in_strain.sum()), confirmed


async def test_every_sample_once_and_everything_else_in_place(
    influxd: InfluxdState, influx_db: str, second_db: str, tmp_path: Path
) -> None:
    start = recent_start()
    sc = scenario(start)
    rng = np.random.default_rng(5)
    sizes = iter(lambda: int(rng.integers(1, 60)), None)
    pipeline = await store_records(influxd.url, influx_db, tmp_path / "a",
                                   list(chunks(sc.records, sizes)))
    url, db = influxd.url, influx_db
    layout = q.Layout(db)
    got = posture_rows(url, db, wide(start))

    # Every sample exactly once: count and the set of counters, across wraps and reboots.
    seqs = [r["seq"] for r in got]
    assert len(seqs) == len(sc.world.samples) == 10_000
    assert sorted(seqs) == sc.world.useq
    # Placed near the true capture time (live evidence, SET_TIME anchors, backfill bridged).
    by_seq = {r["seq"]: r for r in got}
    err = [by_seq[u]["time"] - s.utc for u, s in zip(sc.world.useq, sc.world.samples, strict=True)]
    assert min(err) > -50 and max(err) < 100
    # Field by field against what the device sent.
    for u, s in zip(sc.world.useq, sc.world.samples, strict=True):
        r = by_seq[u]
        assert r["flexion_raw"] == s.flexion / 100 and r["boot"] == s.boot
        assert r["flags"] == s.flags and r["worn"] == int(not s.flags & 0x02)
        if not s.flags & 0x01 or s.flags & 0x02:
            assert r["flexion"] is None  # unusable samples are not filtered into a value
    assert sum(r["backfill"] for r in got) == 700 + 15  # the disconnection and lost packets
    want, in_strain, confirmed = expected_strain(sc)
    assert abs(sum(r["strain"] for r in got) - in_strain) <= 3

    # Malformed payloads were counted, not fatal.
    dev = pipeline.devices[ADDRESS]
    assert dev.rejections.total == sc.malformed
    assert dev.stats.duplicates == 100

    # Episodes: those the definition finds on the ground truth, at the same places.
    episodes = rows(url, db, q.episodes(layout, DEVICE, wide(start)))
    assert len(episodes) == len(want) == 3
    for row, (t0, duration) in zip(episodes, want, strict=True):
        assert abs(row["time"] - t0) < 100 and abs(row["duration_s"] - duration) < 0.2

    # Exposure: one row per minute touched; minutes off the neck are marked, not scored.
    exposure = rows(url, db, q.exposure(layout, DEVICE, wide(start)))
    host = [r for r in exposure if r["source"] == 1]
    assert len(host) >= 15
    unscored = [r for r in host if r["wear_s"] < 30]
    assert any(r["wear_s"] == 0 for r in unscored), "a whole minute off the neck"
    assert all(r["strain_s"] is None and r["strain_load"] is None for r in unscored)
    assert all(r["strain_s"] is not None for r in host if r["wear_s"] >= 30)
    assert sum(r["episodes"] for r in host) == confirmed == 4  # the last one is still open
    # Device summaries only where the host has nothing; the host's rows win elsewhere.
    device = {r["time"]: r for r in exposure if r["source"] == 2}
    assert sorted(device) == sorted(sc.summary_minutes_uncovered)
    assert all(r["alerts"] == 1 and r["strain_s"] == 40 for r in device.values())
    host_minutes = {r["time"] for r in host}
    assert set(sc.summary_minutes_covered) <= host_minutes

    # Events, and the marker's headache entry waiting for details.
    events = rows(url, db, q.device_events(layout, DEVICE, wide(start)))
    assert sorted(r["type"] for r in events) == sorted(sc.events)
    headaches = rows(url, db, q.headaches(layout, wide(start)))
    assert len(headaches) == 1 and headaches[0]["needs_details"] == 1
    assert headaches[0]["source"] == "device"
    marker = row_entry(headaches[0])
    assert marker.needs_details and marker.severity is None and marker.notes == ""
    # The user describes it (as `neckline headache edit` stores it) ...
    described = marker.with_changes(severity=5, type="tension", notes="after a long drive",
                                    needs_details=False)
    body = b"\n".join(b.body for b in encode_points([entry_point(described)]).batches)
    urllib.request.urlopen(urllib.request.Request(
        f"{url}/write?db={db}&rp=forever&precision=ms", data=body))

    # The strain share only counts scored minutes.
    share = rows(url, db, q.strain_share(layout, DEVICE, wide(start), "1d"))
    scored = [r for r in exposure if r["wear_s"] >= 30]
    assert sum(r["wear_s"] for r in share) == pytest.approx(sum(r["wear_s"] for r in scored))
    assert sum(r["strain_s"] for r in share) == pytest.approx(
        sum(r["strain_s"] for r in scored))

    # Deterministic: nothing depends on when or where it runs. The same steps on a fresh state
    # give the very same timestamps ...
    rng = np.random.default_rng(5)
    sizes = iter(lambda: int(rng.integers(1, 60)), None)
    await store_records(url, second_db, tmp_path / "b", list(chunks(sc.records, sizes)))
    again = {r["seq"]: r["time"] for r in posture_rows(url, second_db, wide(start))}
    assert again == {r["seq"]: r["time"] for r in got}
    # ... and everything delivered again (a device backfilling it all once more) changes nothing.
    await store_records(url, db, tmp_path / "a", list(chunks(sc.records, iter(
        lambda: 300, None))))
    assert posture_rows(url, db, wide(start)) == got
    assert rows(url, db, q.exposure(layout, DEVICE, wide(start))) == exposure
    # ... and the marker written again did not undo the user's description.
    (again_marker,) = rows(url, db, q.headaches(layout, wide(start)))
    assert row_entry(again_marker) == described


async def test_streaming_in_chunks_equals_one_batch(
    influxd: InfluxdState, influx_db: str, second_db: str, tmp_path: Path
) -> None:
    start = recent_start()
    # A steady link (constant latency, no drift): the clock estimate is the same whenever it is
    # made, so chunking can change nothing at all, not even a millisecond.
    sc = scenario(start, jitter=False, drift_ppm=0.0, seed=4)
    await store_records(influxd.url, influx_db, tmp_path / "one", [sc.records])
    rng = np.random.default_rng(11)
    sizes = iter(lambda: int(rng.integers(1, 120)), None)
    parts = list(chunks(sc.records, sizes))
    await store_records(influxd.url, second_db, tmp_path / "many", parts,
                        restart_at=len(parts) // 2)  # and a restart from the saved state
    layout_a, layout_b = q.Layout(influx_db), q.Layout(second_db)
    for build in (
        lambda lay: q.posture(lay, DEVICE, wide(start), q.POSTURE_FIELDS),
        lambda lay: q.exposure(lay, DEVICE, wide(start)),
        lambda lay: q.episodes(lay, DEVICE, wide(start)),
        lambda lay: q.device_events(lay, DEVICE, wide(start)),
    ):
        a = rows(influxd.url, influx_db, build(layout_a))
        b = rows(influxd.url, second_db, build(layout_b))
        assert a and a == b


async def test_influxd_stopped_mid_stream_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = LocalInfluxd(tmp_path / "influxd")
    state = server.start(die_with_parent=True)
    try:
        db = "outage"
        query(state.url, f'CREATE DATABASE "{db}"')
        ensure_schema_v1(state.url, db)
        start = recent_start()
        sc = scenario(start, seed=7)
        batcher = Batcher(Spool(tmp_path / "spool"), V1Writer(state.url, db), max_lines=500,
                          max_delay=0.02, backoff=Backoff(base=0.05, cap=0.25))
        parts = list(chunks(sc.records, iter(lambda: 40, None)))
        async with batcher:
            pipeline = Pipeline(batcher, tmp_path / "state", PipelineSettings(fsync=False),
                                max_lines=500)
            for i, part in enumerate(parts):
                pipeline.process(part)
                await asyncio.sleep(0.002)
                if i == len(parts) // 3:
                    await asyncio.to_thread(server.stop, grace=10.0)
                    assert ping(state.url) is None
                if i == 2 * len(parts) // 3:
                    assert batcher.status().pending_lines > 1000, "data waits in the spool"
                    same_ports = iter([state.port, state.rpc_port]).__next__
                    monkeypatch.setattr(neckline.influxd, "free_port", same_ports)
                    again = await asyncio.to_thread(server.start, die_with_parent=True)
                    assert again.url == state.url
            pipeline.flush()
            assert await batcher.flush(timeout=60)
            status = batcher.status()
        assert status.retries > 0 and status.rejected_points == 0
        got = posture_rows(state.url, db, wide(start))
        assert sorted(r["seq"] for r in got) == sc.world.useq
    finally:
        server.stop(grace=10.0)


async def test_link_status_and_queries_portable_forms(
    influxd: InfluxdState, influx_db: str, tmp_path: Path
) -> None:
    from neckline.config import InfluxConfig
    from neckline.pipeline.points import link_point
    from neckline.store import encode_points

    ensure_schema_v1(influxd.url, influx_db)
    now = int(time.time() * 1000)
    report = encode_points([
        link_point(DEVICE, now - 5000, "connected", rssi=-60, battery_pct=81, backlog=0),
        link_point(DEVICE, now, "backfilling", rssi=-58, battery_pct=80, backlog=1200,
                   spool_bytes=4096, rejected=0),
    ])
    batcher = Batcher(Spool(tmp_path / "spool"), V1Writer(influxd.url, influx_db))
    async with batcher:
        for batch in report.batches:
            batcher.submit(batch)
        assert await batcher.flush(timeout=30)
    latest = rows(influxd.url, influx_db, q.link_status(q.Layout(influx_db)))
    assert latest[0]["state"] == "backfilling" and latest[0]["backlog"] == 1200
    assert latest[0]["device"] == DEVICE
    # The same builders for a v2 bucket (virtual DBRP) and a single retention policy.
    v2 = q.Layout.from_config(InfluxConfig(url="http://x:8086", dialect="v2", org="o",
                                           bucket="neck", token="t"))
    assert v2.database == "neck" and q.episodes(v2, DEVICE, q.TimeRange.grafana()) == (
        'SELECT "end", "duration_s", "peak_flexion", "mean_flexion" FROM "strain_episode" '
        "WHERE $timeFilter AND \"device\" = 'neckline-c0de00000001'"
    )
    single = q.Layout.from_config(InfluxConfig(retention_policy="autogen"))
    assert single.measurement("posture") == '"autogen"."posture"'
    with pytest.raises(q.QueryError):
        q.strain_share(q.Layout(), DEVICE, q.TimeRange.last(days=1), "1 day")
    with pytest.raises(q.QueryError):
        q.hourly_strain(q.Layout(), DEVICE, q.TimeRange.last(days=1), tz="x'); DROP")
    assert "\\'" in q.exposure(q.Layout(), "it's", q.TimeRange.last(minutes=5))
