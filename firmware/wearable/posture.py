"""Posture angles against a calibrated neutral, in integer centidegrees ready for the wire.

Follows the project's axis convention (docs/orientation.md): with the neutral frame N built from
the calibrated up vector u0, and p = the current up vector expressed in N,

    flexion = atan2(-p_x, hypot(p_y, p_z))   positive: head forward (nose down)
    lateral = atan2(p_y, p_z)                positive: toward the right shoulder
    rotation = -integral(w . u) dt           positive: turning right; relative, drifts

update() uses integers only (an integer atan2 and square root below), so it allocates nothing per
call; calibration completion (rare) uses floats.

Calibration: start_calibration() then keep calling update(). The neutral is the mean up vector
over CAL_S of stillness (the estimator's still criteria on every sample). The result, read once
with take_cal_result(), is one of OK, MOVING, NOT_WORN, NO_IMU, TIMEOUT (the codes of the
CALIBRATION event). A refused calibration keeps the previous neutral, if any.
"""

import math
from array import array

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# Calibration results (the CALIBRATION event's result byte).
OK = const(0)
MOVING = const(1)
NOT_WORN = const(2)
NO_IMU = const(3)
TIMEOUT = const(4)
NO_RESULT = const(-1)

# Sample flags (same bits as the wire's SF_* flags).
F_CALIBRATED = const(0x01)
F_NOT_WORN = const(0x02)  # not set here: wear detection belongs to the caller
F_HIGH_MOTION = const(0x04)
F_ROTATION_UNRELIABLE = const(0x10)

NO_VALUE = const(-32768)  # the wire's "no value" angle

CAL_S = 2.0  # stillness needed for a neutral
WORN_MAX_TILT_DEG = 60.0  # a neutral tilted further than this from sensor +z is "not worn"

_YAW_HALF = const(18000 << 14)
_YAW_FULL = const(36000 << 14)
_NCAP = const(1024)  # cap on samples credited per update() (keeps sums small)

# atan(z) on [0, 1] as an odd polynomial, coefficients in quarter-centidegrees (fitted for this
# module; max error ~1e-5 rad before fixed-point rounding).
_A1 = const(22915)
_A3 = const(-7570)
_A5 = const(4129)
_A7 = const(-1952)
_A9 = const(478)


def iatan2(y, x):
    """atan2(y, x) in centidegrees (-18000..18000) for ints with |x|, |y| < 2**16."""
    ax = -x if x < 0 else x
    ay = -y if y < 0 else y
    if ax >= ay:
        if ax == 0:
            return 0
        z = (ay << 14) // ax
    else:
        z = (ax << 14) // ay
    z2 = (z * z + 8192) >> 14
    t = _A7 + ((_A9 * z2 + 8192) >> 14)
    t = _A5 + ((t * z2 + 8192) >> 14)
    t = _A3 + ((t * z2 + 8192) >> 14)
    t = _A1 + ((t * z2 + 8192) >> 14)
    a = (t * z + 32768) >> 16
    if ax < ay:
        a = 9000 - a
    if x < 0:
        a = 18000 - a
    if y < 0:
        a = -a
    return a


def ihypot(a, b):
    """sqrt(a*a + b*b) rounded down (within 1) for ints with |a|, |b| <= 23170."""
    if a < 0:
        a = -a
    if b < 0:
        b = -b
    if a < b:
        a, b = b, a
    if a == 0:
        return 0
    m = a * a + b * b
    r = a + ((3 * b) >> 3)  # within +7 % of the root: two Newton steps suffice
    r = (r + m // r) >> 1
    r = (r + m // r) >> 1
    return r


class Posture:
    """Posture angles from an orient.Orient; call update() after each sample or FIFO batch."""

    def __init__(self, orient, cal_s=CAL_S):
        self.f = orient
        self._cal_n = int(cal_s * orient.rate_hz + 0.5)
        self._worn_q14 = int(math.cos(math.radians(WORN_MAX_TILT_DEG)) * 16384)
        self.nf = array("i", [0] * 9)  # neutral frame rows xN, yN, zN in sensor coords, Q14
        self._h = array("i", [0, 0, 0])
        self._cs = array("i", [0, 0, 0])  # calibration sums of the Q14 up vector
        self._cal_have = 0  # still samples in the current calibration window
        self._cal_elapsed = 0
        self._cal_wait = 0  # samples of motion tolerated before refusing (0: refuse at once)
        self.cal_running = 0
        self._cal_result = NO_RESULT
        self.cal_pitch_cd = NO_VALUE  # neutral relative to gravity, for the CALIBRATION event
        self.cal_roll_cd = NO_VALUE
        self.calibrated = 0
        self._yaw0 = 0
        self.flexion_cd = NO_VALUE
        self.lateral_cd = NO_VALUE
        self.rotation_cd = NO_VALUE
        self.flags = F_ROTATION_UNRELIABLE

    # --- calibration ------------------------------------------------------------------------
    def start_calibration(self, max_wait_s=0.0):
        """Begin capturing a neutral. With max_wait_s == 0 any motion refuses it (MOVING) at once;
        otherwise motion restarts the 2 s window until max_wait_s has passed."""
        f = self.f
        if not f.ready():
            self._finish(NO_IMU)
            return
        self._cal_wait = int(max_wait_s * f.rate_hz + 0.5)
        if self._cal_wait <= 0 and f.still_samples() == 0:
            self._finish(MOVING)
            return
        f.take_moved()
        f.take_nsamp()
        self._restart_window()
        self._cal_elapsed = 0
        self.cal_running = 1

    def abort_calibration(self, reason=TIMEOUT):
        """End a running calibration with `reason` (the caller's NO_IMU or TIMEOUT)."""
        if self.cal_running:
            self._finish(reason)

    def take_cal_result(self):
        """The result of the last finished calibration (once), else NO_RESULT."""
        r = self._cal_result
        self._cal_result = NO_RESULT
        return r

    def set_neutral(self, ux, uy, uz, yaw_q14=None):
        """Adopt a neutral up vector (any scale; e.g. a stored calibration). False if unusable."""
        n = math.sqrt(ux * ux + uy * uy + uz * uz)
        if not n > 0.0:
            return False
        ux /= n
        uy /= n
        uz /= n
        # xN = normalise(ex - (ex . u0) u0); yN = zN x xN
        xx = 1.0 - ux * ux
        xy = -ux * uy
        xz = -ux * uz
        m = math.sqrt(xx * xx + xy * xy + xz * xz)
        if m < 1e-6:
            return False
        xx /= m
        xy /= m
        xz /= m
        yx = uy * xz - uz * xy
        yy = uz * xx - ux * xz
        yz = ux * xy - uy * xx
        nf = self.nf
        vals = (xx, xy, xz, yx, yy, yz, ux, uy, uz)
        for i in range(9):
            nf[i] = int(math.floor(vals[i] * 16384.0 + 0.5))
        self.cal_pitch_cd = int(math.floor(
            math.degrees(math.atan2(-ux, math.sqrt(uy * uy + uz * uz))) * 100.0 + 0.5))
        self.cal_roll_cd = int(math.floor(math.degrees(math.atan2(uy, uz)) * 100.0 + 0.5))
        self._yaw0 = self.f.yaw_q14() if yaw_q14 is None else yaw_q14
        self.calibrated = 1
        return True

    def clear_calibration(self):
        self.calibrated = 0

    def _restart_window(self):
        cs = self._cs
        cs[0] = 0
        cs[1] = 0
        cs[2] = 0
        self._cal_have = 0

    def _finish(self, reason):
        self.cal_running = 0
        self._cal_result = reason

    def _cal_step(self, n, moved, hx, hy, hz):
        self._cal_elapsed += n
        if moved:
            if self._cal_elapsed > self._cal_wait:
                self._finish(MOVING)
            else:
                self._restart_window()
            return
        cs = self._cs
        cs[0] += hx * n
        cs[1] += hy * n
        cs[2] += hz * n
        self._cal_have += n
        if self._cal_have < self._cal_n:
            return
        k = self._cal_have
        mx = cs[0] / k
        my = cs[1] / k
        mz = cs[2] / k
        norm = math.sqrt(mx * mx + my * my + mz * mz)
        if not norm > 0.0 or mz < norm * self._worn_q14 / 16384.0:
            self._finish(NOT_WORN)
            return
        self.set_neutral(mx, my, mz)
        self._finish(OK)

    # --- per sample / per batch -------------------------------------------------------------
    def update(self):
        """Recompute angles and flags from the estimator's current state; returns the flags."""
        f = self.f
        flags = F_ROTATION_UNRELIABLE
        if not f.ready():
            self.flags = flags
            return flags
        n = f.take_nsamp()
        if n > _NCAP:
            n = _NCAP
        moved = f.take_moved()
        h = self._h
        f.up_q14(h)
        hx = h[0]
        hy = h[1]
        hz = h[2]
        if self.cal_running:
            self._cal_step(n, moved, hx, hy, hz)
        if f.high_motion():
            flags |= F_HIGH_MOTION
        if self.calibrated:
            flags |= F_CALIBRATED
            nf = self.nf
            px = (hx * nf[0] + hy * nf[1] + hz * nf[2] + 8192) >> 14
            py = (hx * nf[3] + hy * nf[4] + hz * nf[5] + 8192) >> 14
            pz = (hx * nf[6] + hy * nf[7] + hz * nf[8] + 8192) >> 14
            self.lateral_cd = iatan2(py, pz)
            self.flexion_cd = iatan2(-px, ihypot(py, pz))
            r = f.yaw_q14() - self._yaw0
            if r >= _YAW_HALF:
                r -= _YAW_FULL
            elif r < -_YAW_HALF:
                r += _YAW_FULL
            self.rotation_cd = (r + 8192) >> 14
        else:
            self.flexion_cd = NO_VALUE
            self.lateral_cd = NO_VALUE
            self.rotation_cd = NO_VALUE
        self.flags = flags
        return flags
