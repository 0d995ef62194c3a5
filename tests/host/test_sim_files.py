"""The simulator's CSV files: documented headers, parseable values, round trips."""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from neckline.sim import HeadacheConfig, RenderConfig, schedule_exposure, simulate_person
from neckline.sim.files import (
    EXPOSURE_HEADER,
    HEADACHE_HEADER,
    IMU_HEADER,
    RAW_HEADER,
    TRUTH_HEADER,
    read_exposure_csv,
    read_headache_csv,
    read_imu_csv,
    write_exposure_csv,
    write_headache_csv,
    write_imu_stream,
)
from neckline.sim.sensor import ACCEL_SI_PER_LSB, GYRO_SI_PER_LSB
from neckline.sim.stream import simulate_imu
from neckline.sim.wearer import generate_schedule

MONDAY = datetime(2026, 1, 5, tzinfo=UTC)
ISO_MINUTE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:00Z$")


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def test_imu_truth_and_raw_files(tmp_path: Path) -> None:
    # A window around putting the device on, so both worn states appear.
    day = generate_schedule(0, MONDAY, 86400.0)
    put_on = day.t0[np.argmax(day.worn)]
    start = MONDAY + timedelta(minutes=int(put_on // 60) - 10)
    pairs = list(simulate_imu(0, start, 1200.0, RenderConfig(rate_hz=20.0, chunk_s=300.0)))
    imu, truth, raw = tmp_path / "imu.csv", tmp_path / "truth.csv", tmp_path / "raw.csv"
    assert write_imu_stream(pairs, imu, truth, raw) == 24_000

    header, rows = _read(imu)
    assert header == list(IMU_HEADER) == ["t", "gx", "gy", "gz", "ax", "ay", "az"]
    assert len(rows) == 24_000
    cols = read_imu_csv(imu)
    samples = [s for _, s in pairs]
    gyro = np.concatenate([s.gyro for s in samples])
    accel = np.concatenate([s.accel for s in samples])
    assert np.allclose(cols["t"], np.arange(24_000) / 20.0)
    assert np.allclose(np.column_stack((cols["gx"], cols["gy"], cols["gz"])), gyro,
                       rtol=1e-6, atol=1e-9)
    assert np.allclose(np.column_stack((cols["ax"], cols["ay"], cols["az"])), accel,
                       rtol=1e-6, atol=1e-6)

    header, rows = _read(raw)
    assert header == list(RAW_HEADER)
    table = np.array([[int(v) for v in r[1:]] for r in rows])
    assert table.min() >= -32768 and table.max() <= 32767
    assert np.allclose(table[:, 0:3] * ACCEL_SI_PER_LSB, accel)
    assert np.allclose(table[:, 4:7] * GYRO_SI_PER_LSB, gyro)

    header, rows = _read(truth)
    assert header == list(TRUTH_HEADER)
    worn = np.array([int(r[1]) for r in rows])
    assert 0 < worn.sum() < worn.size  # both states occur in this window
    flex_empty = np.array([r[3] == "" for r in rows])
    assert np.array_equal(flex_empty, worn == 0)
    q = np.array([[float(v) for v in r[6:10]] for r in rows])
    assert np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-7)
    up = np.array([[float(v) for v in r[10:13]] for r in rows])
    assert np.allclose(np.linalg.norm(up, axis=1), 1.0, atol=1e-7)


def test_exposure_file_round_trip(tmp_path: Path) -> None:
    e = schedule_exposure(generate_schedule(0, MONDAY, 86400.0))
    path = tmp_path / "exposure.csv"
    write_exposure_csv(path, e)
    header, rows = _read(path)
    assert header == list(EXPOSURE_HEADER)
    assert header[:4] == ["time", "wear_s", "strain_s", "strain_load"]
    assert len(rows) == 1440
    assert rows[0][0] == "2026-01-05T00:00:00Z"
    assert all(ISO_MINUTE.match(r[0]) for r in rows)
    assert rows[0][4] == ""  # asleep, not worn: no mean flexion
    back = read_exposure_csv(path)
    assert back.start == e.start
    assert np.allclose(back.wear_s, e.wear_s, atol=0.005)
    assert np.allclose(back.strain_s, e.strain_s, atol=0.005)
    assert np.allclose(back.strain_load, e.strain_load, atol=5e-5)
    assert np.allclose(back.flex_mean, e.flex_mean, atol=0.005, equal_nan=True)


def test_headache_file_round_trip(tmp_path: Path) -> None:
    person = simulate_person(2, MONDAY, days=28, headache=HeadacheConfig())
    path = tmp_path / "headaches.csv"
    write_headache_csv(path, person.diary)
    header, rows = _read(path)
    assert header == list(HEADACHE_HEADER) == ["onset", "severity", "type"]
    assert len(rows) == len(person.diary) > 0
    assert all(ISO_MINUTE.match(r[0]) for r in rows)
    back = read_headache_csv(path)
    assert np.array_equal(back.onset_epoch_s, person.diary.onset_epoch_s)
    assert np.array_equal(back.severity, person.diary.severity)
    assert np.array_equal(back.kind, person.diary.kind)


def test_readers_reject_foreign_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("time,value\n2026-01-05T00:00:00Z,1\n")
    with pytest.raises(ValueError, match="header"):
        read_exposure_csv(bad)
    with pytest.raises(ValueError, match="header"):
        read_headache_csv(bad)
    short = tmp_path / "short.csv"
    short.write_text("onset,severity,type\n2026-01-05T00:00:00Z,3\n")
    with pytest.raises(ValueError, match="fields"):
        read_headache_csv(short)
    odd = tmp_path / "odd.csv"
    odd.write_text("onset,severity,type\n2026-01-05T00:00:00Z,3,cluster\n")
    with pytest.raises(ValueError, match="type"):
        read_headache_csv(odd)
