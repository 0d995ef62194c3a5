"""A simulated 8-hour worn day for the firmware accuracy test: IMU registers and ground truth.

The day comes from `neckline.sim`: a wearer's schedule, rendered at 100 Hz and fed through the
MPU-6050 model with its default (realistic) errors. It is laid out for the firmware:

- 2 minutes on the table first, so the die starts at room temperature and warms up on the neck
  (the bias drifts with it) and the firmware has a still start;
- then 8 hours on the neck, each hour opening with a 60 s hold of the neutral posture (target
  flexion, lateral bend and rotation 0, with the desk's small wander). The first hold is where
  the firmware calibrates; the later ones measure how far its neutral drifts. The rest of each
  hour is the wearer's real schedule for that hour (desk, phone, walking, talking, breaks).

`write_day` writes the registers as the firmware reads them (gx, gy, gz, ax, ay, az int16 per
sample, in chip axes: the firmware remaps them) and keeps the truth of every READOUT-th sample:
the true up vector in the firmware's sensor frame, the worn flag and the true angular speed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from neckline.sim import (
    Activity,
    ImuModel,
    RenderConfig,
    Schedule,
    SensorConfig,
    generate_schedule,
    render,
)
from neckline.sim.schedule import concatenate
from neckline.sim.timebase import DEFAULT_START

RATE_HZ = 100.0
GYRO_LSB_PER_DPS = 131.0  # the simulated MPU-6050: +-250 deg/s
ACCEL_LSB_PER_G = 16384.0  # +-2 g
# Sensor frame S (x forward, y left, z up) from the chip axes of the nominal mount, as the
# firmware's remap_table spec: S x = -chip z, S y = chip y, S z = chip x (docs/simulation.md).
REMAP = "-z,y,x"
TABLE_S = 120  # seconds on the table before the device goes on
HOLD_S = 60  # neutral hold at the start of every hour
HOURS = 8
READOUT = 10  # the firmware reads a FIFO batch of this many samples, then the angles
CAL_START_S = TABLE_S + 20.0  # calibration starts 20 s into the first hold
SEED = 3  # wearer, rendering and sensor; its Monday is worn from 07:33 for 13 h


@dataclass(frozen=True)
class DayTruth:
    """Ground truth at the readout samples (sample indices READOUT-1, 2*READOUT-1, ...)."""

    index: NDArray[np.int64]  # sample index of each readout
    t: NDArray[np.float64]  # seconds since the start of the day
    up: NDArray[np.float64]  # (k, 3) true unit up vector in the firmware's sensor frame
    worn: NDArray[np.bool_]
    speed_dps: NDArray[np.float64]  # true angular speed of the head, deg/s
    hold: NDArray[np.int64]  # hour of the neutral hold the sample is in, else -1
    samples: int  # samples in the whole day


def chip_to_sensor(v: NDArray[np.float64]) -> NDArray[np.float64]:
    """Vectors (n, 3) from the simulator's chip axes into the firmware's sensor frame."""
    return np.stack((-v[:, 2], v[:, 1], v[:, 0]), axis=1)


def _first_long_wear(schedule: Schedule, hours: float) -> float:
    """Start (s) of the first stretch worn without a break for at least `hours`."""
    start = None
    for i in range(len(schedule)):
        if schedule.worn[i]:
            start = schedule.edges[i] if start is None else start
            if schedule.edges[i + 1] - start >= hours * 3600.0:
                return float(start)
        else:
            start = None
    raise ValueError("no long enough worn stretch in the schedule")


def day_schedule(seed: int = SEED) -> Schedule:
    """Table, then 8 worn hours, each opening with a neutral hold (see the module docstring)."""
    week = generate_schedule(seed, DEFAULT_START, 7 * 86400.0)
    # Start a few minutes into the first long worn stretch, on a whole minute.
    t0 = math.ceil(_first_long_wear(week, HOURS + 0.2) / 60.0) * 60.0 + 300.0
    table = Schedule.from_rows(week.start, [(TABLE_S, Activity.BREAK, False, 5.0, 0.0, 0.0, 0.0)])
    hold = Schedule.from_rows(week.start, [(HOLD_S, Activity.DESK, True, 0.0, 0.0, 0.0, 0.0)])
    parts = [table]
    for h in range(HOURS):
        parts.append(hold)
        parts.append(week.crop(t0 + h * 3600.0 + HOLD_S, t0 + (h + 1) * 3600.0))
    day = concatenate(parts)
    if not day.worn[1:].all():
        raise ValueError("the chosen hours are not all worn")
    return day


def write_day(raw_path: Path, seed: int = SEED) -> DayTruth:
    """Simulate the day, write its registers to `raw_path` and return the readout truth."""
    schedule = day_schedule(seed)
    imu = ImuModel(seed, SensorConfig(rate_hz=RATE_HZ))
    keep: dict[str, list[NDArray[np.generic]]] = {k: [] for k in ("i", "t", "up", "worn", "w")}
    samples = 0
    with raw_path.open("wb") as f:
        for chunk in render(schedule, seed, RenderConfig(rate_hz=RATE_HZ)):
            out = imu.process_chunk(chunk)
            regs = np.concatenate((out.raw_gyro, out.raw_accel), axis=1)
            f.write(np.ascontiguousarray(regs, dtype="<i2").tobytes())
            idx = np.arange(chunk.index0, chunk.index0 + len(chunk))
            sel = np.flatnonzero(idx % READOUT == READOUT - 1)
            keep["i"].append(idx[sel])
            keep["t"].append(chunk.t[sel])
            keep["up"].append(chip_to_sensor(out.up[sel]))
            keep["worn"].append(chunk.worn[sel])
            keep["w"].append(np.degrees(np.linalg.norm(out.gyro_true[sel], axis=1)))
            samples += len(chunk)
    t = np.concatenate(keep["t"])
    into_hour = t - TABLE_S
    in_hold = (into_hour >= 0) & (into_hour % 3600.0 < HOLD_S)
    hold = np.where(in_hold, (into_hour // 3600.0).astype(np.int64), -1)
    return DayTruth(
        index=np.concatenate(keep["i"]).astype(np.int64),
        t=t,
        up=np.concatenate(keep["up"]),
        worn=np.concatenate(keep["worn"]).astype(bool),
        speed_dps=np.concatenate(keep["w"]),
        hold=hold,
        samples=samples,
    )
