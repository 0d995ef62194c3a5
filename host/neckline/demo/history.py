"""Weeks of a simulated wearer's history, fed through the host's real ingestion pipeline.

The wearer and headache models (`neckline.sim.simulate_person`, with a planted strain effect)
give the days; `render` gives the ground-truth posture at the history's stream rate. Each worn
day becomes what the BLE link would have handed the pipeline that day: a session (SessionUp,
TimeSynced, StatusRead), then one SAMPLES_LIVE notification per `per_packet` samples with the
device's boot, seq and t_ms, received a few ms after the last sample, then SessionDown. The device
boots once a day (put on in the morning), and its sample counter continues across boots.

From there on nothing is simulated: `Pipeline` decodes, orders, aligns clocks, filters, detects
strain and writes line protocol through the durable spool (`Batcher`) into InfluxDB, and older
posture is rolled up with `rollup_range`, exactly as `neckline run` does with backfill.

Skipped: the firmware and the radio. A day at 100 Hz through the MicroPython firmware takes
minutes; weeks of it would not fit the demo's time budget (docs/user-guide.md). That is why the
history streams at a lower rate than the default 10 Hz (`stream_period_ms`, protocol key 5).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

from neckline.link.records import (
    Kind,
    LinkRecord,
    Received,
    SessionDown,
    SessionUp,
    StatusRead,
    TimeSynced,
)
from neckline.pipeline import Pipeline, PipelineSettings
from neckline.protocol import PayloadType, SampleFlag, StateFlag, Status, ver_type
from neckline.sim import RenderConfig, render
from neckline.sim.person import PersonData
from neckline.sim.schedule import Schedule
from neckline.store import Batcher, Spool, V1Writer, rollup_range

MASK = 0xFFFFFFFF
NO_VALUE = -32768
DAY_MS = 86_400_000
# docs/protocol.md §5: SAMPLES_LIVE header and sample layouts.
_HEADER = np.dtype([("vt", "u1"), ("count", "u1"), ("seq", "<u4"), ("t_ms", "<u4"),
                    ("boot", "u1"), ("period", "<u2")])
_SAMPLE = np.dtype([("flexion", "<i2"), ("lateral", "<i2"), ("rotation", "<i2"),
                    ("flags", "u1")])
CLOCK_PPM = 25.0  # the simulated device crystal runs this fast
BOOT_LEAD_MS = 90_000  # the device boots this long before the first sample of the day


@dataclass(frozen=True)
class HistoryOptions:
    period_ms: int = 1000  # stream period of the history (the live default is 100 ms)
    per_packet: int = 1  # samples a live packet carries (the firmware sends within 250 ms)
    mtu: int = 247


@dataclass
class HistoryResult:
    days: int = 0  # days with wear
    samples: int = 0
    packets: int = 0
    written_points: int = 0
    rollup_points: int = 0
    rejected_records: int = 0
    seconds: float = 0.0


def _cdeg(deg: npt.NDArray[np.float64]) -> npt.NDArray[np.int16]:
    out = np.full(deg.shape, NO_VALUE, np.int16)
    ok = np.isfinite(deg)
    out[ok] = np.clip(np.rint(deg[ok] * 100), -32767, 32767).astype(np.int16)
    return out


@dataclass
class _Day:
    """The samples of one worn day, at the history's stream rate."""

    index: int  # calendar day since the schedule's start
    first_ms: int  # UTC of sample 0
    flexion: npt.NDArray[np.float64]
    lateral: npt.NDArray[np.float64]
    axial: npt.NDArray[np.float64]
    worn: npt.NDArray[np.bool_]


def _days(schedule: Schedule, seed: int, rate_hz: float) -> Iterator[_Day]:
    """Each calendar day (from the schedule's start) that has wear: from the first worn sample
    to the last, taken from the rendering a day at a time."""
    start_ms = int(schedule.start.timestamp() * 1000)
    period_ms = 1000.0 / rate_hz
    per_day = round(86_400.0 * rate_hz)
    for chunk in render(schedule, seed, RenderConfig(rate_hz=rate_hz, chunk_s=86_400.0)):
        worn = np.flatnonzero(chunk.worn)
        if worn.size == 0:
            continue
        a, b = int(worn[0]), int(worn[-1]) + 1
        yield _Day(
            index=chunk.index0 // per_day,
            first_ms=start_ms + round((chunk.index0 + a) * period_ms),
            flexion=chunk.flexion[a:b], lateral=chunk.lateral[a:b], axial=chunk.axial[a:b],
            worn=chunk.worn[a:b],
        )


class HistoryDevice:
    """The records one simulated device's link would have produced, day by day."""

    def __init__(self, address: str, name: str, options: HistoryOptions, seed: int) -> None:
        self.address = address
        self.name = name
        self.options = options
        self.rng = np.random.default_rng([seed, 17])
        self.boot = 0
        self.next_seq = int(self.rng.integers(0, 1 << 20))

    def day_records(self, day: _Day) -> tuple[list[LinkRecord], int]:
        """(records, samples) of one day's session."""
        o = self.options
        self.boot = self.boot % 255 + 1  # u8, never 0 on a device that has booted
        n = day.flexion.size - day.flexion.size % o.per_packet
        if n == 0:
            return [], 0
        samples = np.empty(n, _SAMPLE)
        samples["flexion"] = _cdeg(day.flexion[:n])
        samples["lateral"] = _cdeg(day.lateral[:n])
        # The simulator's axial is positive turning left; the device's rotation turning right.
        samples["rotation"] = _cdeg(-day.axial[:n])
        cal = int(SampleFlag.CALIBRATED)
        samples["flags"] = np.where(day.worn[:n], cal, cal | int(SampleFlag.NOT_WORN))
        packets = n // o.per_packet
        idx = np.arange(packets, dtype=np.int64) * o.per_packet
        seq0 = self.next_seq
        self.next_seq = (seq0 + n) & MASK
        t0 = BOOT_LEAD_MS + int(self.rng.integers(0, 5_000))
        head = np.empty(packets, _HEADER)
        head["vt"] = ver_type(PayloadType.SAMPLES_LIVE)
        head["count"] = o.per_packet
        head["boot"] = self.boot
        head["period"] = o.period_ms
        head["seq"] = (seq0 + idx) & MASK
        head["t_ms"] = (t0 + idx * o.period_ms) & MASK
        body = samples.view(np.uint8).reshape(packets, o.per_packet * _SAMPLE.itemsize)
        raw = np.concatenate([head.view(np.uint8).reshape(packets, -1), body], axis=1)
        # Receive times: the UTC of each packet's last sample by a crystal running CLOCK_PPM
        # fast, plus a one-sided radio latency with a rare long tail.
        last = idx + o.per_packet - 1
        true_ms = day.first_ms + last * o.period_ms / (1 + CLOCK_PPM * 1e-6)
        latency = 8.0 + self.rng.uniform(0, 40, packets)
        latency += (self.rng.random(packets) < 0.01) * self.rng.pareto(1.5, packets) * 50
        receive = np.maximum.accumulate((true_ms + latency).astype(np.int64))
        utc_boot = day.first_ms - t0
        status = Status(1, self.boot, t0, seq0, seq0, 0, 0, 3950, 95,
                        StateFlag.CALIBRATED, o.period_ms)
        up = day.first_ms - 500
        dev = self.address
        records: list[LinkRecord] = [
            SessionUp(dev, up - 60, self.name, o.mtu, status),
            TimeSynced(dev, self.boot, up - utc_boot - 20, up - 45, up + 5),
            StatusRead(dev, up + 20, status),
        ]
        rows = raw.tobytes()
        width = raw.shape[1]
        mono0 = time.monotonic_ns()
        records.extend(
            Received(dev, r, mono0 + i, Kind.POSTURE, rows[i * width:(i + 1) * width])
            for i, r in enumerate(receive.tolist())
        )
        records.append(SessionDown(dev, int(receive[-1]) + 2_000, "wearer took it off"))
        return records, n


async def load_history(
    person: PersonData, seed: int, device: HistoryDevice, url: str, database: str,
    work_dir: Path, settings: PipelineSettings, *,
    on_day: Callable[[int, int, int], None] | None = None,
) -> HistoryResult:
    """Feed the person's worn days through a Pipeline (state in `work_dir`) into InfluxDB.

    `on_day(day_index, days_total, samples_so_far)` reports progress after each day is stored.
    """
    result = HistoryResult()
    t_start = time.monotonic()
    spool = Spool(work_dir / "spool")
    batcher = Batcher(spool, V1Writer(url, database, timeout=120))
    await batcher.start()
    pipeline = Pipeline(batcher, work_dir / "pipeline", settings)
    rate_hz = 1000.0 / device.options.period_ms
    total_days = int(np.ceil(person.schedule.duration_s / 86_400.0))
    try:
        for day in _days(person.schedule, seed, rate_hz):
            records, n = device.day_records(day)
            if not records:
                continue
            for record in records:
                pipeline.put(record)
            stop = asyncio.Event()
            stop.set()  # process what is queued, then return
            await pipeline.run(stop)
            pipeline.flush()
            result.days += 1
            result.samples += n
            result.packets += len(records) - 4
            if on_day is not None:
                on_day(day.index + 1, total_days, result.samples)
        if on_day is not None:
            on_day(total_days, total_days, result.samples)
        if not await batcher.flush(timeout=600):
            raise RuntimeError("InfluxDB did not take the history within 600 s (it is still "
                               f"in the spool at {work_dir / 'spool'})")
        for start_ms, end_ms in pipeline.take_rollups():
            result.rollup_points += await asyncio.to_thread(
                rollup_range, url, database, start_ms, end_ms)
        status = batcher.status()
        result.written_points = status.written_points
        snap = pipeline.snapshot()
        result.rejected_records = sum(
            int(d.get("rejected_total", 0)) for d in snap.get("devices", {}).values()
        )
    finally:
        await batcher.close()
    result.seconds = time.monotonic() - t_start
    return result


def history_start(now: datetime, days: int) -> datetime:
    """Midnight UTC `days` days before today's: the history ends where today begins."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - timedelta(days=days)
