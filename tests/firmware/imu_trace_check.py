"""Reads the host-written trace files in the directory given as argv[1] and prints, as one JSON
object, what the trace source and the drivers made of them; the pytest side compares that with
what it wrote.  Files: rows.bin (100 Hz, 8192 LSB/g, 65.5 LSB/dps), rows.csv (the same rows,
columns shuffled), half.bin (every other row at 50 Hz), and bad_*.bin/csv (malformed)."""

import json
import sys
from array import array

import machine
from imu_common import fresh_bus
from imu_regs import Lsm6dsoxSim, Mpu6050Sim
from imu_trace import TraceSource, write_bin, write_csv
from wearable.imu_lsm6dsox import Lsm6dsox
from wearable.imu_mpu6050 import Mpu6050

d = sys.argv[1]
out = {}


def play(src, n, period_us):
    rows = []
    s = [0] * 6
    for k in range(n):
        ok = src.sample_at(k * period_us, s)
        row = list(s)
        row.append(ok)  # MicroPython has no [*s, ok]
        rows.append(row)
    return rows


src = TraceSource(d + "/rows.bin")
out["bin_header"] = [src.binary, src.rate_hz, src.accel_lsb_per_g, src.gyro_lsb_per_dps]
out["bin"] = play(src, 42, 10000)  # the trace has 40 rows: the last two calls run past the end
src.close()
src = TraceSource(d + "/rows.csv")
out["csv_header"] = [src.binary, src.rate_hz, src.accel_lsb_per_g, src.gyro_lsb_per_dps]
out["csv"] = play(src, 42, 10000)
src.close()
src = TraceSource(d + "/half.bin")
out["zoh"] = play(src, 40, 10000)  # 50 Hz trace seen at 100 Hz
src.close()
src = TraceSource(d + "/rows.bin", loop=True)
out["loop"] = play(src, 85, 10000)
src.close()

errors = {}
for name in ("bad_header.bin", "bad_row.bin", "bad_version.bin", "bad_cols.csv",
             "bad_value.csv", "bad_fields.csv"):
    try:
        src = TraceSource(d + "/" + name)
        s = [0] * 6
        for k in range(10):
            src.sample_at(k * 10000, s)
        errors[name] = "no error"
    except ValueError as e:
        errors[name] = str(e)
out["errors"] = errors

# Round trip through this module's own writers.
rows = [r[:6] for r in out["bin"][:40]]
write_bin(d + "/rt.bin", rows, 100, 8192.0, 65.5)
write_csv(d + "/rt.csv", rows, 100, 8192.0, 65.5)
out["roundtrip"] = [[r[:6] for r in play(TraceSource(d + "/rt.bin"), 40, 10000)] == rows,
                    [r[:6] for r in play(TraceSource(d + "/rt.csv"), 40, 10000)] == rows]

# The trace played by the simulated chips and read back through the drivers.
for chip in ("mpu", "lsm"):
    clock = machine.SimClock()
    bus = fresh_bus(41)
    src = TraceSource(d + "/rows.bin")
    if chip == "mpu":
        dev = Mpu6050Sim(src, clock=clock)
        bus.attach(0x68, dev)
        drv = Mpu6050(machine.I2C(41), 0x68, sleep_ms=clock.sleep_ms)
    else:
        dev = Lsm6dsoxSim(src, clock=clock)
        bus.attach(0x6A, dev)
        drv = Lsm6dsox(machine.I2C(41), 0x6A, sleep_ms=clock.sleep_ms)
    # Configure without the boot-time waits so the trace starts at the first FIFO sample.
    drv.init()
    drv.configure()
    dev.sensor_us = 0
    dev.source = TraceSource(d + "/rows.bin")
    dev.step(40)
    buf = array("h", [0] * 6 * 64)
    n = drv.read_fifo(buf)
    out[chip] = [[buf[6 * i + j] for j in range(6)] for i in range(n)]
    out[chip + "_scale"] = [drv.odr_hz, drv.accel_lsb_per_g, drv.gyro_lsb_per_dps]

print(json.dumps(out))
