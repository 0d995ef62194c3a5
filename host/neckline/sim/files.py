"""CSV files written by the simulator (and read back, for tests and tools).

Every file has one header line; missing values are empty fields; times in the exposure and
headache files are ISO 8601 UTC with a Z suffix. docs/simulation.md describes the columns.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TextIO

import numpy as np
from numpy.typing import NDArray

from neckline.sim.exposure import MinuteExposure
from neckline.sim.headache import HEADACHE_TYPES, Diary
from neckline.sim.render import TraceChunk
from neckline.sim.sensor import ImuSamples
from neckline.sim.timebase import epoch_s, parse_utc

IMU_HEADER = ("t", "gx", "gy", "gz", "ax", "ay", "az")
RAW_HEADER = ("t", "ax", "ay", "az", "temp", "gx", "gy", "gz")
TRUTH_HEADER = (
    "t", "worn", "activity", "flexion", "lateral", "axial",
    "qw", "qx", "qy", "qz", "upx", "upy", "upz",
)
EXPOSURE_HEADER = ("time", "wear_s", "strain_s", "strain_load", "flex_mean", "flex_max")
HEADACHE_HEADER = ("onset", "severity", "type")


def _open(path: Path) -> TextIO:
    return path.open("w", encoding="utf-8", newline="\n")


def _text(values: NDArray[np.float64], fmt: str) -> list[str]:
    """Formatted numbers, with NaN as an empty field."""
    return ["" if v != v else fmt % v for v in values.tolist()]


def write_imu_stream(
    blocks: Iterable[tuple[TraceChunk, ImuSamples]],
    imu_path: Path,
    truth_path: Path | None = None,
    raw_path: Path | None = None,
) -> int:
    """Write the IMU CSV (and optionally truth and raw-register CSVs); returns the row count."""
    rows = 0
    imu = _open(imu_path)
    truth = _open(truth_path) if truth_path else None
    raw = _open(raw_path) if raw_path else None
    try:
        imu.write(",".join(IMU_HEADER) + "\n")
        if truth:
            truth.write(",".join(TRUTH_HEADER) + "\n")
        if raw:
            raw.write(",".join(RAW_HEADER) + "\n")
        for chunk, samples in blocks:
            np.savetxt(
                imu,
                np.column_stack((samples.t, samples.gyro, samples.accel)),
                fmt=["%.4f"] + ["%.7g"] * 6,
                delimiter=",",
            )
            if truth:
                _write_truth(truth, chunk, samples)
            if raw:
                np.savetxt(
                    raw,
                    np.column_stack((samples.t, samples.raw_accel, samples.raw_temp,
                                     samples.raw_gyro)),
                    fmt=["%.4f"] + ["%d"] * 7,
                    delimiter=",",
                )
            rows += len(samples)
    finally:
        imu.close()
        if truth:
            truth.close()
        if raw:
            raw.close()
    return rows


def _write_truth(fh: TextIO, chunk: TraceChunk, samples: ImuSamples) -> None:
    table = np.column_stack(
        (chunk.t, chunk.worn, chunk.activity, chunk.flexion, chunk.lateral, chunk.axial,
         chunk.q, samples.up)
    )
    buf = io.StringIO()
    np.savetxt(buf, table, fmt=["%.4f", "%d", "%d"] + ["%.4f"] * 3 + ["%.9f"] * 7,
               delimiter=",")
    # Posture angles are NaN off the neck; the files use empty fields for missing values.
    fh.write(buf.getvalue().replace("nan", ""))


def write_exposure_csv(path: Path, exposure: MinuteExposure) -> None:
    cols = [
        exposure.iso_times().tolist(),
        _text(exposure.wear_s, "%.2f"),
        _text(exposure.strain_s, "%.2f"),
        _text(exposure.strain_load, "%.4f"),
        _text(exposure.flex_mean, "%.2f"),
        _text(exposure.flex_max, "%.2f"),
    ]
    with _open(path) as fh:
        fh.write(",".join(EXPOSURE_HEADER) + "\n")
        for row in zip(*cols, strict=True):
            fh.write(",".join(row) + "\n")


def write_headache_csv(path: Path, diary: Diary) -> None:
    with _open(path) as fh:
        fh.write(",".join(HEADACHE_HEADER) + "\n")
        for onset, sev, kind in zip(
            diary.iso_onsets().tolist(), diary.severity.tolist(), diary.kind.tolist(), strict=True
        ):
            fh.write(f"{onset},{sev},{kind}\n")


def _rows(path: Path, header: tuple[str, ...]) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        found = next(reader, None)
        if found is None or tuple(found) != header:
            raise ValueError(f"{path}: expected header {','.join(header)}, found {found}")
        rows = [row for row in reader if row]
    for i, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise ValueError(f"{path}:{i}: expected {len(header)} fields, found {len(row)}")
    return rows


def _floats(values: Iterable[str]) -> NDArray[np.float64]:
    return np.array([float(v) if v else np.nan for v in values], dtype=np.float64)


def read_imu_csv(path: Path) -> dict[str, NDArray[np.float64]]:
    """The IMU CSV as one float array per column."""
    rows = _rows(path, IMU_HEADER)
    table = np.array(rows, dtype=np.float64).reshape(-1, len(IMU_HEADER))
    return {name: table[:, i] for i, name in enumerate(IMU_HEADER)}


def read_exposure_csv(path: Path) -> MinuteExposure:
    rows = _rows(path, EXPOSURE_HEADER)
    if not rows:
        raise ValueError(f"{path}: no rows")
    cols = list(zip(*rows, strict=True))
    first: datetime = parse_utc(cols[0][0])
    minutes = np.array([epoch_s(parse_utc(v)) for v in cols[0]], dtype=np.int64)
    if np.any(np.diff(minutes) != 60):
        raise ValueError(f"{path}: rows must be consecutive minutes")
    return MinuteExposure(
        start=first,
        wear_s=_floats(cols[1]),
        strain_s=_floats(cols[2]),
        strain_load=_floats(cols[3]),
        flex_mean=_floats(cols[4]),
        flex_max=_floats(cols[5]),
    )


def read_headache_csv(path: Path) -> Diary:
    rows = _rows(path, HEADACHE_HEADER)
    kinds = [r[2] for r in rows]
    unknown = sorted(set(kinds) - set(HEADACHE_TYPES))
    if unknown:
        raise ValueError(f"{path}: unknown headache type(s) {unknown}")
    return Diary(
        onset_epoch_s=np.array([epoch_s(parse_utc(r[0])) for r in rows], dtype=np.int64),
        severity=np.array([int(r[1]) for r in rows], dtype=np.int8),
        kind=np.array(kinds, dtype=str),
    )
