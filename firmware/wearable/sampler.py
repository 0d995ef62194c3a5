"""IMU -> orientation -> posture -> wear, resampled onto the stream's time grid.

The sampler owns the IMU driver and the per-rate objects built on it (orient.Orient,
posture.Posture, wear.Wear). poll(now_t) drains the FIFO, feeds the filter and the wear detector,
and calls sink(t_ms, flexion, lateral, rotation, flags, filler) once per output sample.

Output samples sit on a grid: t_ms = t0 + k * period_ms, exactly, so the raw ring keeps one run
and live packets stay whole. The IMU decides which grid points exist: a phase accumulator counts
IMU samples (each is 10000 units; one ms is odr_dhz units, odr_dhz = ODR in tenths of a Hz, so
104 Hz and 100 Hz both work) and a grid point is emitted with the first IMU sample at or after it.
The grid follows the device clock (t_ms from time.ticks_ms): after each poll the phase is nudged
by 1/16 of its distance from the clock (an IMU oscillator 1 % off then lags by ~10 ms, not by
36 s an hour). When the driver reports lost samples (FIFO overflow, a failed burst, a
re-initialisation) the next samples are placed by the clock instead; grid points left without
IMU data within two IMU periods become *fillers*: samples with no angle (NO_VALUE), reported to
the sink with filler=True so the app can name them in a BUFFER_OVERFLOW event. An outage longer
than FILL_MAX_MS is not filled: the grid skips ahead on its lattice and t_ms jumps (a gap for the
strain detector and a new run in the ring).

Nothing in poll() allocates per sample: the FIFO buffer and one memoryview per offset into it are
made once (the filter takes a view to start at any sample of a batch).
"""

from array import array

from wearable import imu, proto
from wearable.orient import Orient
from wearable.posture import NO_VALUE, Posture
from wearable.wear import Wear

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_M = const(0xFFFFFFFF)
_HALF = const(0x80000000)
_UNIT = const(10000)  # one IMU sample in phase units (ms * odr_dhz)
BURST = const(32)  # samples per FIFO read
_MAX_READS = const(4)  # reads per poll: 128 samples, 1.28 s at 100 Hz
FILL_MAX_MS = const(10000)  # longer outages skip ahead instead of filling
JUMP_MS = const(1000)  # an unexplained clock error beyond this is corrected at once
FULL_HZ = const(100)
LOW_HZ = const(25)
ACCEL_G = const(4)
GYRO_DPS = const(500)
_KEEP = const(0x03)  # CALIBRATED | NOT_WORN carried into fillers

# IMU states reported by state_name(); "none" = nothing found on the bus.
STATE_NAMES = ("new", "ok", "recovering", "failed")


def sdiff(a, b):
    return ((b - a + _HALF) & _M) - _HALF


class Sampler:
    def __init__(self, i2c, sink, imu_choice="auto", remap=(1, 2, 3), period_ms=100,
                 full_hz=FULL_HZ, low_hz=LOW_HZ, sleep_ms=None, log=None):
        self.i2c = i2c
        self.sink = sink
        self.imu_choice = imu_choice
        self.remap = remap
        self.full_hz = full_hz
        self.low_hz = low_hz
        self.sleep_ms = sleep_ms
        self.log = log or print
        self.drv = None
        self.orient = None
        self.posture = None
        self.wear = None
        self.low_power = False
        self.buf = array("h", [0] * (6 * BURST))
        mv = memoryview(self.buf)
        self._views = [mv[6 * k:] for k in range(BURST)]
        self.period = period_ms
        self._dhz = 0
        self._thr = 0
        self._have_grid = False
        self.last_t = 0  # t_ms of the latest output sample
        self._acc = 0  # phase of the latest IMU sample past last_t, in units
        self._place = False  # place the next samples by the clock (after a loss)
        self._no_fill = False  # ... and do not call the gap lost (a planned reconfiguration)
        self._last_flags = proto.SF_ROTATION_UNRELIABLE
        self._ovf = 0  # driver counters at the last read: overflows, re-inits, FIFO resets
        self._rei = 0
        self._res = 0
        # counters
        self.imu_samples = 0
        self.outputs = 0
        self.fillers = 0
        self.outages = 0  # gaps longer than FILL_MAX_MS (skipped, not filled)
        self.jumps = 0  # unexplained clock errors corrected at once
        self.losses = 0  # driver-reported losses handled
        self.detect_tries = 0
        self.recover_calls = 0
        self.reconfigs = 0

    # --- the IMU ---------------------------------------------------------------------------
    def open(self):
        """Find the IMU, run its boot sequence (self-test included) and build the filters.
        False when nothing answers (NO_IMU); the caller retries later."""
        self.detect_tries += 1
        drv = None
        try:
            if self.imu_choice == "auto":
                drv = imu.open_imu(self.i2c, remap=self.remap, sleep_ms=self.sleep_ms)
            else:
                drv = self._open_named()
        except OSError as e:  # detection itself never raises on a bad bus; belt and braces
            self.log("imu: detection failed: %r" % (e,))
        if drv is None:
            return False
        ok = drv.start(odr_hz=self.full_hz, accel_range_g=ACCEL_G, gyro_range_dps=GYRO_DPS,
                       dlpf_hz=42)
        st = drv.status
        self.log("imu: %s at 0x%02x, %s, self-test %s (mask 0x%02x), %s Hz" % (
            drv.name, drv.addr, "streaming" if ok else st.state_name(),
            ("not run", "pass", "FAIL", "bus error")[st.self_test], st.self_test_mask,
            drv.odr_hz))
        self.drv = drv
        self.low_power = False
        self._build(True)
        self._take_counters()
        self._place = True  # the first samples start the grid (or continue it after a retry)
        return True

    def _open_named(self):
        mod = "imu_mpu6050" if self.imu_choice == "mpu6050" else "imu_lsm6dsox"
        for addr, _who, name, supported in imu.detect(self.i2c):
            if not supported:
                continue
            for _reg, _val, chip, m in imu.CHIPS:
                if chip == name and m == mod:
                    cls = imu.driver_for(m)
                    return cls(self.i2c, addr, remap=self.remap, sleep_ms=self.sleep_ms)
        return None

    def _build(self, worn):
        drv = self.drv
        odr = drv.odr_hz
        self._dhz = int(odr * 10 + 0.5)
        self._thr = self.period * self._dhz
        old = self.posture
        self.orient = Orient(odr, drv.gyro_lsb_per_dps, drv.accel_lsb_per_g)
        self.posture = Posture(self.orient)
        if old is not None and old.calibrated:
            nf = old.nf
            self.posture.set_neutral(nf[6], nf[7], nf[8])  # the neutral survives a rate change
        self.wear = Wear(rate_hz=odr, gyro_lsb_per_dps=drv.gyro_lsb_per_dps,
                         accel_lsb_per_g=drv.accel_lsb_per_g, worn=worn)

    def present(self):
        return self.drv is not None

    def ok(self):
        return self.drv is not None and self.drv.status.state == imu.STATE_OK

    def state_name(self):
        if self.drv is None:
            return "none"
        return STATE_NAMES[self.drv.status.state]

    def odr_hz(self):
        return self.drv.odr_hz if self.drv is not None else 0

    def worn(self):
        """The wear detector's verdict; True while there is no IMU to tell."""
        return self.wear is None or self.wear.worn

    def recover(self):
        """Ask a FAILED driver to try again (from a slow timer)."""
        if self.drv is not None and self.drv.status.state == imu.STATE_FAILED:
            self.recover_calls += 1
            self.drv.recover()
            self._place = True

    def set_low_power(self, on):
        """Off the neck: run the IMU at low_hz (and back at full_hz). Rebuilds the filters."""
        if self.drv is None or on == self.low_power:
            return False
        hz = self.low_hz if on else self.full_hz
        dlpf = 10 if on else 42
        try:
            self.drv.configure(hz, ACCEL_G, GYRO_DPS, dlpf)
        except ValueError as e:
            self.log("imu: cannot run at %d Hz: %r" % (hz, e))
            return False
        self.low_power = on
        self.reconfigs += 1
        self._build(not on)
        self._place = True
        self._no_fill = True
        return True

    # --- the grid ----------------------------------------------------------------------------
    def set_period(self, period_ms):
        """New stream period from the next output sample on."""
        self.period = period_ms
        self._thr = period_ms * self._dhz

    def _take_counters(self):
        """Note the driver's loss counters; returns which moved since the last call: bit 0
        overflows or re-inits (samples lost before what was read), bit 1 a FIFO reset alone
        (a failed burst: samples lost after what was read). No tuple: this runs every read."""
        st = self.drv.status
        moved = 0
        if st.overflows != self._ovf or st.reinits != self._rei:
            moved = 1
        elif st.fifo_resets != self._res:
            moved = 2
        self._ovf = st.overflows
        self._rei = st.reinits
        self._res = st.fifo_resets
        return moved

    def poll(self, now_t):
        """Drain the FIFO and emit the grid points it covers; returns IMU samples read."""
        drv = self.drv
        if drv is None:
            return 0
        total = 0
        room = len(self.buf) // 6
        for _ in range(_MAX_READS):
            n = drv.read_fifo(self.buf)
            moved = self._take_counters()
            if n == 0:
                if moved:
                    self._place = True
                    self.losses += 1
                break
            if moved == 1:
                self._place = True
                self.losses += 1
            if self._place:
                self._place_by_clock(n, now_t)
            self.wear.update_batch(self.buf, n)
            self._run(n)
            total += n
            if moved == 2:
                self._place = True  # the samples after these were lost
                self.losses += 1
            if n < room:
                break
        if total and not self._place:
            self._discipline(now_t)
        self.imu_samples += total
        return total

    def _place_by_clock(self, n, now_t):
        """The n samples just read end about now: put them there on the grid."""
        self._place = False
        dhz = self._dhz
        if not self._have_grid:
            # The very first samples: the first of them starts the grid.
            self._have_grid = True
            span = (n * _UNIT - _UNIT // 2) // dhz  # ms from the first sample to now
            self.last_t = (now_t - self.period - span) & _M
            self._acc = self._thr - _UNIT
            return
        want = sdiff(self.last_t, now_t) * dhz - _UNIT // 2 - n * _UNIT
        if want <= self._acc:
            return  # never move backwards: later samples land on later grid points
        if want - self._acc > FILL_MAX_MS * dhz:
            # A long outage: skip whole periods instead of filling them.
            skip = (want + _UNIT - 1) // self._thr
            self.last_t = (self.last_t + skip * self.period) & _M
            want -= skip * self._thr
            self.outages += 1
            self._no_fill = True
        self._acc = want

    def _discipline(self, now_t):
        # Phase error of the latest sample against the clock (it was taken about half an IMU
        # period before now).
        err = sdiff(self.last_t, now_t) * self._dhz - _UNIT // 2 - self._acc
        if err > JUMP_MS * self._dhz:
            self.jumps += 1
            self._acc += err
        else:
            self._acc += err >> 4

    def _run(self, n):
        acc = self._acc
        thr = self._thr
        i = 0  # first sample not yet given to the filter
        k = 0
        orient = self.orient
        views = self._views
        while k < n:
            acc += _UNIT
            k += 1
            while acc >= thr:
                acc -= thr
                t = (self.last_t + self.period) & _M
                self.last_t = t
                if acc >= 2 * _UNIT and not self._no_fill:
                    self._emit_filler(t)
                    continue
                if k > i:
                    orient.update_batch(views[i], k - i)
                    i = k
                self._emit(t)
            if self._no_fill and acc < thr:
                self._no_fill = False
        if n > i:
            orient.update_batch(views[i], n - i)
        self._acc = acc

    def _emit(self, t):
        p = self.posture
        flags = p.update()
        if not self.wear.worn:
            flags |= proto.SF_NOT_WORN
        self._last_flags = flags
        self.outputs += 1
        self.sink(t, p.flexion_cd, p.lateral_cd, p.rotation_cd, flags, False)

    def _emit_filler(self, t):
        self.fillers += 1
        self.outputs += 1
        flags = (self._last_flags & _KEEP) | proto.SF_ROTATION_UNRELIABLE
        self.sink(t, NO_VALUE, NO_VALUE, NO_VALUE, flags, True)
