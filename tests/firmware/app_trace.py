"""Simulated wearer -> IMU trace files for the virtual device (test_app.py).

neckline.sim renders the head's motion for a schedule of segments and models the MPU-6050 on the
back of the neck; the raw int16 counts (chip axes, ±2 g and ±250 °/s as the model quantises them)
go into the binary trace format of docs/imu.md, which firmware/sim/imu_trace.py plays back. The
ground truth (flexion, lateral, worn per sample) comes back for comparison.

Chip axes versus the firmware's sensor frame: for the nominal mount the simulator's chip x points
up, y left and z backwards (docs/simulation.md), so the settings remap is sensor x = -chip z,
y = chip y, z = chip x, i.e. REMAP = [-3, 2, 1].
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from neckline.sim import Activity, ImuModel, RenderConfig, Schedule, SensorConfig, render

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
RATE_HZ = 100.0
ACCEL_LSB_PER_G = 16384.0
GYRO_LSB_PER_DPS = 131.0
REMAP = [-3, 2, 1]
_HEADER = "<4sBBHIff"

# (duration_s, activity, worn, flexion_deg, drift_deg_per_s, lateral_deg, axial_deg)
Row = tuple[float, int, bool, float, float, float, float]


def still(seconds: float, flexion: float = 0.0, lateral: float = 0.0,
          activity: Activity = Activity.DESK) -> Row:
    return (seconds, int(activity), True, flexion, 0.0, lateral, 0.0)


def off_neck(seconds: float) -> Row:
    return (seconds, int(Activity.BREAK), False, 0.0, 0.0, 0.0, 0.0)


@dataclass
class Truth:
    """Per trace row: time since the trace start (s), ground-truth angles (deg), worn flag."""

    t: NDArray[np.float64]
    flexion: NDArray[np.float64]
    lateral: NDArray[np.float64]
    worn: NDArray[np.bool_]
    edges: list[float] = field(default_factory=list)  # segment boundaries, s

    def plateau(self, t0: float, t1: float) -> tuple[float, float]:
        """Median true (flexion, lateral) over [t0, t1) seconds."""
        sel = (self.t >= t0) & (self.t < t1) & self.worn
        return float(np.median(self.flexion[sel])), float(np.median(self.lateral[sel]))


def write_trace(path: Path, rows: list[Row], seed: int = 1, wiggle: float = 0.5,
                sensor: SensorConfig | None = None) -> Truth:
    """Render `rows` and write the sensor output as a binary trace; returns the ground truth."""
    schedule = Schedule.from_rows(START, rows)
    rcfg = RenderConfig(rate_hz=RATE_HZ, chunk_s=600.0, wiggle_scale=wiggle)
    model = ImuModel(seed, sensor or SensorConfig(rate_hz=RATE_HZ))
    ts: list[NDArray[np.float64]] = []
    flex: list[NDArray[np.float64]] = []
    lat: list[NDArray[np.float64]] = []
    worn: list[NDArray[np.bool_]] = []
    with open(path, "wb") as f:
        f.write(struct.pack(_HEADER, b"NLTR", 1, 6, 20, int(RATE_HZ * 1000), ACCEL_LSB_PER_G,
                            GYRO_LSB_PER_DPS))
        for chunk in render(schedule, seed, rcfg):
            imu = model.process_chunk(chunk)
            block = np.column_stack((imu.raw_gyro, imu.raw_accel)).astype("<i2")
            f.write(block.tobytes())
            ts.append(chunk.t)
            flex.append(chunk.flexion)
            lat.append(chunk.lateral)
            worn.append(chunk.worn)
    return Truth(np.concatenate(ts), np.concatenate(flex), np.concatenate(lat),
                 np.concatenate(worn), [float(e) for e in schedule.edges])


def settings_json(**config: int) -> str:
    """A settings.json for the simulated mount (remap) with the protocol defaults."""
    values = {
        "strain_threshold_cdeg": 2500, "strain_hold_s": 60, "hysteresis_cdeg": 500,
        "clear_hold_s": 5, "stream_period_ms": 100, "haptics_enabled": 1,
        "quiet_start_min": -1, "quiet_end_min": -1, "snooze_s": 900,
        "extension_threshold_cdeg": -1500, "lateral_threshold_cdeg": 2000,
    }
    values.update(config)
    return json.dumps({"version": 1, "config": values, "imu": "auto", "remap": REMAP,
                       "haptics_freq_hz": 200, "battery_divider_x1000": 2000})


def make_device_dir(root: Path, **config: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "settings.json").write_text(settings_json(**config))
    return root
