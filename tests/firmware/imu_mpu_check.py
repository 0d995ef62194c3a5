"""Register-level checks of the MPU-6050/6500 driver against the simulated register map.

Expected register writes are spelled out as numbers from the InvenSense register map, not taken
from the driver or the simulator.
"""

from array import array

import machine
from imu_common import CounterSource, counter_sample, done, eq, fresh_bus, near, remapped
from imu_regs import Mpu6050Sim, RegisterDevice
from imu_trace import ConstantSource
from wearable import imu
from wearable.imu_mpu6050 import Mpu6050

DEFAULT_6050 = [
    (0x6A, b"\x00"), (0x23, b"\x00"), (0x6B, b"\x01"), (0x1A, b"\x03"), (0x19, b"\x09"),
    (0x1B, b"\x08"), (0x1C, b"\x08"), (0x6A, b"\x04"), (0x23, b"\x78"), (0x6A, b"\x40"),
]
DEFAULT_6500 = [
    (0x6A, b"\x00"), (0x23, b"\x00"), (0x6B, b"\x01"), (0x1A, b"\x43"), (0x1D, b"\x03"),
    (0x19, b"\x09"), (0x1B, b"\x08"), (0x1C, b"\x08"), (0x6A, b"\x04"), (0x23, b"\x78"),
    (0x6A, b"\x40"),
]
INIT = [(0x6B, b"\x80"), (0x6B, b"\x01")]


def rig(variant="6050", bus_id=1, addr=0x68, source=None, **kw):
    clock = machine.SimClock()
    bus = fresh_bus(bus_id)
    if source is None:
        source = CounterSource(8192.0, 65.5)
    dev = Mpu6050Sim(source, variant=variant, clock=clock)
    bus.attach(addr, dev)
    drv = Mpu6050(machine.I2C(bus_id), addr, sleep_ms=clock.sleep_ms, **kw)
    return clock, bus, dev, drv


def check_init_and_configure():
    for variant, expected in (("6050", DEFAULT_6050), ("6500", DEFAULT_6500)):
        _clock, bus, dev, drv = rig(variant)
        eq(drv.init(), True, variant + " init")
        eq(bus.writes_to(0x68), INIT, variant + " init writes")
        eq(drv.name, "MPU-6050" if variant == "6050" else "MPU-6500", "chip name")
        bus.clear_log()
        eq(drv.configure(), True, variant + " configure")
        eq(bus.writes_to(0x68), expected, variant + " configure writes")
        eq(dev.rate_mhz(), 100000, variant + " chip samples at 100 Hz")
        eq(drv.odr_hz, 100.0, "odr")
        eq(drv.accel_lsb_per_g, 8192.0, "accel LSB/g at 4 g")
        eq(drv.gyro_lsb_per_dps, 65.5, "gyro LSB/dps at 500 dps")
        eq(drv.dlpf_hz, 42 if variant == "6050" else 41, "DLPF bandwidth")
    _clock, bus, dev, drv = rig()
    drv.init()
    bus.clear_log()
    drv.configure(odr_hz=200, accel_range_g=16, gyro_range_dps=2000, dlpf_hz=100)
    w = dict(bus.writes_to(0x68)[3:8])
    eq((w[0x1A], w[0x19], w[0x1B], w[0x1C]), (b"\x02", b"\x04", b"\x18", b"\x18"),
       "200 Hz, DLPF 98 Hz, 2000 dps, 16 g")
    eq((drv.odr_hz, drv.dlpf_hz, drv.accel_lsb_per_g, drv.gyro_lsb_per_dps),
       (200.0, 98, 2048.0, 16.4), "scales at 16 g / 2000 dps")
    eq(dev.rate_mhz(), 200000, "chip samples at 200 Hz")
    bus.clear_log()
    drv.configure(odr_hz=100, accel_range_g=2, gyro_range_dps=250, dlpf_hz=300)
    w = dict(bus.writes_to(0x68)[3:8])
    eq((w[0x1A], w[0x19]), (b"\x00", bytes([79])), "DLPF off: 8 kHz internal rate / 80")
    eq(dev.rate_mhz(), 100000, "still 100 Hz")
    drv.configure(odr_hz=104)
    eq(round(drv.odr_hz, 3), 111.111, "104 Hz asked -> nearest rate not below (1000/9)")
    for bad in ({"accel_range_g": 3}, {"gyro_range_dps": 300}, {"odr_hz": 0},
                {"odr_hz": 1500}):
        try:
            drv.configure(**bad)
            eq("no error", "ValueError", f"configure({bad!r})")
        except ValueError:
            eq(True, True, "ValueError")


def check_detection():
    bus = fresh_bus(2)
    clock = machine.SimClock()
    bus.attach(0x68, Mpu6050Sim(ConstantSource(), "6050", clock=clock))
    bus.attach(0x69, Mpu6050Sim(ConstantSource(), "6500", clock=clock))
    from imu_regs import Lsm6dsoxSim

    bus.attach(0x6A, Lsm6dsoxSim(ConstantSource(), "lsm6dsox", clock=clock))
    bus.attach(0x6B, Lsm6dsoxSim(ConstantSource(), "ism330dhcx", clock=clock))
    i2c = machine.I2C(2)
    eq(i2c.scan(), [0x68, 0x69, 0x6A, 0x6B], "scan")
    eq(imu.detect(i2c), [(0x68, 0x68, "MPU-6050", True), (0x69, 0x70, "MPU-6500", True),
                         (0x6A, 0x6C, "LSM6DSOX", True), (0x6B, 0x6B, "ISM330DHCX", True)],
       "detect all four")
    d = imu.open_imu(i2c)
    eq((type(d).__name__, d.addr), ("Mpu6050", 0x68), "open_imu picks the first supported")
    bus = fresh_bus(3)
    bus.attach(0x68, RegisterDevice(0x75, 0x47))
    i2c = machine.I2C(3)
    eq(imu.detect(i2c), [(0x68, 0x47, "ICM-42688-P", False)], "ICM-42688-P recognised")
    eq(imu.open_imu(i2c), None, "but not driven")
    bus.attach(0x6B, Lsm6dsoxSim(ConstantSource(), "ism330dhcx", clock=clock))
    d = imu.open_imu(i2c)
    eq((type(d).__name__, d.addr), ("Lsm6dsox", 0x6B), "skips the unsupported chip")
    bus = fresh_bus(4)
    bus.attach(0x68, RegisterDevice(0x75, 0x99))
    eq(imu.detect(machine.I2C(4)), [], "unknown WHO_AM_I is not a chip")
    eq(imu.open_imu(machine.I2C(4)), None, "empty-handed")


def check_fifo_and_remap():
    remap = (-2, 1, 3)
    _clock, bus, dev, drv = rig(remap=remap)
    drv.init()
    drv.configure()
    k0 = dev.source.k  # samples the chip made while being set up
    dev.step(40)
    eq(dev.fifo_count(), 480, "40 frames of 12 bytes")
    bus.log_reads = True
    buf = array("h", [0] * 6 * 64)
    eq(drv.read_fifo(buf), 40, "all 40 read")
    eq(bus.reads, [(0x68, 0x3A, 1), (0x68, 0x72, 2), (0x68, 0x74, 384), (0x68, 0x74, 96)],
       "INT_STATUS, FIFO_COUNT, then two bursts from FIFO_R_W")
    eq(dev.underreads, 0, "never read past the count")
    good = True
    for i in range(40):
        want = remapped(counter_sample(k0 + i), remap)
        if tuple(buf[6 * i:6 * i + 6]) != want:
            good = False
            eq(tuple(buf[6 * i:6 * i + 6]), want, f"sample {i}")
    eq(good, True, "big-endian frames decoded and remapped")
    bus.log_reads = False
    # A caller buffer smaller than the FIFO: whole samples only, nothing skipped.
    dev.step(12)
    small = array("h", [0] * 6 * 5)
    got = []
    for _ in range(4):
        n = drv.read_fifo(small)
        got.extend([small[6 * i + 1] for i in range(n)])  # sensor y = chip x = k
    eq(got, list(range(k0 + 40, k0 + 52)), "5 + 5 + 2 in order")
    # Saturation: -(-32768) must not wrap.
    _clock, bus, dev, drv = rig(source=ConstantSource(gyro=(0, -32768, 0), accel=(0, -32768, 0),
                                                      accel_lsb_per_g=8192, gyro_lsb_per_dps=65.5),
                               remap=(-2, 1, 3))
    drv.init()
    drv.configure()
    dev.step(1)
    drv.read_fifo(buf)
    eq((buf[0], buf[3]), (32767, 32767), "negated -32768 saturates")
    # SI conversion.
    _clock, bus, dev, drv = rig(source=ConstantSource(gyro=(655, -131, 0), accel=(0, 4096, 8192),
                                                      accel_lsb_per_g=8192, gyro_lsb_per_dps=65.5))
    drv.init()
    drv.configure()
    dev.step(1)
    eq(drv.read_fifo(buf), 1, "one sample")
    si = array("f", [0] * 6)
    drv.to_si(buf, 0, si)
    want = (0.17453292519943295, -0.03490658503988659, 0.0, 0.0, 4.903325, 9.80665)
    for i in range(6):
        near(si[i], want[i], 1e-6, f"SI value {i}")


def check_overflow():
    _clock, bus, dev, drv = rig()
    drv.init()
    drv.configure()
    dev.step(100)  # 1200 bytes into 1024: the oldest bytes are overwritten, frames torn
    eq(dev.fifo_count(), 1024, "6050 FIFO full")
    eq(dev.regs[0x3A] & 0x10, 0x10, "FIFO_OFLOW_INT set")
    bus.clear_log()
    buf = array("h", [0] * 6 * 32)
    eq(drv.read_fifo(buf), 0, "overflowed FIFO is discarded, not decoded")
    st = drv.status
    eq((st.overflows, st.fifo_resets, st.lost, st.last_error), (1, 1, 85, imu.ERR_FIFO),
       "overflow counted")
    eq(bus.writes_to(0x68), [(0x6A, b"\x00"), (0x6A, b"\x04"), (0x6A, b"\x40")], "FIFO reset")
    eq(dev.fifo_count(), 0, "FIFO empty after reset")
    k = dev.source.k
    dev.step(3)
    eq(drv.read_fifo(buf), 3, "reads again")
    eq([buf[0], buf[6], buf[12]], [k, k + 1, k + 2], "aligned frames after the reset")
    eq(drv.status.state, imu.STATE_OK, "still OK")
    # MPU-6500 stops writing when full (FIFO_MODE), leaving a partial frame.
    _clock, bus, dev, drv = rig("6500")
    drv.init()
    drv.configure()
    dev.step(50)
    eq(dev.fifo_count(), 512, "6500 FIFO full, 42 whole frames + 8 bytes")
    eq(drv.read_fifo(buf), 0, "discarded")
    eq((drv.status.overflows, drv.status.lost), (1, 42), "lost counted")


def check_self_test():
    for variant in ("6050", "6500"):
        src = ConstantSource(gyro=(10, -20, 5), accel=(100, -50, 8192), accel_lsb_per_g=8192,
                             gyro_lsb_per_dps=65.5)
        _clock, bus, dev, drv = rig(variant, source=src)
        eq(drv.start(), True, variant + " start")
        st = drv.status
        eq((st.self_test, st.self_test_mask), (imu.SELFTEST_PASS, 0), variant + " self-test")
        ws = bus.writes_to(0x68)
        a_st = b"\xf0" if variant == "6050" else b"\xe0"
        eq(((0x1B, b"\xe0") in ws, (0x1C, a_st) in ws), (True, True), "self-test bits set")
        eq(ws[-len(DEFAULT_6050 if variant == "6050" else DEFAULT_6500):],
           DEFAULT_6050 if variant == "6050" else DEFAULT_6500, "configuration restored after")
        eq((dev.regs[0x1B], dev.regs[0x1C], dev.regs[0x6A]), (0x08, 0x08, 0x40), "chip state")
        for i in range(6):
            if variant == "6050":
                near(drv.self_test_values[i], 0.0, 0.01, "response matches factory trim")
            else:
                near(drv.self_test_values[i], 1.0, 0.01, "response / OTP")
        # A damaged part: half (6050) or a third (6500) of the stimulus.
        _clock, bus, dev, drv = rig(variant, source=src)
        dev.st_gain = 0.5 if variant == "6050" else 0.3
        eq(drv.start(), True, "a failed self-test still streams")
        eq((drv.status.self_test, drv.status.self_test_mask), (imu.SELFTEST_FAIL, 0x3F),
           variant + " damaged part fails on every axis")
        if variant == "6050":
            near(drv.self_test_values[0], -0.5, 0.01, "change from trim -50 %")
        dev.step(2)
        eq(drv.read_fifo(array("h", [0] * 12)), 2, "and delivers samples")
        # Before init the self-test cannot run.
        _clock, bus, dev, drv = rig(variant, source=src)
        eq(drv.self_test(), False, "no self-test before init")
        eq(drv.status.self_test, imu.SELFTEST_ERROR, "reported as error")


def check_silent_power_cycle():
    _clock, bus, dev, drv = rig(stall_polls=5)
    drv.init()
    drv.configure()
    buf = array("h", [0] * 6 * 16)
    dev.step(4)
    eq(drv.read_fifo(buf), 4, "streaming")
    dev.power_cycle()  # registers back to reset values: asleep, FIFO off; the bus is fine
    eq(dev.step(10), 0, "a sleeping chip produces nothing")
    for _ in range(5):
        drv.read_fifo(buf)
    eq(drv.status.config_lost, 1, "config loss found by read-back after 5 empty polls")
    eq(drv.status.state, imu.STATE_RECOVERING, "recovering")
    bus.clear_log()
    drv.read_fifo(buf)  # back-off: one poll skipped
    eq(bus.writes, [], "nothing written during back-off")
    drv.read_fifo(buf)
    eq(drv.status.state, imu.STATE_OK, "recovered")
    eq(drv.status.reinits, 1, "one re-init")
    eq(bus.writes_to(0x68), INIT + DEFAULT_6050, "reset and full configuration rewritten")
    dev.step(3)
    eq(drv.read_fifo(buf), 3, "streaming again")


check_init_and_configure()
check_detection()
check_fifo_and_remap()
check_overflow()
check_self_test()
check_silent_power_cycle()
done("imu_mpu_check")
