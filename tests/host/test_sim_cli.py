"""`neckline simulate ...` run in-process through the real command line entry point."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from neckline.cli import main
from neckline.sim.files import EXPOSURE_HEADER, HEADACHE_HEADER, IMU_HEADER, read_exposure_csv


def _header_and_count(path: Path) -> tuple[list[str], int]:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], len(rows) - 1


def test_simulate_imu_writes_the_replay_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    out = tmp_path / "imu.csv"
    truth = tmp_path / "truth.csv"
    raw = tmp_path / "raw.csv"
    code = main(["simulate", "imu", "--out", str(out), "--truth", str(truth), "--raw", str(raw),
                 "--seed", "3", "--hours", "0.02", "--rate", "50",
                 "--start", "2026-01-06T10:00:00Z"])
    assert code == 0
    header, n = _header_and_count(out)
    assert header == list(IMU_HEADER)
    assert n == 3600  # 72 s at 50 Hz
    assert _header_and_count(truth)[1] == n
    assert _header_and_count(raw)[1] == n
    assert "3600 samples" in capsys.readouterr().out


def test_simulate_imu_is_reproducible(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    for path, seed in ((a, "4"), (b, "4"), (c, "5")):
        assert main(["simulate", "imu", "--out", str(path), "--seed", seed, "--hours", "0.01"]) == 0
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_simulate_exposure_from_schedule_and_trace(tmp_path: Path) -> None:
    fast = tmp_path / "fast.csv"
    slow = tmp_path / "slow.csv"
    common = ["--seed", "0", "--hours", "2", "--start", "2026-01-05T09:00:00Z"]
    assert main(["simulate", "exposure", "--out", str(fast), *common]) == 0
    assert main(["simulate", "exposure", "--out", str(slow), "--from-trace", "--rate", "20",
                 *common]) == 0
    header, n = _header_and_count(fast)
    assert header == list(EXPOSURE_HEADER)
    assert n == 120
    e_fast = read_exposure_csv(fast)
    e_slow = read_exposure_csv(slow)
    assert e_fast.wear_s.sum() > 3600  # 09:00-11:00 on a worn Monday
    assert e_slow.wear_s.sum() == pytest.approx(e_fast.wear_s.sum(), rel=0.02)


def test_simulate_headaches_with_exposure(tmp_path: Path) -> None:
    out = tmp_path / "h.csv"
    exp = tmp_path / "e.csv"
    code = main(["simulate", "headaches", "--out", str(out), "--exposure-out", str(exp),
                 "--days", "28", "--effect", "0.5", "--lag", "6,12", "--prodrome", "--seed", "2"])
    assert code == 0
    header, n = _header_and_count(out)
    assert header == list(HEADACHE_HEADER)
    assert 2 <= n <= 25
    assert _header_and_count(exp)[1] == 28 * 24 * 60


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["simulate", "exposure", "--start", "yesterday"], "--start"),
        (["simulate", "exposure", "--start", "2026-01-05T08:00:30Z"], "whole UTC minute"),
        (["simulate", "exposure", "--hours", "0"], "at least one second"),
        (["simulate", "exposure", "--days", "5000"], "limited"),
        (["simulate", "imu", "--rate", "0"], "--rate"),
        (["simulate", "headaches", "--lag", "6"], "--lag"),
        (["simulate", "headaches", "--lag", "12,6"], "lag"),
        (["simulate", "headaches", "--rate-per-week", "-1"], "rate_per_week"),
        (["simulate", "headaches", "--effect", "nan"], "finite"),
        (["simulate", "exposure", "--threshold", "inf"], "finite"),
    ],
)
def test_user_errors_are_reported_not_raised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code = main([*argv, "--out", str(tmp_path / "x.csv")])
    assert code == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_missing_output_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", "exposure", "--out", str(tmp_path / "nope" / "x.csv")])
    assert code == 1
    assert "does not exist" in capsys.readouterr().err
