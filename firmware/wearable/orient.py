"""Gravity ("up") estimator for the neck IMU: a fixed-point 6-axis complementary filter.

Runs unchanged under MicroPython and CPython. The per-sample path uses only small integers (every
intermediate stays below 2**30 in magnitude, so it is a small int even on 32-bit boards) and state
kept in a preallocated array('i'); it creates no heap objects per sample. docs/orientation.md
derives the scaling of every product below.

Input is raw IMU counts in the sensor frame S (x forward, y left, z up, see docs/orientation.md),
interleaved gx, gy, gz, ax, ay, az per sample, as int16 in an array('h') that the IMU driver fills
from its FIFO (remap_batch() applies the mounting's signed axis permutation in place). The scale
factors (LSB per deg/s, LSB per g) and the sample rate are given once at construction.

What one sample does:
1. rest detection: raw gyro and accel low-passed (tau ~0.5 s); "at rest" once every axis stays
   close to its low-pass and the gyro low-pass is below the bias clip for 1.5 s;
2. at rest only, the gyro bias (Q8 counts) is the running mean of the raw gyro over the rest,
   turning into a low-pass over the last 3 s of rest; its weight decays while moving;
3. gyro integration of the up vector U (Q28): dU = U x (w - bias) dt;
4. accelerometer correction dU = k * w(|a|) * (a/|a|_nominal - U), with a larger k at rest, and
   the weight w falling linearly from 1 to 0 as | |a| - 1 g | grows from 0.04 g to 0.2 g;
5. first-order renormalisation of U, and the relative heading (axial rotation) integral.
"""

import math
from array import array

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# Indices into the state array.
_UX = const(0)  # up vector, Q28 (1.0 == 1 << 28)
_UY = const(1)
_UZ = const(2)
_GLX = const(3)  # gyro low-pass for rest detection, Q8 counts
_GLY = const(4)
_GLZ = const(5)
_ALX = const(6)  # accel low-pass for rest detection, Q18 of g (from the Q10 accel)
_ALY = const(7)
_ALZ = const(8)
_BX = const(9)  # gyro bias, Q8 counts
_BY = const(10)
_BZ = const(11)
_BRX = const(12)  # bias low-pass remainders (keep the fixed-point low-pass exact)
_BRY = const(13)
_BRZ = const(14)
_REST_N = const(15)  # consecutive samples meeting the rest criteria (saturates)
_YAW = const(16)  # relative heading, centidegrees << 14, wrapped to +-180 deg
_READY = const(17)  # 1 once U has been initialised from the accelerometer
_STILL_N = const(18)  # consecutive "still" samples (calibration criterion), saturates
_MOTION = const(19)  # high-motion hold countdown, samples
_MOVED = const(20)  # latch: a non-still sample since the consumer last cleared it
_NSAMP = const(21)  # samples since the consumer last cleared it (saturates)
_WEIGHT = const(22)  # accelerometer weight of the last sample, 0..256
_REJECTED = const(23)  # samples skipped because the accelerometer read zero (dead sensor)
_BCONF = const(24)  # samples the bias estimate is worth (gain 1/_BCONF at rest), <= bias window
_BDEC = const(25)  # samples of motion since _BCONF was last decremented
_NSTATE = const(26)

_ONE = const(1 << 28)
_YAW_HALF = const(18000 << 14)
_YAW_FULL = const(36000 << 14)
_SAT = const(1 << 29)  # saturation for counters

# Defaults (documented in docs/orientation.md).
TAU_MOTION_S = 3.0  # accel correction time constant while moving
TAU_REST_S = 1.0  # ... and at rest, where the accelerometer only sees gravity
TAU_REST_LP_S = 0.5  # low-pass used by the rest detector
BIAS_WINDOW_S = 3.0  # the bias is a running mean over at most this much rest
BIAS_FORGET_S = 120.0  # motion time over which a full bias window loses all its weight
REST_MIN_S = 1.5
REST_GYRO_DPS = 2.0  # gyro deviation from its low-pass allowed at rest
REST_ACC_G = 0.05  # accel deviation from its low-pass allowed at rest
BIAS_CLIP_DPS = 4.0  # the gyro low-pass must stay below this for the rest to count (and bias)
W_FULL_G = 0.04  # accel weight 1 while | |a| - 1 g | < this
W_ZERO_G = 0.20  # ... falling linearly to 0 here
STILL_DPS = 8.0  # calibration: |w| per axis below this ...
STILL_G = 0.08  # ... and | |a| - 1 g | below this
HIGH_MOTION_DPS = 100.0  # HIGH_MOTION: |w| on any axis above this ...
HIGH_MOTION_G = 0.30  # ... or | |a| - 1 g | above this
HIGH_MOTION_HOLD_S = 0.5
MAX_STEP_RAD = 0.2  # gyro clip per axis and sample (1146 deg/s at 100 Hz); far above a neck's


def _shift_for(samples):
    """Shift s with 2**s closest (geometrically) to `samples`, at least 0."""
    s = 0
    while (1 << (s + 1)) <= samples * 1.4142:
        s += 1
    return s


def _mult_shift(f, lo, hi):
    """(m, p) with m = round(f * 2**p) in [lo, hi); p >= 0; f > 0."""
    if f >= hi:
        raise ValueError("scale factor too large for the fixed-point format")
    p = 0
    while f * (1 << p) < lo:
        p += 1
    m = int(math.floor(f * (1 << p) + 0.5))
    if m >= hi:
        m = hi - 1
    return m, p


def _norm_band(delta_g):
    """Bounds (lo, hi) on |a|^2 - 1 (in Q20 of g^2) for | |a| - 1 g | < delta_g."""
    hi = int(((1.0 + delta_g) ** 2 - 1.0) * (1 << 20))
    lo = int(((1.0 - delta_g) ** 2 - 1.0) * (1 << 20))
    return lo, hi


class Orient:
    """Up-vector estimator over raw int16 IMU samples.

    rate_hz: sample rate; gyro_lsb_per_dps: gyro counts per deg/s (e.g. 65.536 at +-500 dps);
    accel_lsb_per_g: accel counts per g (e.g. 8192 at +-4 g). Samples are in the sensor frame S.
    """

    def __init__(self, rate_hz=100.0, gyro_lsb_per_dps=65.536, accel_lsb_per_g=8192.0,
                 tau_motion_s=TAU_MOTION_S, tau_rest_s=TAU_REST_S,
                 w_full_g=W_FULL_G, w_zero_g=W_ZERO_G):
        if not (rate_hz > 0 and gyro_lsb_per_dps > 0 and accel_lsb_per_g > 0):
            raise ValueError("rate and scale factors must be positive")
        if not (0.0 <= w_full_g < w_zero_g <= 0.5):
            raise ValueError("need 0 <= w_full_g < w_zero_g <= 0.5")
        if not (2048 <= accel_lsb_per_g <= 32768):  # +-16 g .. +-1 g full scale
            raise ValueError("accel_lsb_per_g must be within 2048..32768")
        self.rate_hz = rate_hz
        self.gyro_lsb_per_dps = gyro_lsb_per_dps
        self.accel_lsb_per_g = accel_lsb_per_g
        dt = 1.0 / rate_hz
        gs = math.pi / 180.0 / gyro_lsb_per_dps  # rad/s per count
        # Gyro step: dU(Q28) = cross(U Q12, w Q2) * 2**14 * gs * dt.
        f = (1 << 14) * gs * dt
        if f >= 1.0:
            raise ValueError("gyro step too coarse: raise the rate or the gyro resolution")
        self._mg, self._pg = _mult_shift(f, 2048, 4096)
        self._pg -= 12
        if self._pg < 0:
            raise ValueError("gyro step too coarse: raise the rate or the gyro resolution")
        # Largest rotation per sample and axis, MAX_STEP_RAD, as a Q2 count.
        self._wmax = int(MAX_STEP_RAD / (gs * dt) * 4)
        if self._wmax > 32768 * 4:
            self._wmax = 32768 * 4
        # Heading: d(yaw)(cd << 14) = dot(w Q1, U Q12) * gs * dt * 2 * (18000/pi).
        fy = gs * dt * 2.0 * 18000.0 / math.pi
        self._my, self._py = _mult_shift(fy, 2048, 4096)
        self._py -= 12
        if self._py < 0:
            raise ValueError("heading step too coarse")
        # Accel to Q14 of g: A = a * ka >> pa.
        self._ka, self._pa = _mult_shift((1 << 14) / accel_lsb_per_g, 8192, 16384)
        # Correction gains: dU(Q28) = E(Q14) * K >> s, K = k * 2**(14 + s).
        self._km, self._sm = _mult_shift((1 << 14) / (tau_motion_s * rate_hz), 8192, 16384)
        self._kr, self._sr = _mult_shift((1 << 14) / (tau_rest_s * rate_hz), 8192, 16384)
        self._sh_lp = _shift_for(TAU_REST_LP_S * rate_hz)
        self._bmax = int(BIAS_WINDOW_S * rate_hz + 0.5)
        self._bdec = int(BIAS_FORGET_S * rate_hz / self._bmax + 0.5)
        self._rest_min = int(REST_MIN_S * rate_hz + 0.5)
        self._rest_g = int(REST_GYRO_DPS * gyro_lsb_per_dps + 0.5)  # counts
        self._clip_g = int(BIAS_CLIP_DPS * gyro_lsb_per_dps + 0.5)  # counts
        self._rest_a = int(REST_ACC_G * 1024 + 0.5)  # Q10 of g
        self._still_w = int(STILL_DPS * gyro_lsb_per_dps * 4 + 0.5)  # Q2 counts
        self._hm_w = int(HIGH_MOTION_DPS * gyro_lsb_per_dps * 4 + 0.5)
        if self._hm_w > 32767 * 4:
            self._hm_w = 32767 * 4 - 1
        self._hm_hold = int(HIGH_MOTION_HOLD_S * rate_hz + 0.5)
        self._w0lo, self._w0hi = _norm_band(w_full_g)
        self._w1lo, self._w1hi = _norm_band(w_zero_g)
        self._stlo, self._sthi = _norm_band(STILL_G)
        self._hmlo, self._hmhi = _norm_band(HIGH_MOTION_G)
        self.s = array("i", [0] * _NSTATE)
        self._one = array("h", [0] * 6)
        self.reset()

    def reset(self):
        """Forget everything (orientation, bias, counters)."""
        s = self.s
        for i in range(_NSTATE):
            s[i] = 0
        s[_UZ] = _ONE

    # --- readers for the rest of the firmware (all ints; no allocation) ---------------------
    def ready(self):
        return self.s[_READY]

    def at_rest(self):
        return self.s[_REST_N] >= self._rest_min

    def high_motion(self):
        return self.s[_MOTION] > 0

    def still_samples(self):
        """Consecutive samples meeting the calibration stillness criteria (saturates)."""
        return self.s[_STILL_N]

    def yaw_q14(self):
        """Relative heading, centidegrees << 14, wrapped to +-180 deg (positive = turn right)."""
        return self.s[_YAW]

    def weight(self):
        """Accelerometer weight (0..256) applied to the last sample."""
        return self.s[_WEIGHT]

    def rejected(self):
        """Samples skipped because the accelerometer read all zeros."""
        return self.s[_REJECTED]

    def take_moved(self):
        """1 if a non-still sample came since the last call, else 0; clears the latch."""
        s = self.s
        m = s[_MOVED]
        s[_MOVED] = 0
        return m

    def take_nsamp(self):
        """Samples processed since the last call (saturates at 2**29), and restart the count."""
        s = self.s
        n = s[_NSAMP]
        s[_NSAMP] = 0
        return n

    def up_q14(self, out):
        """Write the up vector in Q14 (|u| ~ 16384) into out[0..2] (an array or list)."""
        s = self.s
        out[0] = (s[_UX] + 8192) >> 14
        out[1] = (s[_UY] + 8192) >> 14
        out[2] = (s[_UZ] + 8192) >> 14

    def up(self):
        """Up vector as a float tuple (allocates; for tools and tests, not the sample loop)."""
        s = self.s
        return (s[_UX] / _ONE, s[_UY] / _ONE, s[_UZ] / _ONE)

    def bias_dps(self):
        """Gyro bias estimate in deg/s as a float tuple (allocates; for tools and tests)."""
        s = self.s
        k = 256.0 * self.gyro_lsb_per_dps
        return (s[_BX] / k, s[_BY] / k, s[_BZ] / k)

    # --- initialisation (runs once, may allocate) -------------------------------------------
    def _init_from(self, ax, ay, az):
        n = math.sqrt(ax * ax + ay * ay + az * az)
        if n == 0.0:
            return False
        s = self.s
        s[_UX] = int(ax / n * _ONE)
        s[_UY] = int(ay / n * _ONE)
        s[_UZ] = int(az / n * _ONE)
        ka = self._ka
        pa = self._pa
        s[_ALX] = (((ax * ka) >> pa) >> 4) << 8
        s[_ALY] = (((ay * ka) >> pa) >> 4) << 8
        s[_ALZ] = (((az * ka) >> pa) >> 4) << 8
        s[_READY] = 1
        return True

    # --- the sample loop --------------------------------------------------------------------
    def update(self, gx, gy, gz, ax, ay, az):
        """One raw sample (ints, sensor frame)."""
        b = self._one
        b[0] = gx
        b[1] = gy
        b[2] = gz
        b[3] = ax
        b[4] = ay
        b[5] = az
        self.update_batch(b, 1)

    def update_batch(self, buf, n):
        """Process n samples from buf (array('h'): gx, gy, gz, ax, ay, az per sample)."""
        s = self.s
        if not s[_READY]:
            # Initialise from the first sample whose accelerometer is not all zeros.
            i = 0
            while i < n and not s[_READY]:
                if not self._init_from(buf[6 * i + 3], buf[6 * i + 4], buf[6 * i + 5]):
                    s[_REJECTED] += 1
                i += 1
            if not s[_READY]:
                return
            start = i - 1  # the initialising sample still updates the detectors
        else:
            start = 0
        ux = s[_UX]
        uy = s[_UY]
        uz = s[_UZ]
        glx = s[_GLX]
        gly = s[_GLY]
        glz = s[_GLZ]
        alx = s[_ALX]
        aly = s[_ALY]
        alz = s[_ALZ]
        bx = s[_BX]
        by = s[_BY]
        bz = s[_BZ]
        brx = s[_BRX]
        bry = s[_BRY]
        brz = s[_BRZ]
        rest_n = s[_REST_N]
        yaw = s[_YAW]
        still_n = s[_STILL_N]
        motion = s[_MOTION]
        moved = s[_MOVED]
        nsamp = s[_NSAMP]
        rejected = s[_REJECTED]
        wt = s[_WEIGHT]
        wmax = self._wmax
        mg = self._mg
        pg = self._pg
        rg = (1 << pg) >> 1
        my = self._my
        py = self._py
        ry = (1 << py) >> 1
        ka = self._ka
        pa = self._pa
        km = self._km
        sm = self._sm
        kr = self._kr
        sr = self._sr
        shl = self._sh_lp
        bmax = self._bmax
        bdec = self._bdec
        bconf = s[_BCONF]
        bdn = s[_BDEC]
        rest_min = self._rest_min
        trg = self._rest_g
        tcg = self._clip_g
        tra = self._rest_a
        tsw = self._still_w
        thw = self._hm_w
        hold = self._hm_hold
        w0lo = self._w0lo
        w0hi = self._w0hi
        w1lo = self._w1lo
        w1hi = self._w1hi
        stlo = self._stlo
        sthi = self._sthi
        hmlo = self._hmlo
        hmhi = self._hmhi
        j = 6 * start
        end = 6 * n
        while j < end:
            gx = buf[j]
            gy = buf[j + 1]
            gz = buf[j + 2]
            # Accel in Q14 of g (|A| <= 2**18 at +-16 g) and Q10 (for squares: sum < 2**30).
            ax = (buf[j + 3] * ka) >> pa
            ay = (buf[j + 4] * ka) >> pa
            az = (buf[j + 5] * ka) >> pa
            j += 6
            if ax == 0 and ay == 0 and az == 0:
                rejected += 1
                continue
            mx = ax >> 4
            my_ = ay >> 4
            mz = az >> 4
            d = mx * mx + my_ * my_ + mz * mz - 1048576  # |a|^2 - 1, Q20 of g^2

            # 1. rest detection
            glx += ((gx << 8) - glx) >> shl
            gly += ((gy << 8) - gly) >> shl
            glz += ((gz << 8) - glz) >> shl
            alx += ((mx << 8) - alx) >> shl
            aly += ((my_ << 8) - aly) >> shl
            alz += ((mz << 8) - alz) >> shl
            if (-trg < gx - (glx >> 8) < trg and -trg < gy - (gly >> 8) < trg
                    and -trg < gz - (glz >> 8) < trg
                    and -tcg < (glx >> 8) < tcg and -tcg < (gly >> 8) < tcg
                    and -tcg < (glz >> 8) < tcg
                    and -tra < mx - (alx >> 8) < tra and -tra < my_ - (aly >> 8) < tra
                    and -tra < mz - (alz >> 8) < tra):
                if rest_n < _SAT:
                    rest_n += 1
            else:
                rest_n = 0

            # 2. bias, only at rest: running mean of the raw gyro (gain 1/bconf) that becomes a
            # low-pass over bmax samples; remainders carried so the mean is exact.
            if rest_n >= rest_min:
                if bconf < bmax:
                    bconf += 1
                t = (gx << 8) - bx + brx
                q = t // bconf
                brx = t - q * bconf
                bx += q
                t = (gy << 8) - by + bry
                q = t // bconf
                bry = t - q * bconf
                by += q
                t = (gz << 8) - bz + brz
                q = t // bconf
                brz = t - q * bconf
                bz += q
                k = kr
                sk = sr
            else:
                # the bias may drift while moving: let its weight decay
                bdn += 1
                if bdn >= bdec:
                    bdn = 0
                    if bconf > 1:
                        bconf -= 1
                k = km
                sk = sm

            # corrected gyro, Q2 counts
            wx = (gx << 2) - ((bx + 32) >> 6)
            wy = (gy << 2) - ((by + 32) >> 6)
            wz = (gz << 2) - ((bz + 32) >> 6)
            # cap the per-sample rotation so the norm stays within reach of step 5
            if wx > wmax:
                wx = wmax
            elif wx < -wmax:
                wx = -wmax
            if wy > wmax:
                wy = wmax
            elif wy < -wmax:
                wy = -wmax
            if wz > wmax:
                wz = wmax
            elif wz < -wmax:
                wz = -wmax

            # motion classification for posture/calibration
            if -tsw < wx < tsw and -tsw < wy < tsw and -tsw < wz < tsw and stlo < d < sthi:
                if still_n < _SAT:
                    still_n += 1
            else:
                still_n = 0
                moved = 1
            if -thw < wx < thw and -thw < wy < thw and -thw < wz < thw and hmlo < d < hmhi:
                if motion > 0:
                    motion -= 1
            else:
                motion = hold
            if nsamp < _SAT:
                nsamp += 1

            # 3. gyro integration: dU = U x w dt
            hx = (ux + 32768) >> 16  # Q12
            hy = (uy + 32768) >> 16
            hz = (uz + 32768) >> 16
            cx = hy * wz - hz * wy
            cy = hz * wx - hx * wz
            cz = hx * wy - hy * wx
            ux += (((cx + 2048) >> 12) * mg + rg) >> pg
            uy += (((cy + 2048) >> 12) * mg + rg) >> pg
            uz += (((cz + 2048) >> 12) * mg + rg) >> pg

            # heading about up: rotation = -integral(w . u) dt
            t = (wx >> 1) * hx + (wy >> 1) * hy + (wz >> 1) * hz
            yaw -= (((t + 2048) >> 12) * my + ry) >> py
            if yaw >= _YAW_HALF:
                yaw -= _YAW_FULL
            elif yaw < -_YAW_HALF:
                yaw += _YAW_FULL

            # 4. accelerometer correction, weighted by how close |a| is to 1 g
            if w0lo <= d <= w0hi:
                wt = 256
            elif w1lo < d < w0lo:
                wt = ((d - w1lo) << 8) // (w0lo - w1lo)
            elif w0hi < d < w1hi:
                wt = ((w1hi - d) << 8) // (w1hi - w0hi)
            else:
                wt = 0
            hx = (ux + 8192) >> 14  # Q14
            hy = (uy + 8192) >> 14
            hz = (uz + 8192) >> 14
            if wt:
                k = (k * wt) >> 8
                rk = (1 << sk) >> 1
                ux += ((ax - hx) * k + rk) >> sk
                uy += ((ay - hy) * k + rk) >> sk
                uz += ((az - hz) * k + rk) >> sk

            # 5. keep |U| ~ 1: U *= 1 + (1 - |U|^2) / 2
            t = 268435456 - (hx * hx + hy * hy + hz * hz)
            if t > 67108864:
                t = 67108864
            elif t < -67108864:
                t = -67108864
            t >>= 12
            ux += (hx * t + 4) >> 3
            uy += (hy * t + 4) >> 3
            uz += (hz * t + 4) >> 3

        s[_UX] = ux
        s[_UY] = uy
        s[_UZ] = uz
        s[_GLX] = glx
        s[_GLY] = gly
        s[_GLZ] = glz
        s[_ALX] = alx
        s[_ALY] = aly
        s[_ALZ] = alz
        s[_BX] = bx
        s[_BY] = by
        s[_BZ] = bz
        s[_BRX] = brx
        s[_BRY] = bry
        s[_BRZ] = brz
        s[_REST_N] = rest_n
        s[_YAW] = yaw
        s[_STILL_N] = still_n
        s[_MOTION] = motion
        s[_MOVED] = moved
        s[_NSAMP] = nsamp
        s[_REJECTED] = rejected
        s[_WEIGHT] = wt
        s[_BCONF] = bconf
        s[_BDEC] = bdn


def remap_table(spec):
    """Build the axis remap for remap_batch() from a spec string like "-y,x,z".

    The spec names, for sensor-frame axes x, y, z in that order, the chip axis (with its sign)
    that gives it. The same remap applies to the gyro and the accelerometer. Entry i of the
    returned array('b') is +-(chip axis index + 1).
    """
    parts = spec.replace(" ", "").split(",")
    if len(parts) != 3:
        raise ValueError("remap spec needs three comma-separated axes, e.g. '-y,x,z'")
    t = array("b", [0, 0, 0])
    seen = 0
    for i in range(3):
        p = parts[i]
        sg = 1
        if p[:1] == "-":
            sg = -1
            p = p[1:]
        elif p[:1] == "+":
            p = p[1:]
        if p not in ("x", "y", "z"):
            raise ValueError("bad axis in remap spec: " + spec)
        k = "xyz".index(p)
        if seen & (1 << k):
            raise ValueError("axis used twice in remap spec: " + spec)
        seen |= 1 << k
        t[i] = sg * (k + 1)
    return t


def remap_batch(buf, n, table):
    """Apply a remap_table() in place to n interleaved (gyro, accel) samples; no allocation.

    -32768 negates to +32767 (int16 saturation) instead of wrapping.
    """
    e0 = table[0]
    e1 = table[1]
    e2 = table[2]
    j = 0
    end = 6 * n
    while j < end:
        a0 = buf[j]
        a1 = buf[j + 1]
        a2 = buf[j + 2]
        for i in range(3):
            e = e0 if i == 0 else (e1 if i == 1 else e2)
            k = e if e > 0 else -e
            v = a0 if k == 1 else (a1 if k == 2 else a2)
            if e < 0:
                v = 32767 if v == -32768 else -v
            buf[j + i] = v
        j += 3
