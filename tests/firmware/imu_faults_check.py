"""I2C fault injection against both drivers: retries, recovery, back-off, the FAILED state, and
a long deterministic fault storm in which no torn or mispaired sample may ever come out."""

import errno
from array import array

import machine
from imu_common import CounterSource, done, eq, fresh_bus, sample_k
from imu_regs import Lsm6dsoxSim, Mpu6050Sim, RegisterDevice
from wearable import imu
from wearable.imu_lsm6dsox import Lsm6dsox
from wearable.imu_mpu6050 import Mpu6050

CHIPS = {
    "mpu": {
        "addr": 0x68, "who_reg": 0x75, "first_reg": 0x3A,
        "init": [(0x6B, b"\x80"), (0x6B, b"\x01")],
        "config": [
            (0x6A, b"\x00"), (0x23, b"\x00"), (0x6B, b"\x01"), (0x1A, b"\x03"),
            (0x19, b"\x09"), (0x1B, b"\x08"), (0x1C, b"\x08"), (0x6A, b"\x04"),
            (0x23, b"\x78"), (0x6A, b"\x40"),
        ],
    },
    "lsm": {
        "addr": 0x6A, "who_reg": 0x0F, "first_reg": 0x3A,
        "init": [(0x12, b"\x01"), (0x12, b"\x44")],
        "config": [
            (0x0A, b"\x00"), (0x10, b"\x4a"), (0x11, b"\x44"), (0x13, b"\x00"),
            (0x17, b"\x00"), (0x18, b"\xe2"), (0x07, b"\x00"), (0x08, b"\x00"),
            (0x09, b"\x44"), (0x0A, b"\x06"),
        ],
    },
}


def rig(chip, bus_id=21, attach=True, **kw):
    clock = machine.SimClock()
    bus = fresh_bus(bus_id)
    c = CHIPS[chip]
    if chip == "mpu":
        dev = Mpu6050Sim(CounterSource(8192.0, 65.5), clock=clock)
        drv = Mpu6050(machine.I2C(bus_id), c["addr"], sleep_ms=clock.sleep_ms, **kw)
    else:
        dev = Lsm6dsoxSim(CounterSource(1000 / 0.122, 1000 / 17.5), clock=clock)
        drv = Lsm6dsox(machine.I2C(bus_id), c["addr"], sleep_ms=clock.sleep_ms, **kw)
    if attach:
        bus.attach(c["addr"], dev)
    return bus, dev, drv, c


def consistent(buf, n, what):
    ks = [sample_k(buf, i) for i in range(n)]
    eq(None in ks, False, what + ": every sample whole")
    return ks


def check_transient(chip):
    bus, dev, drv, c = rig(chip)
    drv.start()
    dev.step(5)
    bus.fail_on(1, errno.ETIMEDOUT)
    buf = array("h", [0] * 6 * 16)
    eq(drv.read_fifo(buf), 5, chip + ": a retried read delivers")
    st = drv.status
    eq((st.errors, st.retries, st.recovered, st.bus_failures), (1, 1, 1, 0), "counted")
    eq((st.last_error, st.last_reg, st.last_op), (errno.ETIMEDOUT, c["first_reg"], imu.OP_READ),
       "last error")
    eq(st.state, imu.STATE_OK, "still OK")
    # A failed write in the middle of configure is retried in place: same writes, same order.
    drv.init()
    bus.clear_log()
    bus.fail_on(4, errno.EIO)
    eq(drv.configure(), True, chip + ": configure survives a failed write")
    eq(bus.writes_to(c["addr"]), c["config"], "exact writes despite the retry")
    eq((drv.status.last_error, drv.status.last_op), (errno.EIO, imu.OP_WRITE), "write error")


def check_stuck(chip):
    bus, dev, drv, c = rig(chip)
    drv.start()
    dev.step(5)
    bus.stuck(3)
    buf = array("h", [0] * 6 * 16)
    eq(drv.read_fifo(buf), 0, chip + ": stuck bus")
    st = drv.status
    eq((st.state, st.bus_failures, st.last_error), (imu.STATE_RECOVERING, 1, errno.ETIMEDOUT),
       "recovering")
    t = bus.transactions
    eq(drv.read_fifo(buf), 0, "back-off poll")
    eq(bus.transactions, t, "no bus traffic during back-off")
    bus.clear_log()
    drv.read_fifo(buf)
    eq((st.state, st.reinits), (imu.STATE_OK, 1), "recovered by re-init")
    eq(bus.writes_to(c["addr"]), c["init"] + c["config"], "re-init and configuration")
    dev.step(3)
    n = drv.read_fifo(buf)
    eq(n, 3, "streaming again")
    consistent(buf, n, chip)


def check_unplug(chip):
    bus, dev, drv, c = rig(chip)
    drv.start()
    dev.step(2)
    buf = array("h", [0] * 6 * 16)
    drv.read_fifo(buf)
    bus.unplug(c["addr"])
    t0 = bus.transactions
    failed_at = None
    for i in range(200):
        drv.read_fifo(buf)
        if failed_at is None and drv.status.state == imu.STATE_FAILED:
            failed_at = i + 1
    st = drv.status
    eq(failed_at, 70, chip + ": FAILED after 6 attempts, back-off 1, 2, 4 ... 32 polls")
    eq(bus.transactions - t0, 3 + 6 * 3, "bounded bus traffic: nothing once FAILED")
    eq((st.last_error, st.recover_attempts), (errno.ENODEV, 6), "why")
    bus.replug(c["addr"])  # back, with power-on register values
    eq(drv.read_fifo(buf), 0, "FAILED stays failed until asked")
    bus.clear_log()
    eq(drv.recover(), True, "recover() brings it back")
    eq(bus.writes_to(c["addr"]), c["init"] + c["config"], "re-initialised and configured")
    dev.step(4)
    n = drv.read_fifo(buf)
    eq(n, 4, "streaming")
    consistent(buf, n, chip)
    # A short drop-out heals by itself.
    bus.unplug(c["addr"])
    for _ in range(5):
        drv.read_fifo(buf)
    bus.replug(c["addr"])
    polls = 0
    while drv.status.state != imu.STATE_OK and polls < 50:
        drv.read_fifo(buf)
        polls += 1
    eq(drv.status.state, imu.STATE_OK, "reconnects without help")
    eq(polls <= 9, True, f"within the back-off schedule ({polls} polls)")
    dev.step(2)
    eq(drv.read_fifo(buf), 2, "data again")


def check_boot_without_chip(chip):
    bus, dev, drv, c = rig(chip, attach=False)
    eq(drv.start(), False, chip + ": nothing on the bus at boot")
    eq((drv.status.state, drv.status.last_error), (imu.STATE_RECOVERING, errno.ENODEV), "why")
    buf = array("h", [0] * 6 * 16)
    drv.read_fifo(buf)
    bus.attach(c["addr"], dev)
    for _ in range(10):
        drv.read_fifo(buf)
    eq(drv.status.state, imu.STATE_OK, "found once plugged in")
    eq(dev.rate_mhz() > 0, True, "and configured")
    dev.step(3)
    eq(drv.read_fifo(buf), 3, "streaming")


def check_impostor(chip):
    bus, _dev, drv, c = rig(chip, stall_polls=4)
    drv.start()
    bus.unplug(c["addr"])
    bus.attach(c["addr"], RegisterDevice(c["who_reg"], 0x12))
    buf = array("h", [0] * 6 * 16)
    for _ in range(150):
        drv.read_fifo(buf)
    st = drv.status
    eq((st.state, st.last_error), (imu.STATE_FAILED, imu.ERR_WHO_AM_I), chip + ": impostor")
    eq(st.wrong_id, 6, "identity checked on every attempt")


def check_partial_mpu_burst():
    bus, dev, drv, _c = rig("mpu")
    drv.start()
    dev.step(10)
    bus.fail_on(3, errno.EIO, after_bytes=18)  # INT_STATUS, FIFO_COUNT, then the burst dies
    buf = array("h", [0] * 6 * 16)
    eq(drv.read_fifo(buf), 0, "mpu: failed burst")
    st = drv.status
    eq((st.fifo_resets, st.lost, st.state), (1, 10, imu.STATE_OK), "FIFO reset, 10 lost")
    eq(dev.fifo_count(), 0, "realigned")
    k = dev.source.k
    dev.step(3)
    n = drv.read_fifo(buf)
    eq(consistent(buf, n, "mpu"), [k, k + 1, k + 2], "whole frames after the reset")


class Lcg:
    def __init__(self, seed):
        self.x = seed

    def next(self, n):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.x >> 8) % n


def check_storm(chip):
    bus, dev, drv, _c = rig(chip, stall_polls=10)
    drv.start()
    rnd = Lcg(7 if chip == "mpu" else 11)
    errs = (errno.EIO, errno.ETIMEDOUT, errno.ENODEV)
    buf = array("h", [0] * 6 * 8)
    ks = []
    torn = 0
    for _ in range(400):
        dev.step(1 + rnd.next(4))
        r = rnd.next(100)
        if r < 25:
            bus.fail_on(1 + rnd.next(3), errs[rnd.next(3)], after_bytes=(0, 5, 13)[rnd.next(3)])
        elif r < 28:
            bus.stuck(1 + rnd.next(4))
        elif r < 29:
            dev.power_cycle()
        n = drv.read_fifo(buf)
        for i in range(n):
            k = sample_k(buf, i)
            if k is None:
                torn += 1
            else:
                ks.append(k)
    eq(torn, 0, chip + ": no torn or mispaired sample in the storm")
    back = 0
    for i in range(1, len(ks)):
        if not 0 < (ks[i] - ks[i - 1]) % 1000 < 500:
            back += 1
    eq(back, 0, "samples never go backwards or repeat")
    st = drv.status
    eq(st.errors > 50 and st.reinits > 0, True,
       f"the storm really hit ({st.errors} errors, {st.reinits} reinits)")
    bus.clear_faults()
    for _ in range(150):
        if drv.status.state == imu.STATE_FAILED:
            drv.recover()
        dev.step(2)
        drv.read_fifo(buf)
    eq(drv.status.state, imu.STATE_OK, "healthy once the storm is over")
    dev.step(5)
    n = drv.read_fifo(buf)
    eq(n, 5, "streaming")
    consistent(buf, n, chip)
    print("storm", chip, "delivered", len(ks), "errors", st.errors, "reinits", st.reinits,
          "lost", st.lost, "discarded", st.discarded)


for chip in ("mpu", "lsm"):
    check_transient(chip)
    check_stuck(chip)
    check_unplug(chip)
    check_boot_without_chip(chip)
    check_impostor(chip)
    check_storm(chip)
check_partial_mpu_burst()
done("imu_faults_check")
