"""Heap use of the read path under MicroPython: read_fifo must not allocate at all once running
(a bound of 64 bytes over 1000 samples leaves room for nothing per sample), to_si only its six
float results.  Run with a small heap (-X heapsize) by the test to catch MemoryError.  Under
CPython the same reads run and are checked, the heap part is skipped."""

import gc
from array import array

import machine
from imu_common import CounterSource, done, eq, fresh_bus, is_micropython, sample_k
from imu_regs import Lsm6dsoxSim, Mpu6050Sim
from wearable.imu_lsm6dsox import Lsm6dsox
from wearable.imu_mpu6050 import Mpu6050

MP = is_micropython()


def measure_start():
    # Collect first, then keep the collector off so garbage made by the call stays counted.
    if MP:
        gc.collect()
        gc.disable()
        return gc.mem_alloc()
    return 0


def measure_end(start):
    if not MP:
        return 0
    used = gc.mem_alloc() - start
    gc.enable()
    return used


def run(name, dev, drv):
    eq(drv.start(), True, name + " start")
    buf = array("h", [0] * 6 * 32)
    si = array("f", [0] * 6)
    dev.step(25)
    drv.read_fifo(buf)  # first poll outside the measurement
    read_bytes = 0
    si_bytes = 0
    samples = 0
    whole = 0
    for _ in range(40):
        dev.step(25)
        a = measure_start()
        n = drv.read_fifo(buf)
        read_bytes += measure_end(a)
        samples += n
        a = measure_start()
        for i in range(n):
            drv.to_si(buf, i, si)
        si_bytes += measure_end(a)
        for i in range(n):
            whole += sample_k(buf, i) is not None
    eq((samples, whole), (1000, 1000), name + " 1000 whole samples")
    if MP:
        eq(read_bytes <= 64, True,
           f"{name} read_fifo allocated {read_bytes} B for {samples} samples")
        eq(si_bytes <= 256 * samples, True, f"{name} to_si {si_bytes} B")
        print("alloc", name, "read_fifo", read_bytes, "to_si_per_sample", si_bytes // samples,
              "free", gc.mem_free())
    else:
        print("alloc", name, "skipped on CPython")


clock = machine.SimClock()
bus = fresh_bus(31)
bus.log_writes = False
mpu = Mpu6050Sim(CounterSource(8192.0, 65.5), clock=clock)
lsm = Lsm6dsoxSim(CounterSource(1000 / 0.122, 1000 / 17.5), clock=clock)
bus.attach(0x68, mpu)
bus.attach(0x6A, lsm)
i2c = machine.I2C(31)
run("mpu", mpu, Mpu6050(i2c, 0x68, sleep_ms=clock.sleep_ms, remap=(1, 2, 3)))
run("lsm", lsm, Lsm6dsox(i2c, 0x6A, sleep_ms=clock.sleep_ms, remap=(1, 2, 3)))
done("imu_alloc_check")
