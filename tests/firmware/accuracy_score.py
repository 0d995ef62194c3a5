"""Score the firmware's posture angles on the simulated day against the simulator's truth.

    python -m tests.firmware.accuracy_score [--seed N] [--keep DIR]

runs the whole measurement (simulate the day, run the firmware under CPython, score) and
prints one JSON report; tests/firmware/test_accuracy_day.py runs the same steps and asserts.

Truth relative to the same neutral: the firmware's neutral is the mean of its up estimate at
the readouts of its 2 s calibration window. The truth uses the mean TRUE up vector at exactly
those readouts and builds the neutral frame the same way (z = that up, x = the sensor's forward
axis made orthogonal to it, y = z × x), so a mounting tilt is accounted for exactly as the
calibration accounts for it, and the error is the firmware's alone: its up estimate during the
day and during calibration.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from neckline.sim.rotation import NeutralFrame
from tests.firmware import accuracy_sim as day
from tests.firmware.mp import FIRMWARE, popen_firmware

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "accuracy_run.py"
NO_VALUE = -32768
CAL_READOUTS = 20  # 2 s of calibration at 10 readouts per second
MOVING_DPS = 5.0  # "moving": true angular speed above this
HOLD_SKIP_S = 20.0  # a hold's first seconds: the head is still settling into it
# Orient's accelerometer time constant while moving. The default, 3 s, misses the bounds: the
# gyro bias it learns during slow head motion taken for rest is off by up to 1 deg/s, and the
# tilt error settles at bias error x time constant (docs/orientation.md, "A simulated day").
TAU_MOTION_S = 1.0


def start_runner(interpreter: str, raw: Path, out: Path, samples: int, checkpoint: int,
                 tau_motion_s: float = TAU_MOTION_S) -> Any:
    """Start accuracy_run.py under `interpreter` on the first `samples` samples of `raw`."""
    args = [str(raw), str(out), str(samples), str(checkpoint),
            str(round(day.CAL_START_S * day.RATE_HZ)), str(day.RATE_HZ),
            str(day.GYRO_LSB_PER_DPS), str(day.ACCEL_LSB_PER_G), day.REMAP,
            str(day.READOUT), "20.0", str(tau_motion_s)]
    return popen_firmware(interpreter, RUNNER, *args, cwd=FIRMWARE)


def finish_runner(proc: Any, timeout: float) -> dict[str, Any]:
    stdout, stderr = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"accuracy_run.py failed ({proc.returncode}):\n{stderr}")
    result: dict[str, Any] = json.loads(stdout)
    return result


def read_angles(out: Path) -> NDArray[np.int16]:
    """(k, 3) flexion_cd, lateral_cd, flags per readout."""
    return np.fromfile(out, dtype="<i2").reshape(-1, 3)


@dataclass(frozen=True)
class Score:
    rmse_flexion: float
    rmse_lateral: float
    rmse_flexion_moving: float
    rmse_lateral_moving: float
    p95_flexion: float
    p95_lateral: float
    max_flexion: float
    max_lateral: float
    accel_only_rmse_flexion: float
    accel_only_rmse_lateral: float
    drift_flexion: float  # largest |mean error in a later hold - in the first|, degrees
    drift_lateral: float
    hold_errors: list[tuple[float, float]]  # mean (flexion, lateral) error per neutral hold
    readouts: int  # scored readouts (worn, after calibration)
    moving_share: float
    mean_abs_flexion: float  # how far from neutral the day went (context for the errors)

    def report(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in vars(self).items()
                if k != "hold_errors"} | {
            "hold_errors": [[round(a, 3), round(b, 3)] for a, b in self.hold_errors]}


def truth_angles(truth: day.DayTruth, cal_readout: int) -> tuple[NDArray[np.float64], ...]:
    """True flexion and lateral bend at every readout, against the calibration's neutral."""
    window = slice(cal_readout - CAL_READOUTS + 1, cal_readout + 1)
    frame = NeutralFrame.from_calibration(truth.up[window].mean(axis=0),
                                          forward_sensor=(1.0, 0.0, 0.0))
    return frame.posture(truth.up)


def accel_only(raw: Path, truth: day.DayTruth, cal_readout: int) -> tuple[NDArray[np.float64],
                                                                         ...]:
    """Posture from the accelerometer alone (remapped, normalised) at the readouts."""
    regs = np.memmap(raw, dtype="<i2", mode="r").reshape(-1, 6)
    acc = day.chip_to_sensor(regs[truth.index, 3:].astype(np.float64))
    acc /= np.linalg.norm(acc, axis=1, keepdims=True)
    window = slice(cal_readout - CAL_READOUTS + 1, cal_readout + 1)
    frame = NeutralFrame.from_calibration(acc[window].mean(axis=0),
                                          forward_sensor=(1.0, 0.0, 0.0))
    return frame.posture(acc)


def score(truth: day.DayTruth, angles: NDArray[np.int16], cal_readout: int,
          raw: Path) -> Score:
    if angles.shape[0] != truth.index.size:
        raise ValueError(f"{angles.shape[0]} readouts for {truth.index.size} truth samples")
    flex_true, lat_true = truth_angles(truth, cal_readout)
    ok = (np.arange(truth.index.size) > cal_readout) & truth.worn & (angles[:, 0] != NO_VALUE)
    err_f = angles[:, 0] / 100.0 - flex_true
    err_l = angles[:, 1] / 100.0 - lat_true
    acc_f, acc_l = accel_only(raw, truth, cal_readout)
    moving = ok & (truth.speed_dps > MOVING_DPS)

    def rmse(e: NDArray[np.float64], m: NDArray[np.bool_]) -> float:
        return float(np.sqrt(np.mean(e[m] ** 2)))

    holds = []
    into_hold = (truth.t - day.TABLE_S) % 3600.0
    for h in range(day.HOURS):
        m = ok & (truth.hold == h) & (into_hold >= HOLD_SKIP_S)
        holds.append((float(err_f[m].mean()), float(err_l[m].mean())))
    first = np.array(holds[0])
    drift = np.abs(np.array(holds[1:]) - first).max(axis=0)
    return Score(
        rmse_flexion=rmse(err_f, ok),
        rmse_lateral=rmse(err_l, ok),
        rmse_flexion_moving=rmse(err_f, moving),
        rmse_lateral_moving=rmse(err_l, moving),
        p95_flexion=float(np.percentile(np.abs(err_f[ok]), 95)),
        p95_lateral=float(np.percentile(np.abs(err_l[ok]), 95)),
        max_flexion=float(np.abs(err_f[ok]).max()),
        max_lateral=float(np.abs(err_l[ok]).max()),
        accel_only_rmse_flexion=rmse(acc_f - flex_true, ok),
        accel_only_rmse_lateral=rmse(acc_l - lat_true, ok),
        drift_flexion=float(drift[0]),
        drift_lateral=float(drift[1]),
        hold_errors=holds,
        readouts=int(ok.sum()),
        moving_share=float(moving.sum() / ok.sum()),
        mean_abs_flexion=float(np.abs(flex_true[ok]).mean()),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=day.SEED)
    parser.add_argument("--keep", type=Path, help="directory for the raw and angle files")
    parser.add_argument("--tau-motion", type=float, default=TAU_MOTION_S)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        where = args.keep or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        raw = where / f"day{args.seed}.raw"
        out = where / f"day{args.seed}.angles"
        truth = day.write_day(raw, args.seed)
        summary = finish_runner(
            start_runner("cpython", raw, out, truth.samples, 0, args.tau_motion), 600)
        result = score(truth, read_angles(out), summary["cal_readout"], raw)
        bias = [b / 256.0 / day.GYRO_LSB_PER_DPS for b in summary["end"]["orient"][9:12]]
        print(json.dumps({"seed": args.seed, "tau_motion_s": args.tau_motion,
                          "cal_result": summary["cal_result"],
                          "bias_end_dps": [round(b, 3) for b in bias]} | result.report()))


if __name__ == "__main__":
    main()
