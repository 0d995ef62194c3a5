"""The app's per-sample work allocates nothing (MicroPython only; the heap is locked).

    app_alloc.py <work dir>

Boots the real App on the simulated board (no BLE bridge: the radio stays down and every sample
is tracked as undelivered), calibrates it, runs past its first stored minute (opening the log's
segment file allocates, once), then runs the sensor and ui steps 1,200 times (a minute of 10 Hz
samples at 100 Hz IMU rate) with micropython.heap_lock() around each: the FIFO read, the filter,
posture, wear, the grid, strain, the minute log (a minute closes and is written to flash in the
run), the raw ring, the delivery bookkeeping, button and motor patterns. The simulated IMU makes
its samples while the heap is unlocked, and the motor's PWM is a stand-in (the simulation's
machine.PWM keeps a history; a chip's does not).
"""

import gc
import sys

import imu_regs
import imu_trace
import machine
import micropython
from logs_common import check, done, eq, workdir
from wearable import proto
from wearable.app import App


class Motor:
    """machine.PWM without the simulation's history list."""

    def __init__(self):
        self.duty = 0
        self.changes = 0

    def freq(self, hz=None):
        return 200

    def duty_u16(self, d=None):
        if d is None:
            return self.duty
        self.duty = d
        self.changes += 1
        return None


def steps(app, clock, n):
    for _ in range(n):
        clock.advance_ms(50)
        app._sensor_step()
        app._ui_step()


def main():
    root = workdir()
    with open(root + "/settings.json", "w") as f:
        f.write('{"version": 1, "remap": [1, 2, 3]}')
    clock = machine.sim_clock
    src = imu_trace.ConstantSource(gyro=(2, -1, 1), accel=(120, -80, 16384))
    machine.sim_bus(0).attach(0x68, imu_regs.Mpu6050Sim(src))
    app = App(root=root, log=lambda m: None)
    app.boot()
    app.now_t = lambda: clock.us // 1000  # the device clock is the simulated one here
    motor = Motor()
    app.haptics.pwm = motor
    eq(app.sampler.state_name(), "ok", "the IMU is up")
    steps(app, clock, 60)  # 3 s to settle the filter
    check(app.calibrate("test"), "calibration starts")
    steps(app, clock, 60)
    check(app.sampler.posture.calibrated, "calibrated")
    steps(app, clock, 1200)
    check(motor.changes >= 4, f"the calibration's double tap played ({motor.changes})")
    check(app.flog.next_record >= 1, "the first minute is stored")
    before = app.ring.next_seq
    records = app.flog.next_record
    failures = 0
    gc.collect()
    for _ in range(1200):
        clock.advance_ms(50)
        micropython.heap_lock()
        try:
            app._sensor_step()
            app._ui_step()
        except MemoryError:
            failures += 1
        finally:
            micropython.heap_unlock()
    eq(failures, 0, "sensor and ui steps with the heap locked")
    n = app.ring.next_seq - before
    check(595 <= n <= 605, f"a minute of samples went through ({n})")
    check(app.flog.next_record > records, "a minute record was written meanwhile")
    flags = bytearray(7)
    app.ring.read(app.ring.next_seq - 1, flags)
    check(flags[6] & proto.SF_CALIBRATED, "the samples are calibrated")
    eq(app.task_errors, 0, "no errors")
    print("samples", n, "records", app.flog.next_record)


if sys.implementation.name == "micropython":
    main()
    done("app_alloc")
