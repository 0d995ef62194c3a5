"""The production pipeline wired to the real BLE link: firmware -> bleak -> pipeline -> influxd.

A synthetic wearer (tests/e2e/link_device.py: the firmware's BLE layer, raw ring and flash log
under the real MicroPython binary) streams over the virtual BlueZ. The real LinkSupervisor hands
every payload and notice to neckline.pipeline.Pipeline, which also answers its backfill
questions; the link is dropped twice mid-stream. InfluxDB must then hold an unbroken run of
samples, each once, with the content the device sent.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest

from neckline.align import AlignConfig
from neckline.influxd import InfluxdState
from neckline.influxql import query, series_values
from neckline.link import AllowPolicy, LinkSettings, LinkSupervisor, WearerFinder
from neckline.pipeline import Pipeline, PipelineSettings
from neckline.store import Batcher, Spool, V1Writer, ensure_schema_v1
from tests.e2e.link_harness import WearerProcess, expected_angles
from tests.vble_fixtures import VBleHandle

FAST = LinkSettings(
    scan_timeout=5.0, connect_timeout=20.0, gatt_timeout=5.0, cp_timeout=3.0,
    backfill_idle_timeout=5.0, backfill_interval=None, silence_timeout=3.0, probe_timeout=2.0,
    tick=0.1, shutdown_timeout=2.0, backoff_base=0.2, backoff_cap=1.0, stable_after=0.5,
    allow_pairing=True,
)
ADDRESS = "C0:DE:00:00:0E:01"


async def _until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NECKLINE_CONFIG", str(tmp_path / "config" / "neckline.toml"))
    return tmp_path / "config"


async def test_link_to_influxdb_with_drops_every_sample_once(
    vble: VBleHandle, influxd: InfluxdState, influx_db: str, tmp_path: Path, config_dir: Path
) -> None:
    ensure_schema_v1(influxd.url, influx_db)
    dev = WearerProcess(tmp_path / "wearer", vble.bridge, ADDRESS, period_ms=20, batch=2,
                        summary_ms=400)
    try:
        vble.faults.wait_for(ADDRESS, "advertising", timeout=20)
        batcher = Batcher(Spool(tmp_path / "spool"), V1Writer(influxd.url, influx_db),
                          max_delay=0.1)
        await batcher.start()
        # A short clock warm-up: the aligner's own tests cover the defaults; here it is the
        # wiring that counts, and a wearer that has been on for seconds only.
        settings = PipelineSettings(fsync=False, align=AlignConfig(warmup_ms=3000,
                                                                   settle_ms=1000))
        pipeline = Pipeline(batcher, tmp_path / "state", settings, batch_interval=0.1)
        stop = asyncio.Event()
        consumer = asyncio.create_task(pipeline.run(stop))
        finder = WearerFinder(AllowPolicy(allow_any=True))
        async with LinkSupervisor(sink=pipeline.put, planner=pipeline, settings=FAST,
                                  finder=finder) as links:
            wearer = links.add(ADDRESS)

            def stored() -> int:
                d = pipeline.devices.get(ADDRESS)
                return 0 if d is None else d.stats.stored

            await _until(lambda: stored() > 300, 30, "the first samples")
            for n in (2, 3):
                assert vble.faults.drop_link(ADDRESS, 1.5)
                await _until(lambda n=n: wearer.sessions >= n and wearer.state == "connected",
                             30, f"session {n}")
                await _until(lambda: not pipeline.devices[ADDRESS].missing_ranges(), 30,
                             f"backfill after drop {n - 1}")
            await asyncio.sleep(1.0)
        stop.set()
        await consumer
        pipeline.flush()
        assert await batcher.flush(timeout=30)
        await batcher.close()
    finally:
        dev.stop()

    state = pipeline.devices[ADDRESS]
    assert state.link.sessions == 3 and state.link.state == "disconnected"
    rows = series_values(query(
        influxd.url, 'SELECT "seq", "flexion_raw", "lateral_raw", "backfill" FROM "raw"."posture"',
        db=influx_db))
    seqs = sorted(r["seq"] for r in rows)
    assert len(seqs) == len(set(seqs)) == state.stats.stored
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a gap survived the backfill"
    assert sum(r["backfill"] for r in rows) >= 100  # both outages (1.5 s at 50 Hz) refilled
    for r in rows:
        flexion, lateral, _ = expected_angles(r["seq"] & 0xFFFFFFFF)
        assert r["flexion_raw"] == flexion / 100 and r["lateral_raw"] == lateral / 100
    times = sorted(r["time"] for r in rows)
    assert all(b > a for a, b in itertools.pairwise(times))  # each at its own ms
    assert state.rejections.total == 0 and state.stats.late == 0
