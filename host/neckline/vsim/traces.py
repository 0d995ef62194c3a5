"""A virtual wearer's IMU trace, from the foundation's wearer and sensor models (neckline.sim).

The trace opens with a still, neutral hold on the neck (`HOLD_S`), in which the virtual device
calibrates (the stack presses its button; docs/firmware.md §5), then follows person `seed`'s
generated schedule from the start of their first long worn stretch. The sensor model writes raw
int16 counts in chip axes into the binary trace format of docs/imu.md, which the firmware's IMU
shim plays back at 100 Hz. Ground truth (flexion, lateral, worn) is kept at 10 Hz, the stream
rate, so tests can compare what InfluxDB holds with what the simulated head did.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
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
TRUTH_EVERY = 10  # truth kept for every 10th IMU sample: 10 Hz
ACCEL_LSB_PER_G = 16384.0  # the simulated MPU-6050: +-2 g, +-250 deg/s
GYRO_LSB_PER_DPS = 131.0
# Chip axes -> the firmware's sensor frame for the simulator's nominal mount (docs/simulation.md):
# sensor x = -chip z, y = chip y, z = chip x.
REMAP = [-3, 2, 1]
HOLD_S = 60.0  # neutral hold at the start of the trace
CALIBRATE_AT_MS = 20_000  # the button press that calibrates, in device time
CALIBRATE_HOLD_MS = 3_000
_HEADER = "<4sBBHIff"
_CHUNK_S = 300.0


@dataclass(frozen=True)
class TraceTruth:
    """Ground truth at 10 Hz: t (s since the trace start), flexion/lateral (deg, NaN off the
    neck), worn."""

    t: NDArray[np.float64]
    flexion: NDArray[np.float64]
    lateral: NDArray[np.float64]
    worn: NDArray[np.bool_]

    def save(self, path: Path) -> None:
        np.savez_compressed(path, t=self.t, flexion=self.flexion, lateral=self.lateral,
                            worn=self.worn)

    @classmethod
    def load(cls, path: Path) -> TraceTruth:
        with np.load(path) as z:
            return cls(z["t"], z["flexion"], z["lateral"], z["worn"].astype(bool))


def wearer_schedule(seed: int, seconds: float, hold_s: float = HOLD_S) -> Schedule:
    """The neutral hold, then `seconds - hold_s` of person `seed`'s own day."""
    if hold_s < (CALIBRATE_AT_MS + CALIBRATE_HOLD_MS) / 1000 + 5:
        raise ValueError("the neutral hold must outlast the calibrating button press")
    if seconds <= hold_s:
        raise ValueError(f"a trace must be longer than the {hold_s:.0f} s calibration hold")
    week = generate_schedule(seed, DEFAULT_START, 7 * 86400.0)
    need = seconds - hold_s
    start = None
    begin = 0.0
    for i in range(len(week)):
        if not week.worn[i]:
            start = None
            continue
        if start is None:
            start = float(week.edges[i])
        if week.edges[i + 1] - start >= need + 600.0:
            begin = math.ceil(start / 60.0) * 60.0 + 300.0
            break
    else:  # nobody stays on the neck that long: take the day as it comes, breaks included
        begin = 8 * 3600.0
    hold = Schedule.from_rows(week.start, [(hold_s, int(Activity.DESK), True, 0.0, 0.0, 0.0,
                                            0.0)])
    return concatenate([hold, week.crop(begin, begin + need)])


def write_wearer_trace(
    path: Path, seed: int, seconds: float,
    progress: Callable[[float], None] | None = None, hold_s: float = HOLD_S,
) -> TraceTruth:
    """Render `seconds` of person `seed` into the binary trace at `path`; returns the truth.

    `progress` is called with the seconds rendered so far."""
    schedule = wearer_schedule(seed, seconds, hold_s)
    model = ImuModel(seed, SensorConfig(rate_hz=RATE_HZ))
    keep: dict[str, list[NDArray[np.generic]]] = {"t": [], "f": [], "l": [], "w": []}
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(struct.pack(_HEADER, b"NLTR", 1, 6, 20, int(RATE_HZ * 1000), ACCEL_LSB_PER_G,
                            GYRO_LSB_PER_DPS))
        for chunk in render(schedule, seed, RenderConfig(rate_hz=RATE_HZ, chunk_s=_CHUNK_S)):
            imu = model.process_chunk(chunk)
            f.write(np.column_stack((imu.raw_gyro, imu.raw_accel)).astype("<i2").tobytes())
            idx = np.arange(chunk.index0, chunk.index0 + len(chunk))
            sel = np.flatnonzero(idx % TRUTH_EVERY == 0)
            keep["t"].append(chunk.t[sel])
            keep["f"].append(chunk.flexion[sel])
            keep["l"].append(chunk.lateral[sel])
            keep["w"].append(chunk.worn[sel])
            if progress is not None:
                progress(float(chunk.t[-1]) + 1.0 / RATE_HZ)
    tmp.replace(path)
    return TraceTruth(np.concatenate(keep["t"]).astype(np.float64),
                      np.concatenate(keep["f"]).astype(np.float64),
                      np.concatenate(keep["l"]).astype(np.float64),
                      np.concatenate(keep["w"]).astype(bool))


def device_settings(**config: int) -> str:
    """settings.json for the simulated mount (the remap) with the protocol's default config."""
    values = {
        "strain_threshold_cdeg": 2500, "strain_hold_s": 60, "hysteresis_cdeg": 500,
        "clear_hold_s": 5, "stream_period_ms": 100, "haptics_enabled": 1,
        "quiet_start_min": -1, "quiet_end_min": -1, "snooze_s": 900,
        "extension_threshold_cdeg": -1500, "lateral_threshold_cdeg": 2000,
    }
    values.update(config)
    return json.dumps({"version": 1, "config": values, "imu": "auto", "remap": REMAP,
                       "haptics_freq_hz": 200, "battery_divider_x1000": 2000})


def calibration_script() -> str:
    """vdevice --script: hold the button during the neutral hold, which calibrates."""
    return f"{CALIBRATE_AT_MS} press {CALIBRATE_HOLD_MS}\n"
