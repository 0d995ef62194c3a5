"""Pipeline pieces without a server: ordering, state round trips, summaries, backpressure.

The line protocol the pipeline hands to the store is captured and parsed back here; what InfluxDB
ends up holding is checked in test_pipeline_influx.py.
"""

from __future__ import annotations

import io
import json
import os
import stat
import time
from pathlib import Path

import numpy as np
import pytest

from neckline.decode import SampleArrays
from neckline.link.records import SessionUp
from neckline.pipeline import Pipeline, PipelineSettings, write_json_atomic
from neckline.pipeline.held import HELD_DTYPE, HeldSamples
from neckline.progress import Progress
from neckline.protocol import StateFlag, Status
from neckline.store.errors import SpoolFull
from neckline.store.lineproto import LineBatch
from tests.host.pipeline_world import Link, make_world, scenario

ADDRESS = "C0:DE:00:00:00:01"


def recent_start() -> int:
    return (int(time.time() * 1000) // 60_000 - 90) * 60_000


class Capture:
    """Collects what the pipeline submits; optionally refuses submits like a full spool."""

    def __init__(self) -> None:
        self.batches: list[LineBatch] = []
        self.refuse = 0

    def submit(self, batch: LineBatch) -> int:
        if self.refuse:
            self.refuse -= 1
            raise SpoolFull("spool full (test)")
        self.batches.append(batch)
        return len(self.batches)

    def lines(self, measurement: str) -> list[bytes]:
        prefix = measurement.encode() + b","
        return [ln for b in self.batches for ln in b.body.split(b"\n") if ln.startswith(prefix)]

    def posture(self) -> list[dict[str, int]]:
        """seq, time and backfill of every posture line, in the order submitted."""
        out = []
        for ln in self.lines("posture"):
            fields, stamp = ln.split(b" ")[1:3]
            kv = dict(f.split(b"=") for f in fields.split(b","))
            out.append({"seq": int(kv[b"seq"][:-1]), "time": int(stamp),
                        "backfill": int(kv[b"backfill"][:-1])})
        return out


def settings(**kw: object) -> PipelineSettings:
    return PipelineSettings(fsync=False, **kw)  # type: ignore[arg-type]


# --- held samples ------------------------------------------------------------------------------
def test_held_samples_stay_sorted_unique_and_round_trip() -> None:
    rows = np.zeros(6, HELD_DTYPE)
    rows["useq"] = [10, 12, 11, 12, 30, 5]
    rows["flexion"] = [1.5, 2.5, np.nan, 9.0, 3.0, 4.0]
    held = HeldSamples()
    held.add(rows[:3])
    held.add(rows[3:])
    assert held.rows["useq"].tolist() == [5, 10, 11, 12, 30]
    assert held.rows["flexion"][3] == 2.5  # the first copy of useq 12 wins
    assert held.count_below(12) == 3 and held.count_below(None) == 5
    again = HeldSamples.from_state(json.loads(json.dumps(held.to_state())))
    assert again.rows.tobytes() == held.rows.tobytes()
    assert again.pop_front(2)["useq"].tolist() == [5, 10] and again.first_useq == 11


# --- the state file ----------------------------------------------------------------------------
def test_state_file_is_atomic_and_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "state.json"
    write_json_atomic(path, {"a": 1}, fsync=True)
    write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temp file left


def test_an_unreadable_state_is_kept_aside_and_the_pipeline_starts_afresh(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "state.json").write_text("{not json")
    pipeline = Pipeline(Capture(), tmp_path, settings())
    assert pipeline.devices == {}
    assert any(p.name.startswith("state.json.bad-") for p in tmp_path.iterdir())
    assert "unreadable" in caplog.text


# --- ordering ----------------------------------------------------------------------------------
def _late_world() -> tuple[Link, int]:
    world = make_world(recent_start(), [(3, 3000, 0, 1000, 50)])
    link = Link(world)
    link.connect(0)
    link.live(0, 1000)
    link.disconnect(world.samples[1000].utc)
    link.connect(1600)  # the device kept 1000..1600 for us
    link.live(1600, 2400)
    return link, 1000


def test_samples_after_a_missing_range_wait_for_it_and_go_out_in_device_order(
    tmp_path: Path,
) -> None:
    link, hole = _late_world()
    sink = Capture()
    pipeline = Pipeline(sink, tmp_path, settings())
    pipeline.process(link.feed.records)
    dev = pipeline.devices[ADDRESS]
    stored = [p["seq"] for p in sink.posture()]
    # Everything before the range the device owes went out (bar the newest few seconds, whose
    # clock evidence is still due); nothing after it did: it waits, in order.
    assert stored and max(stored) < link.w.useq[hole]
    assert len(dev.held) >= 800 - 60
    assert dev.snapshot()["backlog"] == 600
    link.feed.records.clear()
    link.backfill([(1000, 1600)], link.w.samples[2400].utc)
    link.live(2400, 3000)
    link.disconnect(link.w.samples[-1].utc + 100)
    pipeline.process(link.feed.records)
    seqs = [p["seq"] for p in sink.posture()]
    assert seqs == sorted(seqs) == link.w.useq  # one stream, in device order, each sample once
    assert dev.stats.late == 0 and len(dev.held) == 0


def test_a_range_that_does_not_come_is_passed_and_arrives_as_late_samples(
    tmp_path: Path,
) -> None:
    link, _ = _late_world()
    sink = Capture()
    pipeline = Pipeline(sink, tmp_path, settings(hole_wait_ms=20_000))
    records = link.feed.records
    for i in range(0, len(records), 20):  # steps as the service makes them: time passes
        pipeline.process(records[i : i + 20])
    dev = pipeline.devices[ADDRESS]
    assert dev.stats.holes_passed == 1 and dev.stats.samples_passed == 600
    passed = {p["seq"] for p in sink.posture()}
    assert link.w.useq[1700] in passed  # the samples after the range went out
    link.feed.records.clear()
    link.backfill([(1000, 1600)], link.w.samples[2400].utc)  # ... and then the range comes
    link.disconnect(link.w.samples[2399].utc + 100)
    pipeline.process(link.feed.records)
    rows = sink.posture()
    assert sorted(p["seq"] for p in rows) == link.w.useq[:2400]
    late = [p for p in rows if link.w.useq[1000] <= p["seq"] < link.w.useq[1600]]
    assert len(late) == 600 and all(p["backfill"] == 1 for p in late)
    assert dev.stats.late == 600


def test_a_refused_step_is_rolled_back_and_fetched_again_nothing_lost(tmp_path: Path) -> None:
    world = make_world(recent_start(), [(3, 2000, 0, 1000, 50)])
    link = Link(world)
    link.connect(0)
    link.live(0, 1000)
    sink = Capture()
    pipeline = Pipeline(sink, tmp_path, settings())
    pipeline.process(link.feed.records[:100])
    sink.refuse = 1  # the spool is full for the next step
    pipeline.process(link.feed.records[100:])
    dev = pipeline.devices[ADDRESS]
    assert pipeline.stats.refused_steps == 1
    refused = {p["seq"] for p in sink.posture()} ^ set(world.useq[:1000])
    assert refused, "the refused step stored nothing"
    link.feed.records.clear()
    link.live(1000, 1100)  # the stream goes on: the refused samples are a hole now
    pipeline.process(link.feed.records)
    dev = pipeline.devices[ADDRESS]
    missing = dev.missing_ranges()
    # What the refused step took in is owed again (bar samples held from the step before it,
    # which went out now).
    owed = set(world.useq[:1000]) - {p["seq"] for p in sink.posture()}
    assert owed and [(r.first, r.last) for r in missing] == [(min(owed), max(owed))]
    # The link's next backfill brings them.
    link.feed.records.clear()
    first = world.useq.index(missing[0].first)
    link.backfill([(first, 1000)], world.samples[1100].utc)
    link.live(1100, 2000)
    link.disconnect(world.samples[-1].utc + 100)
    pipeline.process(link.feed.records)
    seqs = [p["seq"] for p in sink.posture()]
    assert sorted(seqs) == world.useq and len(seqs) == len(set(seqs))


def test_state_survives_a_new_pipeline_object(tmp_path: Path) -> None:
    sc = scenario(recent_start(), jitter=False, drift_ppm=0.0)
    one = Capture()
    p1 = Pipeline(one, tmp_path / "a", settings())
    p1.process(sc.records)
    p1.flush()
    two = Capture()
    half = len(sc.records) // 2
    p2 = Pipeline(two, tmp_path / "b", settings())
    p2.process(sc.records[:half])
    p3 = Pipeline(two, tmp_path / "b", settings())  # a restart: everything from the files
    p3.process(sc.records[half:])
    p3.flush()
    assert one.lines("posture") == two.lines("posture")
    assert one.lines("exposure") == two.lines("exposure")
    assert one.lines("strain_episode") == two.lines("strain_episode")


# --- device summaries ---------------------------------------------------------------------------
def test_device_summaries_fill_only_minutes_the_host_has_no_row_for(tmp_path: Path) -> None:
    sc = scenario(recent_start())
    sink = Capture()
    pipeline = Pipeline(sink, tmp_path, settings())
    pipeline.process(sc.records)
    pipeline.flush()
    device_rows = {int(ln.rsplit(b" ", 1)[1]) for ln in sink.lines("exposure")
                   if b"source=2i" in ln}
    host_rows = [int(ln.rsplit(b" ", 1)[1]) for ln in sink.lines("exposure")
                 if b"source=1i" in ln]
    assert device_rows == set(sc.summary_minutes_uncovered)
    assert set(sc.summary_minutes_covered) <= set(host_rows)
    stats = pipeline.devices[ADDRESS].stats
    assert stats.summaries_stored == 3 and stats.summaries_superseded == 3


def test_planner_answers_after_the_queue_is_processed(tmp_path: Path) -> None:
    import asyncio

    link, hole = _late_world()

    async def go() -> tuple[list[tuple[int, int]], int | None]:
        pipeline = Pipeline(Capture(), tmp_path, settings(), batch_interval=0.2)
        stop = asyncio.Event()
        task = asyncio.create_task(pipeline.run(stop))
        for record in link.feed.records:
            pipeline.put(record)
        status = link.status(1600, link.boot_of(1600), link.w.samples[1600].utc)
        ranges = await asyncio.wait_for(pipeline.missing_ranges(ADDRESS, status), 10)
        start = await pipeline.summary_from(ADDRESS, status)
        stop.set()
        await task
        return [(r.first, r.last) for r in ranges], start

    ranges, start = asyncio.run(go())
    assert ranges == [(link.w.useq[hole], link.w.useq[1599])]
    assert start == 0  # no summary record yet: from the device's oldest


def test_samples_of_a_boot_without_any_clock_are_counted_not_stored(tmp_path: Path) -> None:
    world = make_world(recent_start(), [(3, 600, 0, 1000, 50), (4, 600, 2000, 1000, -1)])
    link = Link(world)
    link.connect(0)
    link.live(0, 600)
    link.disconnect(world.samples[599].utc)
    # Boot 4 comes only by backfill: the host reconnects during boot 5 and never saw boot 4's
    # clock (no live data, and SET_TIME anchors only the current boot), so it cannot be placed.
    now = world.samples[-1].utc + 60_000
    status = Status(1, 5, 1000, (world.samples[-1].seq + 1) & 0xFFFFFFFF, world.samples[0].seq,
                    0, 0, 3900, 80, StateFlag.CALIBRATED, 100)
    link.feed.add(SessionUp(ADDRESS, int(now), "Neckline-0001", 247, status))
    link.backfill([(600, 1200)], now + 100)
    sink = Capture()
    pipeline = Pipeline(sink, tmp_path, settings())
    pipeline.process(link.feed.records)
    pipeline.flush()
    dev = pipeline.devices[ADDRESS]
    assert len(sink.posture()) == 600
    assert dev.stats.no_clock == 600


# --- progress ------------------------------------------------------------------------------------
def test_progress_bar_on_a_terminal_and_lines_elsewhere() -> None:
    now = [0.0]
    out = io.StringIO()
    bar = Progress("replay", 200, unit="lines", stream=out, tty=True, clock=lambda: now[0])
    now[0] = 1.0
    bar.update(50)
    assert "\r" in out.getvalue() and "[#####...............]   25%" in out.getvalue()
    assert "50/200 lines" in out.getvalue() and "ETA 0:00:03" in out.getvalue()
    now[0] = 2.0
    bar.update(200)
    bar.close("done")
    assert out.getvalue().endswith("in 0:00:02  done\n")
    log = io.StringIO()
    quiet = Progress("backfill", None, stream=log, tty=False, every_s=10, clock=lambda: now[0])
    for i in range(100):
        now[0] += 0.5
        quiet.update(i)
    quiet.close()
    lines = log.getvalue().splitlines()
    assert 4 <= len(lines) <= 7 and "\r" not in log.getvalue()  # every 10 s, and at the end


def test_samples_arrays_round_trip_through_held_rows() -> None:
    from neckline.pipeline.held import as_samples, rows_from

    s = SampleArrays(
        seq=np.array([1, 2], np.uint32), t_ms=np.array([5, 105], np.int64),
        boot_id=np.array([3, 3], np.uint8), period_ms=np.array([100, 100], np.uint16),
        flexion_deg=np.array([1.25, np.nan], np.float32),
        lateral_deg=np.array([0.5, 0.25], np.float32),
        rotation_deg=np.array([-1.0, 2.0], np.float32), flags=np.array([1, 3], np.uint8),
        backfill=np.array([False, True]), packet_index=np.array([0, 0], np.int64),
    )
    back = as_samples(rows_from(s, np.array([7, 8], np.int64), np.array([True, True])))
    for name in ("seq", "t_ms", "boot_id", "period_ms", "lateral_deg", "flags", "backfill"):
        assert getattr(back, name).tolist() == getattr(s, name).tolist()
    assert back.flexion_deg[0] == 1.25 and np.isnan(back.flexion_deg[1])


def test_state_files_are_private(tmp_path: Path) -> None:
    sc = scenario(recent_start())
    pipeline = Pipeline(Capture(), tmp_path / "state", settings())
    pipeline.process(sc.records[:200])
    for name in ("state.json", "clocks.json"):
        mode = os.stat(tmp_path / "state" / name).st_mode
        assert stat.S_IMODE(mode) == 0o600
