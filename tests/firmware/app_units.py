"""The application's own pieces, under MicroPython and CPython (the output must be identical).

    app_units.py <work dir>

- delivery.Delivery against a brute-force set model (random appends, deliveries, evictions,
  across the 2**32 seq wrap), and its bounded mode;
- outbox.Outbox numbering, dropping and pacing;
- live.Live packet boundaries, latency and undelivered packets;
- control.Control procedures with a stand-in link: exact ranges, retried sends, BUSY, ABORT,
  NO_RECORDS, a vanished link, REQUEST_SUMMARY from a real FlashLog;
- sampler.Sampler's time grid on simulated MPU-6050 and LSM6DSOX register maps driven by their
  own virtual clocks: exact period steps, a FIFO overflow filled with no-value samples, a 1 %
  fast IMU oscillator, 104 Hz resampled to 10 Hz, a 15 s outage, low power and period changes.
"""

import struct
from array import array

import imu_regs
import imu_trace
import machine
from logs_common import Lcg, check, done, eq, rmtree, workdir
from wearable import proto
from wearable.control import Control
from wearable.delivery import Delivery
from wearable.flashlog import FlashLog
from wearable.live import Live
from wearable.outbox import Outbox
from wearable.ring import RawRing
from wearable.sampler import Sampler

M = 0xFFFFFFFF


# ------------------------------------------------------------------------------ delivery
def ranges_to_set(ranges):
    s = set()
    for a, b in ranges:
        n = ((b - a) & M) + 1
        for k in range(n):
            s.add((a + k) & M)
    return s


def delivery_model(seed, start, max_ranges, exact):
    rnd = Lcg(seed)
    d = Delivery(max_ranges=max_ranges, max_lost=64 if exact else 3)
    undel = set()
    oldest = start
    nxt = start
    lost_true = set()
    lost_got = []
    for _ in range(400):
        op = rnd.below(10)
        if op < 5:  # append k samples, delivered or not
            k = 1 + rnd.below(20)
            a = nxt
            b = (nxt + k - 1) & M
            nxt = (nxt + k) & M
            if rnd.below(3) == 0:
                d.undelivered(a, b)
                for j in range(k):
                    undel.add((a + j) & M)
        elif op < 8:  # a backfill delivers a random stored stretch
            n = (nxt - oldest) & M
            if n == 0:
                continue
            a = (oldest + rnd.below(n)) & M
            k = 1 + rnd.below(30)
            b = (a + k - 1) & M
            if ((b - oldest) & M) >= n:
                b = (nxt - 1) & M
                k = ((b - a) & M) + 1
            d.delivered(a, b)
            for j in range(k):
                undel.discard((a + j) & M)
        else:  # the ring evicts its oldest
            n = (nxt - oldest) & M
            if n == 0:
                continue
            k = 1 + rnd.below(n if n < 40 else 40)
            a = oldest
            b = (oldest + k - 1) & M
            oldest = (oldest + k) & M
            d.evicted(a, b)
            for j in range(k):
                s = (a + j) & M
                if s in undel:
                    undel.discard(s)
                    lost_true.add(s)
            while True:
                r = d.take_lost()
                if r is None:
                    break
                lost_got.append(r)
    got = ranges_to_set(lost_got)
    if exact:
        eq(d.imprecise, 0, f"exact mode needs no merges (seed {seed})")
        check(got == lost_true, "lost ranges are exactly the evicted undelivered samples "
              f"(seed {seed}): {len(got)} vs {len(lost_true)}")
        eq(d.undelivered_count(), len(undel), f"undelivered count (seed {seed})")
        eq(d.lost_samples, len(lost_true), f"lost_samples (seed {seed})")
    else:
        check(lost_true <= got, f"bounded mode never misses a lost sample (seed {seed})")
        check(d.n <= max_ranges and d.nlost <= 3, "bounded mode stays within its arrays")
    return len(lost_true)


def test_delivery():
    total = 0
    for seed in range(1, 9):
        total += delivery_model(seed, (M - 300 + seed * 37) & M, 64, True)
    for seed in range(20, 24):
        delivery_model(seed, 1000, 3, False)
    check(total > 100, f"the model lost samples at all ({total})")
    d = Delivery()
    d.undelivered(10, 19)
    d.delivered(12, 14)
    eq((d.n, d.undelivered_count(), d.first_undelivered()), (2, 7, 10), "a split range")
    d.evicted(10, 13)
    eq(d.take_lost(), (10, 11), "evicting lost the undelivered head")
    eq(d.take_lost(), None, "one lost range")
    print("delivery: lost", total)


# ------------------------------------------------------------------------------ outbox, live
class FakeLink:
    def __init__(self, spp=3, mtu=23):
        self.stream = True
        self.spp = spp
        self._mtu = mtu
        self.posture_buf = bytearray(proto.MAX_PAYLOAD)
        self.sent = []  # payload bytes of every send_posture that reached a link
        self.fail_next = 0  # the next n send_posture calls reach no link
        self.events = []
        self.accept_events = 100
        self.responses = []
        self.links = {1: (mtu, True, False, True)}

    def streaming(self):
        return self.stream

    def samples_per_packet(self):
        return self.spp

    def mtu(self):
        return self._mtu

    def send_posture(self, size):
        if self.fail_next:
            self.fail_next -= 1
            return 0
        self.sent.append(bytes(self.posture_buf[:size]))
        return 1

    def send_event(self, code, seq, boot_id, t_ms, a=0, b=0, c=0):
        if self.accept_events <= 0:
            return False
        self.accept_events -= 1
        self.events.append((code, seq, boot_id, t_ms, a, b, c))
        return True

    def respond(self, conn, op, status, a=0, b=0):
        self.responses.append((conn, op, status, a, b))
        return True

    def link_info(self, conn):
        return self.links.get(conn)


def header(p):
    vt, n, seq, t, boot, period = struct.unpack_from("<BBIIBH", p, 0)
    return vt, n, seq, t, boot, period


def test_outbox():
    box = Outbox(capacity=4)
    for i in range(6):
        box.put(proto.EV_HEADACHE_MARKER, 1000 + i)
    eq((box.pending(), box.dropped, box.next_seq), (4, 2, 6), "outbox drops the oldest")
    link = FakeLink()
    link.stream = False
    eq(box.flush(link, 9), 0, "nothing goes out without an encrypted link")
    link.stream = True
    eq(box.flush(link, 9), 2, "two a flush")
    eq([e[1] for e in link.events], [2, 3], "event_seq kept from the moment of the event")
    eq(link.events[0][2:4], (9, 1002), "boot id and the event's own time")
    link.accept_events = 1
    eq(box.flush(link, 9), 1, "a full BLE queue stops the flush")
    eq(box.pending(), 1, "the refused event waits")
    box2 = Outbox()
    box2.next_seq = 0xFFFF
    eq((box2.put(3, 0), box2.put(3, 0)), (0xFFFF, 0), "event_seq wraps at 2**16")


def test_live():
    link = FakeLink(spp=3)
    d = Delivery()
    live = Live(link, d, 7, latency_ms=250)
    for i in range(7):
        live.add(i, 1000 + 100 * i, 100, 10 * i, -i, 0, proto.SF_CALIBRATED)
    eq(len(link.sent), 2, "two full packets of three")
    eq(header(link.sent[0]), (0x11, 3, 0, 1000, 7, 100), "first packet header")
    eq(len(link.sent[1]), 13 + 21, "packet length 13 + 7n")
    eq(struct.unpack_from("<hhhB", link.sent[1], 13), (30, -3, 0, 1), "sample 3 of the stream")
    eq((live.due(1600), live.due(1850)), (False, True), "latency bound from the oldest waiting")
    live.add(7, 1700, 100, 0, 0, 0, 0)
    live.add(8, 1800, 50, 0, 0, 0, 0)  # the period changes: the packet breaks
    eq(header(link.sent[2])[1:], (2, 6, 1600, 7, 100), "a period change ends a packet")
    live.add(10, 1850, 50, 0, 0, 0, 0)  # seq jumps
    eq(header(link.sent[3])[1:3], (1, 8), "a seq gap ends a packet")
    link.fail_next = 1
    live.flush()
    eq((live.failed, d.undelivered_count(), d.first_undelivered()), (1, 1, 10),
       "a packet that reached nobody is undelivered")
    link.stream = False
    live.add(11, 1900, 50, 0, 0, 0, 0)
    live.add(12, 1950, 50, 0, 0, 0, 0)
    eq(d.undelivered_count(), 3, "without an encrypted link samples are undelivered at once")
    eq(d.n, 1, "and extend one range")


# ------------------------------------------------------------------------------ control
class FakeApp:
    def __init__(self, root):
        self.link = FakeLink(mtu=23)
        self.delivery = Delivery()
        self.ring = RawRing(capacity=200)
        self.flog = FlashLog(root + "/log", segments=3, per_segment=20)
        self.calls = []

    def calibrate(self, source):
        self.calls.append(("cal", source))
        return False

    def set_time(self, ms):
        self.calls.append(("time", ms))
        return (proto.ST_SUCCESS, 4, 1234)

    def set_config(self, entries):
        self.calls.append(("config", entries))
        return proto.ST_SUCCESS

    def refresh_status(self):
        self.calls.append(("status",))


def backfill_seqs(sent):
    seqs = []
    for p in sent:
        vt, n, seq = header(p)[:3]
        check(vt == 0x12, "backfill packets are type 2")
        for k in range(n):
            seqs.append((seq + k) & M)
    return seqs


def test_control(root):
    rmtree(root + "/log")
    app = FakeApp(root)
    c = Control(app)
    for i in range(150):
        app.ring.append(100 * i, 4, 100, i, 0, 0, 1)
    eq(c.on_request(1, proto.OP_REQUEST_RAW, (10, 49)), None, "REQUEST_RAW answers later")
    eq(c.on_request(1, proto.OP_GET_STATUS, ()), proto.ST_BUSY, "BUSY while it runs")
    eq(c.on_request(1, proto.OP_SET_TIME, (5,)), proto.ST_BUSY, "even SET_TIME")
    app.link.fail_next = 3
    for _ in range(100):
        c.step()
        if not c.running():
            break
    eq(backfill_seqs(app.link.sent), list(range(10, 50)), "exactly the requested seqs, in order,"
       " none skipped by the refused sends")
    eq(app.link.responses, [(1, proto.OP_REQUEST_RAW, proto.ST_SUCCESS, 40, 0)],
       "the response comes last, with samples_sent and the oldest seq")
    eq(app.delivery.undelivered_count(), 0, "backfilled samples count as delivered")
    # ABORT: the procedure answers first
    app.link.sent = []
    app.link.responses = []
    c.on_request(1, proto.OP_REQUEST_RAW, (0, 149))
    c.step()
    eq(c.on_request(1, proto.OP_ABORT, ()), proto.ST_SUCCESS, "ABORT succeeds")
    eq(app.link.responses, [(1, proto.OP_REQUEST_RAW, proto.ST_SUCCESS, 2, 0)],
       "the aborted procedure answers with what it really sent")
    eq(c.on_request(1, proto.OP_ABORT, ()), proto.ST_SUCCESS, "ABORT with nothing running")
    eq(c.on_request(1, proto.OP_REQUEST_RAW, (500, 600)), proto.ST_NO_RECORDS, "NO_RECORDS")
    # the link goes away mid-procedure
    app.link.responses = []
    c.on_request(1, proto.OP_REQUEST_RAW, (0, 149))
    c.step()
    app.link.links = {}
    c.step()
    eq((c.running(), c.orphaned, app.link.responses), (False, 1, []),
       "a vanished link drops the procedure unanswered")
    app.link.links = {1: (23, True, False, True)}
    # REQUEST_SUMMARY from a real flash log
    for m in range(25):
        app.flog.append(60 * m, 4, 60, 100 * m, 200 * m, m % 3, 0, 0)
    app.link.sent = []
    eq(c.on_request(1, proto.OP_REQUEST_SUMMARY, (3,)), None, "REQUEST_SUMMARY answers later")
    for _ in range(100):
        c.step()
        if not c.running():
            break
    idx = []
    for p in app.link.sent:
        n = p[1]
        first = struct.unpack_from("<I", p, 2)[0]
        check(p[0] == 0x13, "summary packets are type 3")
        for k in range(n):
            idx.append(first + k)
    eq(idx, list(range(3, 25)), "records from the requested index to the newest")
    eq(app.link.responses[-1], (1, proto.OP_REQUEST_SUMMARY, proto.ST_SUCCESS, 22, 25),
       "records_sent and next_record")
    eq(c.on_request(1, proto.OP_REQUEST_SUMMARY, (25,)), proto.ST_NO_RECORDS,
       "nothing from next_record on")
    eq(c.on_request(1, proto.OP_CALIBRATE, ()), proto.ST_REFUSED, "a refused calibration")
    eq(c.on_request(1, proto.OP_SET_TIME, (77,)), (proto.ST_SUCCESS, 4, 1234), "SET_TIME data")
    eq(c.on_request(1, proto.OP_GET_STATUS, ()), proto.ST_SUCCESS, "GET_STATUS")
    eq(app.calls[-1], ("status",), "GET_STATUS refreshes the status value")
    app.flog.close()


# ------------------------------------------------------------------------------ sampler
class Rig:
    """A simulated IMU on its own bus and clock, a Sampler on it, and the samples it emitted."""

    def __init__(self, bus_id, chip="mpu6050", rate_ppm=0, period_ms=100, source=None):
        self.clock = machine.SimClock()  # the MCU's clock
        self.chip_clock = machine.SimClock()  # the IMU's oscillator
        self.rate_ppm = rate_ppm
        src = source or imu_trace.ConstantSource(accel=(0, 0, 16384))
        if chip == "lsm6dsox":
            self.dev = imu_regs.Lsm6dsoxSim(src, clock=self.chip_clock)
            self.addr = 0x6A
        else:
            self.dev = imu_regs.Mpu6050Sim(src, clock=self.chip_clock)
            self.addr = 0x68
        self.bus = machine.sim_bus(bus_id)
        self.bus.attach(self.addr, self.dev)
        self.ts = array("i")  # t_ms of every emitted sample
        self.fl = bytearray()  # its flags, bit 7 set for a filler
        self.s = Sampler(machine.I2C(bus_id), self.sink, period_ms=period_ms,
                         sleep_ms=self.sleep_ms, log=lambda m: None)
        check(self.s.open(), "the sampler finds the " + chip)

    def sleep_ms(self, ms):
        self.advance(ms * 1000)

    def advance(self, us):
        self.clock.advance_us(us)
        self.chip_clock.advance_us(us + us * self.rate_ppm // 1000000)

    def now(self):
        return self.clock.us // 1000

    def sink(self, t, fl, lat, rot, flags, filler):
        self.ts.append(t)
        self.fl.append(flags | (0x80 if filler else 0))

    def count(self):
        return len(self.ts)

    def fillers(self, first=0):
        return [i for i in range(first, len(self.fl)) if self.fl[i] & 0x80]

    def run(self, ms, poll_ms=50):
        for _ in range(ms // poll_ms):
            self.advance(poll_ms * 1000)
            self.s.poll(self.now())

    def steps(self, first=0):
        ts = self.ts
        if first < 0:
            first = 0
        return set(ts[i + 1] - ts[i] for i in range(first, len(ts) - 1))


def test_sampler():
    r = Rig(21)
    r.run(60000)
    n = r.count()
    check(598 <= n <= 604, f"60 s (and the boot) at 10 Hz: {n} samples")
    eq(r.steps(), {100}, "t_ms steps by exactly the period")
    lag = r.now() - r.ts[-1]
    check(0 <= lag <= 150, f"the grid keeps up with the clock (lag {lag} ms)")
    eq(r.s.fillers + r.s.losses + r.s.jumps, 0, "nothing lost in normal running")
    print("grid: samples", n, "self-test", r.s.drv.status.self_test)

    # A FIFO overflow: no poll for 2 s (the MPU-6050 FIFO holds 0.85 s).
    first = r.count()
    r.advance(2000000)
    r.run(3000)
    eq(r.steps(first - 1), {100}, "t_ms stays contiguous across the overflow")
    k = r.fillers(first)
    check(17 <= len(k) <= 22, f"the lost 2 s became no-value samples ({len(k)})")
    check(r.s.losses >= 1 and r.s.drv.status.overflows >= 1, "the driver reported the overflow")
    check(k and k == list(range(k[0], k[0] + len(k))), "the fillers are one contiguous run")
    check(k and k[0] == first, "the fillers come first, where the data is missing")
    lag = r.now() - r.ts[-1]
    check(0 <= lag <= 150, f"back in step with the clock (lag {lag} ms)")
    fill = len(k)
    print("overflow: fillers", fill)

    # A 15 s outage: the driver gives up, recover() brings it back, the grid skips ahead.
    first = r.count()
    r.bus.unplug(r.addr)
    r.run(15000)
    eq(r.s.state_name(), "failed", "an unplugged IMU ends FAILED")
    r.bus.replug(r.addr)
    r.s.recover()
    r.run(3000)
    eq(r.s.state_name(), "ok", "recover() brings it back")
    big = [d for d in r.steps(first - 1) if d != 100]
    eq(len(big), 1, "one jump in t_ms")
    check(big and big[0] > 10000 and big[0] % 100 == 0, f"a jump of whole periods: {big}")
    eq((r.s.outages, r.s.fillers), (1, fill), "an outage is skipped, not filled")

    # Period change and low power.
    first = r.count()
    r.s.set_period(50)
    r.run(5000)
    eq(r.steps(first), {50}, "a new period from the next sample")
    first = r.count()
    r.s.set_low_power(True)
    r.run(10000)
    eq(r.s.odr_hz(), 25.0, "low power runs the MPU at 25 Hz")
    eq(r.steps(first - 1), {50}, "the grid goes on at the stream period")
    n = r.count() - first
    check(195 <= n <= 201, f"10 s at 20 Hz from a 25 Hz IMU: {n}")
    eq(r.s.fillers, fill, "a planned rate change loses nothing")
    r.s.set_low_power(False)
    first = r.count()
    r.run(2000)
    eq(r.steps(first - 1), {50}, "and back to 100 Hz without a gap")

    # An IMU oscillator 1 % fast: the grid follows the MCU clock, not the sample count.
    d = Rig(22, rate_ppm=10000)
    d.run(300000)
    n = d.count()
    check(2995 <= n <= 3006, f"5 min with a 1 % fast IMU: {n} samples (not ~3030)")
    eq(d.steps(), {100}, "still exact steps")
    lag = d.now() - d.ts[-1]
    check(-20 <= lag <= 150, f"no drift against the clock (lag {lag} ms)")
    eq(d.s.jumps, 0, "drift is slewed, never jumped")
    print("drift: samples", n)

    # An LSM6DSOX at 104 Hz resampled onto the 100 ms grid.
    q = Rig(23, chip="lsm6dsox")
    q.run(60000)
    n = q.count()
    eq(q.s.odr_hz(), 104, "the LSM6DSOX runs at 104 Hz")
    check(598 <= n <= 604, f"60 s from a 104 Hz IMU: {n} samples")
    eq(q.steps(), {100}, "exact 100 ms steps from 104 Hz")
    lag = q.now() - q.ts[-1]
    check(0 <= lag <= 150, f"LSM grid lag {lag} ms")
    print("lsm: samples", n)


def main():
    root = workdir()
    test_delivery()
    test_outbox()
    test_live()
    test_control(root)
    test_sampler()
    done("app_units")


main()
