"""IMU drivers: the common interface, I2C error policy, axis remap and WHO_AM_I detection.

Every chip driver subclasses Imu and offers:

    init()                  reset the chip and check its identity            -> bool
    self_test()             the chip's own self-test, result in status       -> bool
    configure(odr_hz, accel_range_g, gyro_range_dps, dlpf_hz)                -> bool
    start(...)              init + self_test + configure, the boot sequence  -> bool
    read_fifo(buf)          drain the FIFO into buf (array('h'), 6 values a sample:
                            gx, gy, gz, ax, ay, az in the SENSOR frame)      -> samples written
    to_si(buf, i, out)      sample i of buf as rad/s and m/s^2 into out (array('f'), 6)
    accel_lsb_per_g, gyro_lsb_per_dps, odr_hz, dlpf_hz, accel_range_g, gyro_range_dps
    status                  an ImuStatus the main loop can inspect (state, error counters)

read_fifo never raises on bus trouble and never allocates per sample.  A failing transaction is
retried (`retries` times, short growing pauses); when that is not enough the driver enters
RECOVERING: the next polls are skipped with exponential back-off, then the chip is re-initialised
and re-configured.  After `max_recoveries` failed attempts it stops touching the bus (FAILED) until
the caller asks for recover().  A chip that silently lost its configuration (power glitch) is
caught by a read-back after `stall_polls` empty polls.
"""

import errno
import math

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


try:
    from time import sleep_ms as _default_sleep_ms
except ImportError:  # CPython
    import time

    def _default_sleep_ms(ms):
        time.sleep(ms / 1000)


# Driver states (status.state)
STATE_NEW = const(0)  # not initialised yet
STATE_OK = const(1)
STATE_RECOVERING = const(2)  # bus or chip trouble; re-initialising with back-off
STATE_FAILED = const(3)  # gave up; recover() tries again
STATE_NAMES = ("new", "ok", "recovering", "failed")

# Driver error codes (status.last_error; positive values are OSError errno values)
ERR_WHO_AM_I = const(-1)  # the chip answered with an identity this driver does not drive
ERR_RESET = const(-2)  # the reset bit never cleared
ERR_CONFIG_LOST = const(-3)  # registers no longer hold our configuration (chip power-cycled)
ERR_FIFO = const(-4)  # FIFO overflow or a failed FIFO read; the FIFO was reset
ERR_NOT_READY = const(-5)  # called before init()/configure()

# Self-test results (status.self_test)
SELFTEST_NOT_RUN = const(0)
SELFTEST_PASS = const(1)
SELFTEST_FAIL = const(2)
SELFTEST_ERROR = const(3)  # the bus failed during the test

OP_READ = const(1)
OP_WRITE = const(2)

STANDARD_GRAVITY = 9.80665
RAD_PER_DEG = math.pi / 180

# Probe plan for detection: (address, WHO_AM_I register)
PROBES = ((0x68, 0x75), (0x69, 0x75), (0x6A, 0x0F), (0x6B, 0x0F))
# (WHO_AM_I register, value, name, driver module or None when recognised but not supported)
CHIPS = (
    (0x75, 0x68, "MPU-6050", "imu_mpu6050"),
    (0x75, 0x70, "MPU-6500", "imu_mpu6050"),
    (0x75, 0x47, "ICM-42688-P", None),
    (0x0F, 0x6C, "LSM6DSOX", "imu_lsm6dsox"),
    (0x0F, 0x6B, "ISM330DHCX", "imu_lsm6dsox"),
    (0x0F, 0x69, "LSM6DS3", None),
    (0x0F, 0x6A, "LSM6DSL", None),
)


class BusError(Exception):
    """A transaction still failed after the retries; handled inside the driver."""


class ImuStatus:
    """Health of one IMU, updated in place: the main loop reads it, nothing here allocates."""

    def __init__(self):
        self.state = STATE_NEW
        self.last_error = 0  # errno of the last failed transaction, or an ERR_* code
        self.last_reg = -1  # register of the last failed transaction
        self.last_op = 0  # OP_READ / OP_WRITE
        self.self_test = SELFTEST_NOT_RUN
        self.self_test_mask = 0  # failing axes: bit0..5 = gx, gy, gz, ax, ay, az (chip axes)
        self.clear()

    def clear(self):
        """Zero the counters (not the state)."""
        self.errors = 0  # failed transactions, retried or not
        self.retries = 0  # retry attempts made
        self.recovered = 0  # transactions that succeeded after a retry
        self.bus_failures = 0  # operations that still failed after all retries
        self.reinits = 0  # successful re-initialisations
        self.recover_attempts = 0  # attempts in the current recovery episode
        self.backoff = 0  # polls still to skip before the next attempt
        self.overflows = 0  # FIFO overflows seen
        self.fifo_resets = 0
        self.lost = 0  # samples known to be lost (a lower bound)
        self.discarded = 0  # FIFO words dropped: unpaired, bad parity or unknown tag
        self.parity_errors = 0
        self.config_lost = 0
        self.wrong_id = 0
        self.samples = 0  # samples delivered by read_fifo

    def state_name(self):
        return STATE_NAMES[self.state]


def parse_remap(remap):
    """(sx, sy, sz), each +-1..+-3: sensor axis k is sign(s) * chip axis |s|.  Returns (index,
    sign) triples; ValueError unless it is a signed permutation."""
    if len(remap) != 3:
        raise ValueError("remap needs three entries")
    idx = []
    sign = []
    for s in remap:
        a = abs(int(s))
        if a < 1 or a > 3 or (a - 1) in idx:
            raise ValueError("remap must be a signed permutation of 1, 2, 3")
        idx.append(a - 1)
        sign.append(1 if s > 0 else -1)
    return tuple(idx), tuple(sign)


def oserror_code(exc):
    """The errno of an OSError as ports raise it (OSError(code): one argument, which CPython
    does not copy into .errno); EIO when there is none."""
    code = exc.args[0] if exc.args else 0
    if not isinstance(code, int) or code <= 0:
        return errno.EIO
    return code


def _signed(v, s):
    # Apply a remap sign without leaving int16 (-(-32768) would).
    if s < 0:
        v = -v
        if v > 32767:
            v = 32767
    return v


class Imu:
    """Base class: the bus policy, recovery state machine, remap and unit conversion."""

    NAME = "IMU"
    WHO_REG = 0
    WHO_OK = ()
    BURST_SAMPLES = 32

    def __init__(self, i2c, addr, remap=(1, 2, 3), sleep_ms=None, retries=2, max_recoveries=6,
                 max_backoff=64, stall_polls=200):
        self.i2c = i2c
        self.addr = addr
        self.status = ImuStatus()
        self.retries = retries
        self.max_recoveries = max_recoveries
        self.max_backoff = max_backoff
        self.stall_polls = stall_polls
        self._sleep = sleep_ms if sleep_ms is not None else _default_sleep_ms
        self.name = self.NAME
        self.who_am_i = None
        self._b1 = bytearray(1)
        self._mv1 = memoryview(self._b1)
        self._b2 = bytearray(2)
        self._mv2 = memoryview(self._b2)
        self._cfg = None  # (odr_hz, accel_range_g, gyro_range_dps, dlpf_hz) once configured
        self._backoff_next = 1
        self._empty_polls = 0
        self.odr_hz = 0
        self.dlpf_hz = 0
        self.accel_range_g = 0
        self.gyro_range_dps = 0
        self.accel_lsb_per_g = 1.0
        self.gyro_lsb_per_dps = 1.0
        self._gs = 0.0
        self._as = 0.0
        self.self_test_values = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        self.set_remap(remap)

    # ------------------------------------------------------------------ configuration helpers
    def set_remap(self, remap):
        idx, sign = parse_remap(remap)
        self.remap = tuple(remap)
        self._ri = idx
        self._rs = sign

    def _set_scales(self, accel_lsb_per_g, gyro_lsb_per_dps):
        self.accel_lsb_per_g = accel_lsb_per_g
        self.gyro_lsb_per_dps = gyro_lsb_per_dps
        self._as = STANDARD_GRAVITY / accel_lsb_per_g
        self._gs = RAD_PER_DEG / gyro_lsb_per_dps

    def info(self):
        return {
            "chip": self.name, "addr": self.addr, "who_am_i": self.who_am_i,
            "odr_hz": self.odr_hz, "accel_range_g": self.accel_range_g,
            "gyro_range_dps": self.gyro_range_dps, "dlpf_hz": self.dlpf_hz,
            "remap": self.remap, "state": self.status.state_name(),
        }

    # --------------------------------------------------------------------------- bus access
    def _note(self, exc, reg, op):
        st = self.status
        st.errors += 1
        st.last_error = oserror_code(exc)
        st.last_reg = reg
        st.last_op = op

    def _xfer(self, reg, buf, op):
        # One retry policy for reads and writes; the branch (not a passed-in bound method)
        # keeps the call allocation-free on MicroPython.
        n = 0
        while True:
            try:
                if op == OP_READ:
                    self.i2c.readfrom_mem_into(self.addr, reg, buf)
                else:
                    self.i2c.writeto_mem(self.addr, reg, buf)
                if n:
                    self.status.recovered += 1
                return
            except OSError as e:
                self._note(e, reg, op)
                if n >= self.retries:
                    self.status.bus_failures += 1
                    raise BusError() from None
                n += 1
                self.status.retries += 1
                self._sleep(n)

    def _rd(self, reg, mv):
        self._xfer(reg, mv, OP_READ)

    def _wr(self, reg, buf):
        self._xfer(reg, buf, OP_WRITE)

    def _rd8(self, reg):
        self._rd(reg, self._mv1)
        return self._b1[0]

    def _wr8(self, reg, val):
        self._b1[0] = val
        self._wr(reg, self._mv1)

    def _burst(self, reg, mv):
        """One read attempt, no retry: for FIFO data, where a failed transfer may already have
        popped bytes and a blind retry would read from the wrong place."""
        try:
            self.i2c.readfrom_mem_into(self.addr, reg, mv)
            return True
        except OSError as e:
            self._note(e, reg, OP_READ)
            return False

    # ----------------------------------------------------------------------------- public API
    def init(self):
        """Reset the chip and check its identity.  On failure the driver is RECOVERING (read_fifo
        keeps trying with back-off) and status says why."""
        try:
            ok = self._init_chip()
        except BusError:
            ok = False
        if ok:
            self.status.state = STATE_OK
            self._empty_polls = 0
        else:
            self._enter_recovery()
        return ok

    def configure(self, odr_hz=100, accel_range_g=4, gyro_range_dps=500, dlpf_hz=42):
        """Set output rate (the chip's nearest rate not below odr_hz), ranges and low-pass, and
        start the FIFO.  ValueError for settings the chip cannot do."""
        self._plan(odr_hz, accel_range_g, gyro_range_dps, dlpf_hz)
        self._cfg = (odr_hz, accel_range_g, gyro_range_dps, dlpf_hz)
        if self.status.state != STATE_OK:
            # Kept: recovery applies it once the chip is back.
            if self.status.state == STATE_NEW:
                self.status.last_error = ERR_NOT_READY
            return False
        try:
            self._apply_config()
        except BusError:
            self._enter_recovery()
            return False
        self._empty_polls = 0
        return True

    def self_test(self):
        """Run the chip's self-test; the configuration is restored afterwards."""
        st = self.status
        if st.state != STATE_OK:
            st.self_test = SELFTEST_ERROR
            if st.state == STATE_NEW:
                st.last_error = ERR_NOT_READY
            return False
        try:
            mask = self._self_test()
            st.self_test_mask = mask
            st.self_test = SELFTEST_PASS if mask == 0 else SELFTEST_FAIL
        except BusError:
            st.self_test = SELFTEST_ERROR
            st.self_test_mask = 0x3F
        try:
            if self._cfg is not None:
                self._apply_config()
        except BusError:
            self._enter_recovery()
        return st.self_test == SELFTEST_PASS

    def start(self, odr_hz=100, accel_range_g=4, gyro_range_dps=500, dlpf_hz=42):
        """The boot sequence: init, self-test, configure.  True when the chip is streaming; the
        self-test verdict is in status.self_test (a failed self-test does not stop streaming)."""
        self._plan(odr_hz, accel_range_g, gyro_range_dps, dlpf_hz)
        self._cfg = (odr_hz, accel_range_g, gyro_range_dps, dlpf_hz)
        if not self.init():
            return False
        self.self_test()
        if self.status.state != STATE_OK:
            return False
        return self.configure(odr_hz, accel_range_g, gyro_range_dps, dlpf_hz)

    def read_fifo(self, buf):
        """Move whole samples from the chip FIFO into buf (array('h'); 6 values a sample, sensor
        frame).  Returns the number of samples written from buf[0]; 0 when there is nothing,
        or while the driver is recovering or failed."""
        st = self.status
        if st.state != STATE_OK:
            if st.state != STATE_RECOVERING:
                return 0
            if st.backoff > 0:
                st.backoff -= 1
                return 0
            if not self._recover():
                return 0
        room = len(buf) // 6
        if room == 0 or self._cfg is None:
            return 0
        try:
            n = self._fifo_read(buf, room)
            if n:
                self._empty_polls = 0
            else:
                self._empty_polls += 1
                if self._empty_polls >= self.stall_polls:
                    self._empty_polls = 0
                    if not self._config_intact():
                        st.config_lost += 1
                        st.last_error = ERR_CONFIG_LOST
                        self._enter_recovery()
        except BusError:
            self._enter_recovery()
            return 0
        st.samples += n
        return n

    def recover(self):
        """Try to bring a FAILED (or recovering) driver back now; True when it is streaming."""
        st = self.status
        st.recover_attempts = 0
        self._backoff_next = 1
        st.backoff = 0
        st.state = STATE_RECOVERING
        return self._recover()

    def to_si(self, buf, i, out):
        """Sample i of buf into out[0:6]: gyro rad/s then accel m/s^2 (sensor frame)."""
        b = 6 * i
        gs = self._gs
        a = self._as
        out[0] = buf[b] * gs
        out[1] = buf[b + 1] * gs
        out[2] = buf[b + 2] * gs
        out[3] = buf[b + 3] * a
        out[4] = buf[b + 4] * a
        out[5] = buf[b + 5] * a

    # -------------------------------------------------------------------- recovery machinery
    def _enter_recovery(self):
        st = self.status
        if st.state == STATE_FAILED:
            return
        if st.state != STATE_RECOVERING:
            st.recover_attempts = 0
            self._backoff_next = 1
        st.state = STATE_RECOVERING
        st.backoff = self._backoff_next

    def _recover(self):
        st = self.status
        st.recover_attempts += 1
        try:
            ok = self._init_chip()
            if ok and self._cfg is not None:
                self._apply_config()
        except BusError:
            ok = False
        if ok:
            st.state = STATE_OK
            st.reinits += 1
            st.recover_attempts = 0
            st.backoff = 0
            self._backoff_next = 1
            self._empty_polls = 0
            return True
        if st.recover_attempts >= self.max_recoveries:
            st.state = STATE_FAILED
            st.backoff = 0
            return False
        self._backoff_next = min(self._backoff_next * 2, self.max_backoff)
        st.backoff = self._backoff_next
        return False

    def _check_who(self):
        who = self._rd8(self.WHO_REG)
        names = self.WHO_OK
        for i in range(0, len(names), 2):
            if names[i] == who and (self.who_am_i is None or self.who_am_i == who):
                self.who_am_i = who
                self.name = names[i + 1]
                return True
        self.status.wrong_id += 1
        self.status.last_error = ERR_WHO_AM_I
        return False

    # --------------------------------------------------------------- for the chip subclasses
    def _init_chip(self):
        raise NotImplementedError

    def _plan(self, odr_hz, accel_range_g, gyro_range_dps, dlpf_hz):
        raise NotImplementedError

    def _apply_config(self):
        raise NotImplementedError

    def _self_test(self):
        raise NotImplementedError

    def _fifo_read(self, buf, room):
        raise NotImplementedError

    def _config_intact(self):
        raise NotImplementedError


# ------------------------------------------------------------------------------- detection


def identify(who_reg, who):
    """(name, driver module or None) for a WHO_AM_I answer, or None when unknown."""
    for reg, val, name, mod in CHIPS:
        if reg == who_reg and val == who:
            return name, mod
    return None


def detect(i2c, probes=PROBES):
    """Ask every known address for its WHO_AM_I.  Returns a list of (addr, who_am_i, name,
    supported) for every answer that names a known chip."""
    found = []
    buf = bytearray(1)
    for addr, reg in probes:
        who = None
        for _ in range(2):
            try:
                i2c.readfrom_mem_into(addr, reg, buf)
                who = buf[0]
                break
            except OSError as e:
                if oserror_code(e) == errno.ENODEV:
                    break  # nobody at this address: no point asking again
        if who is None:
            continue
        hit = identify(reg, who)
        if hit is not None:
            found.append((addr, who, hit[0], hit[1] is not None))
    return found


def driver_for(module):
    if module == "imu_mpu6050":
        from .imu_mpu6050 import Mpu6050

        return Mpu6050
    if module == "imu_lsm6dsox":
        from .imu_lsm6dsox import Lsm6dsox

        return Lsm6dsox
    return None


def open_imu(i2c, probes=PROBES, **kwargs):
    """The driver for the first supported IMU found on the bus (not yet initialised), or None.
    kwargs go to the driver (remap, sleep_ms, retries, ...)."""
    for addr, _who, name, supported in detect(i2c, probes):
        if not supported:
            continue
        for _reg, _val, chip, mod in CHIPS:
            if chip == name:
                cls = driver_for(mod)
                if cls is not None:
                    return cls(i2c, addr, **kwargs)
    return None
