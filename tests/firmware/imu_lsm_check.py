"""Register-level checks of the LSM6DSOX/ISM330DHCX driver against the simulated register map.

Expected register values are written out from the ST datasheet tables, not taken from the driver.
"""

from array import array

import machine
from imu_common import CounterSource, counter_sample, done, eq, fresh_bus, remapped, sample_k
from imu_regs import Lsm6dsoxSim
from imu_trace import ConstantSource
from wearable import imu
from wearable.imu_lsm6dsox import Lsm6dsox

INIT = [(0x12, b"\x01"), (0x12, b"\x44")]
DEFAULT = [
    (0x0A, b"\x00"), (0x10, b"\x4a"), (0x11, b"\x44"), (0x13, b"\x00"), (0x17, b"\x00"),
    (0x18, b"\xe2"), (0x07, b"\x00"), (0x08, b"\x00"), (0x09, b"\x44"), (0x0A, b"\x06"),
]
ADDR = 0x6A


def rig(variant="lsm6dsox", bus_id=11, source=None, sim_kw=None, **kw):
    clock = machine.SimClock()
    bus = fresh_bus(bus_id)
    if source is None:
        source = CounterSource(1000 / 0.122, 1000 / 17.5)
    dev = Lsm6dsoxSim(source, variant=variant, clock=clock, **(sim_kw or {}))
    bus.attach(ADDR, dev)
    drv = Lsm6dsox(machine.I2C(bus_id), ADDR, sleep_ms=clock.sleep_ms, **kw)
    return clock, bus, dev, drv


def check_configure():
    _clock, bus, dev, drv = rig()
    eq(drv.init(), True, "init")
    eq(bus.writes_to(ADDR), INIT, "SW_RESET then BDU|IF_INC")
    bus.clear_log()
    eq(drv.configure(), True, "configure")
    eq(bus.writes_to(ADDR), DEFAULT, "default configuration writes")
    eq((drv.odr_hz, drv.dlpf_hz), (104, 26.0), "104 Hz, accel LPF2 at ODR/4")
    eq((drv.accel_lsb_per_g, drv.gyro_lsb_per_dps), (1000 / 0.122, 1000 / 17.5), "sensitivities")
    eq(dev.rate_mhz(), 104000, "chip samples at 104 Hz")
    eq(dev.fifo_mode(), 6, "continuous FIFO")
    bus.clear_log()
    drv.configure(odr_hz=200, accel_range_g=16, gyro_range_dps=2000, dlpf_hz=200)
    w = dict(bus.writes_to(ADDR)[1:])
    eq((w[0x10], w[0x11], w[0x17], w[0x09]), (b"\x54", b"\x5c", b"\x00", b"\x55"),
       "208 Hz, 16 g, 2000 dps, LPF2 off")
    eq((drv.odr_hz, drv.dlpf_hz, drv.accel_lsb_per_g, drv.gyro_lsb_per_dps),
       (208, 104.0, 1000 / 0.488, 1000 / 70.0), "scales")
    bus.clear_log()
    drv.configure(odr_hz=104, accel_range_g=2, gyro_range_dps=125, dlpf_hz=1)
    w = dict(bus.writes_to(ADDR)[1:])
    eq((w[0x10], w[0x11], w[0x17]), (b"\x42", b"\x42", b"\xa0"), "2 g, 125 dps, ODR/200")
    eq(drv.dlpf_hz, 0.52, "widest LPF2 setting not above 1 Hz at 104 Hz")
    eq(drv.gyro_lsb_per_dps, 1000 / 4.375, "125 dps sensitivity")
    for bad in ({"accel_range_g": 3}, {"gyro_range_dps": 4000}, {"odr_hz": 7000}):
        try:
            drv.configure(**bad)
            eq("no error", "ValueError", f"configure({bad!r})")
        except ValueError:
            eq(True, True, "ValueError")
    _clock, _bus, dev, drv = rig("ism330dhcx")
    eq(drv.start(gyro_range_dps=4000), True, "ISM330DHCX start at 4000 dps")
    eq((drv.name, drv.who_am_i, dev.regs[0x11]), ("ISM330DHCX", 0x6B, 0x41), "FS_4000 bit")
    eq(drv.gyro_lsb_per_dps, 1000 / 140.0, "4000 dps sensitivity")


def check_register_semantics():
    _clock, _bus, dev, drv = rig()
    drv.init()
    drv.configure()
    i2c = machine.I2C(11)
    k0 = dev.source.k
    dev.step(2)
    eq(dev.fifo_words(), 4, "two words per time slot")
    raw = i2c.readfrom_mem(ADDR, 0x78, 14)
    eq((raw[0] >> 3, raw[7] >> 3), (1, 2), "gyro word then accel word")
    eq((raw[0] >> 1) & 3, (raw[7] >> 1) & 3, "same TAG_CNT within a slot")
    ones = 0
    for t in (raw[0], raw[7]):
        for bit in range(8):
            ones += (t >> bit) & 1
    eq(ones % 2, 0, "tags have even parity")
    eq(dev.fifo_words(), 2, "14-byte burst popped two words (0x7E wraps to 0x78)")
    eq((raw[1] | raw[2] << 8, raw[8] | raw[9] << 8), (k0 % 1000, 100 + k0 % 1000),
       "little-endian gx, ax of the first slot")
    eq(dev.regs[0x22] | dev.regs[0x23] << 8, (k0 + 1) % 1000, "OUTX_L_G holds the newest")
    # Overrun flags.
    dev.step(300)
    s = i2c.readfrom_mem(ADDR, 0x3A, 2)
    eq((s[0] | (s[1] & 3) << 8, s[1] & 0x48), (512, 0x48), "full, OVR_IA and OVR_LATCHED")
    s = i2c.readfrom_mem(ADDR, 0x3B, 1)
    eq(s[0] & 0x48, 0x40, "OVR_LATCHED cleared by the read, OVR_IA still set")
    i2c.readfrom_mem(ADDR, 0x78, 7)
    eq(i2c.readfrom_mem(ADDR, 0x3B, 1)[0] & 0x40, 0, "OVR_IA clears once a word is read")
    # FIFO mode stops when full; bypass empties.
    i2c.writeto_mem(ADDR, 0x0A, b"\x00")
    eq(dev.fifo_words(), 0, "bypass empties the FIFO")
    i2c.writeto_mem(ADDR, 0x0A, b"\x01")
    lost = dev.words_lost
    dev.step(300)
    s = i2c.readfrom_mem(ADDR, 0x3A, 2)
    eq((dev.fifo_words(), s[1] & 0x68, dev.words_lost - lost), (512, 0x20, 88),
       "FIFO mode: stops at 512, FULL set, no overrun, newest words dropped")
    # IF_INC cleared: no auto-increment.
    i2c.writeto_mem(ADDR, 0x12, b"\x40")
    eq(i2c.readfrom_mem(ADDR, 0x0F, 2), b"\x6c\x6c", "IF_INC=0 repeats the register")
    eq(dev.ro_writes, 0, "no writes to read-only registers so far")
    i2c.writeto_mem(ADDR, 0x0F, b"\x00")
    eq((dev.regs[0x0F], dev.ro_writes), (0x6C, 1), "WHO_AM_I is read-only")


def check_fifo_read():
    remap = (2, -1, -3)
    _clock, bus, dev, drv = rig(remap=remap)
    drv.init()
    drv.configure()
    k0 = dev.source.k
    dev.step(20)
    bus.log_reads = True
    buf = array("h", [0] * 6 * 64)
    eq(drv.read_fifo(buf), 20, "20 samples")
    eq(bus.reads, [(ADDR, 0x3A, 2), (ADDR, 0x78, 280)], "status then ONE 40-word burst")
    bus.log_reads = False
    good = True
    for i in range(20):
        want = remapped(counter_sample(k0 + i), remap)
        if tuple(buf[6 * i:6 * i + 6]) != want:
            good = False
            eq(tuple(buf[6 * i:6 * i + 6]), want, f"sample {i}")
    eq(good, True, "little-endian words decoded, paired and remapped")
    eq(dev.underreads, 0, "never read past DIFF_FIFO")
    # Small caller buffer.
    dev.step(12)
    small = array("h", [0] * 6 * 5)
    got = []
    for _ in range(4):
        n = drv.read_fifo(small)
        got.extend([small[6 * i] for i in range(n)])  # sensor x = chip y = -k-1
    eq(got, [-(k0 + 20 + i) - 1 for i in range(12)], "5 + 5 + 2 in order")
    # Slot order does not matter.
    _clock, bus, dev, drv = rig(sim_kw={"accel_first": True})
    drv.start()
    k0 = dev.source.k
    dev.step(5)
    eq(drv.read_fifo(buf), 5, "accel-first slots")
    eq([sample_k(buf, i) for i in range(5)], [k0 + i for i in range(5)], "paired by TAG_CNT")


def check_overflow_parity_orphans():
    _clock, bus, dev, drv = rig()
    drv.start()
    k0 = dev.source.k
    dev.step(300)  # 600 words into 512: the 88 oldest words (44 slots) are overwritten
    buf = array("h", [0] * 6 * 300)
    n = drv.read_fifo(buf)
    eq(n, 256, "the newest 256 samples")
    eq((drv.status.overflows, drv.status.lost, drv.status.last_error), (1, 1, imu.ERR_FIFO),
       "overflow counted")
    eq([sample_k(buf, 0), sample_k(buf, 255)], [k0 + 44, k0 + 299], "oldest kept, newest")
    # A tag with a bit error: that word and its orphaned partner are dropped, pairing continues.
    k0 = dev.source.k
    dev.step(3)
    dev.corrupt_word(2)
    n = drv.read_fifo(buf)
    eq([sample_k(buf, i) for i in range(n)], [k0, k0 + 2], "slot 1 dropped")
    eq((drv.status.parity_errors, drv.status.discarded), (1, 2), "parity error + orphan")
    # A transfer that dies after 3.4 words: those words are gone, the rest pair up correctly.
    lost = drv.status.lost
    k0 = dev.source.k
    dev.step(10)
    bus.fail_on(2, 5, after_bytes=7 * 3 + 3)
    eq(drv.read_fifo(buf), 0, "failed burst delivers nothing")
    eq(drv.status.state, imu.STATE_OK, "no recovery needed for one failed burst")
    n = drv.read_fifo(buf)
    eq([sample_k(buf, i) for i in range(n)], [k0 + i for i in range(2, 10)], "resumes at slot 2")
    eq(drv.status.lost - lost, 2, "slots 0 and 1 counted lost")


def check_self_test():
    src = ConstantSource(gyro=(30, -20, 10), accel=(200, -100, 16393),
                         accel_lsb_per_g=1000 / 0.061, gyro_lsb_per_dps=1000 / 8.75)
    _clock, bus, dev, drv = rig(source=src)
    eq(drv.start(), True, "start")
    eq((drv.status.self_test, drv.status.self_test_mask), (imu.SELFTEST_PASS, 0), "pass")
    v = drv.self_test_values
    eq([round(x) for x in v], [360, 360, 360, 600, 600, 600], "dps and mg responses")
    ws = bus.writes_to(ADDR)
    for w in ((0x10, b"\x38"), (0x14, b"\x01"), (0x11, b"\x5c"), (0x14, b"\x04")):
        eq(w in ws, True, f"self-test write {w!r}")
    eq(ws[-len(DEFAULT):], DEFAULT, "configuration restored")
    eq((dev.regs[0x14], dev.regs[0x10], dev.fifo_mode()), (0x00, 0x4A, 6), "chip state after")
    for gain in (0.05, 3.5):
        _clock, bus, dev, drv = rig(source=src)
        dev.st_gain = gain
        drv.start()
        eq((drv.status.self_test, drv.status.self_test_mask), (imu.SELFTEST_FAIL, 0x3F),
           f"stimulus x{gain} fails every axis")


def check_silent_power_cycle():
    _clock, bus, dev, drv = rig(stall_polls=3)
    drv.start()
    buf = array("h", [0] * 6 * 8)
    dev.step(2)
    eq(drv.read_fifo(buf), 2, "streaming")
    dev.power_cycle()
    for _ in range(3):
        drv.read_fifo(buf)
    eq((drv.status.config_lost, drv.status.state), (1, imu.STATE_RECOVERING), "noticed")
    bus.clear_log()
    drv.read_fifo(buf)
    drv.read_fifo(buf)
    eq((drv.status.state, drv.status.reinits), (imu.STATE_OK, 1), "re-initialised")
    eq(bus.writes_to(ADDR), INIT + DEFAULT, "reset and configuration rewritten")
    dev.step(4)
    eq(drv.read_fifo(buf), 4, "streaming again")


check_configure()
check_register_semantics()
check_fifo_read()
check_overflow_parity_orphans()
check_self_test()
check_silent_power_cycle()
done("imu_lsm_check")
