"""Is the device on a neck? A heuristic on raw IMU samples, with hysteresis.

docs/firmware-storage.md explains the heuristic and its limits. In short, samples are cut into
one-second windows. For each window:

* micro-motion: the mean absolute deviation of each gyro axis (and each accelerometer axis) from
  that axis's mean over the previous window. A living head is never as still as a table: breathing,
  the pulse and postural sway keep the gyro well above a MEMS gyro's own noise. A window is
  *dead still* when the gyro deviation (summed over the axes) is below still_gyro_dps and the
  accelerometer deviation below still_acc_g.
* orientation: the window's mean acceleration is gravity. Worn as intended, "up" lies near the
  sensor's +z and never points into the lower hemisphere beyond 120 degrees from it (lying down
  puts it near the horizontal plane, which is still plausible). A window with up more than 120
  degrees from +z is *implausible*.

Worn -> not worn after not_worn_still_s consecutive dead-still windows (default 5 minutes) or
inverted_s consecutive implausible windows (default 30 s). Not worn -> worn after rewear_s
consecutive windows that are neither dead still nor implausible (default 10 s). The state starts
as `worn` (the constructor's argument) until the evidence says otherwise.

Input: interleaved gx, gy, gz, ax, ay, az int16 counts in the sensor frame (the IMU driver's
remapped FIFO batch), as orient.Orient takes them. Integer arithmetic only and no allocation per
sample; every sum stays far below 2**30 for rates up to 1 kHz.

    w = Wear(rate_hz=drv.odr_hz, gyro_lsb_per_dps=drv.gyro_lsb_per_dps,
             accel_lsb_per_g=drv.accel_lsb_per_g)
    worn = w.update_batch(buf, n)          # after each FIFO read
"""

from array import array

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


STILL_GYRO_DPS = 0.25  # summed over three axes; MEMS gyro noise gives ~0.06-0.1 here
STILL_ACC_G = 0.03  # summed over three axes; loose: the gyro is what tells a head from a table
NOT_WORN_STILL_S = const(300)
INVERTED_S = const(30)
REWEAR_S = const(10)

# State array indices.
_SG = const(0)  # sums of the samples per axis, this window: gx gy gz ax ay az (0..5)
_RG = const(6)  # reference (previous window's mean) per axis (6..11)
_DG = const(12)  # gyro deviation sum, this window
_DA = const(13)  # accel deviation sum, this window
_N = const(14)  # samples in this window
_NSTATE = const(15)


class Wear:
    def __init__(self, rate_hz=100, gyro_lsb_per_dps=65.536, accel_lsb_per_g=8192.0,
                 still_gyro_dps=STILL_GYRO_DPS, still_acc_g=STILL_ACC_G,
                 not_worn_still_s=NOT_WORN_STILL_S, inverted_s=INVERTED_S, rewear_s=REWEAR_S,
                 worn=True):
        if not (rate_hz > 0 and gyro_lsb_per_dps > 0 and accel_lsb_per_g > 0):
            raise ValueError("rate and scale factors must be positive")
        self.window = int(rate_hz + 0.5) if rate_hz >= 1 else 1
        w = self.window
        # Thresholds on the window's summed deviations, in counts * samples.
        self.gyro_limit = int(still_gyro_dps * gyro_lsb_per_dps * w + 0.5)
        self.acc_limit = int(still_acc_g * accel_lsb_per_g * w + 0.5)
        # Accelerometer means are shifted down before squaring so the squares stay small ints.
        sh = 0
        a2 = int(accel_lsb_per_g * 2)
        while a2 >> sh > 1024:
            sh += 1
        self._ash = sh
        self.not_worn_still_s = not_worn_still_s
        self.inverted_s = inverted_s
        self.rewear_s = rewear_s
        self.worn = worn
        self._s = array("i", [0] * _NSTATE)
        self._have_ref = False
        self.still_run = 0  # consecutive dead-still windows
        self.inverted_run = 0  # consecutive implausible windows
        self.active_run = 0  # consecutive active, plausible windows
        self.windows = 0
        self.changes = 0  # worn <-> not worn transitions
        self.last_gyro_dev = 0  # last window's deviation sums (counts * samples), for logs
        self.last_acc_dev = 0
        self.last_still = False
        self.last_inverted = False
        self._one = array("h", [0] * 6)

    def update(self, gx, gy, gz, ax, ay, az):
        """One sample; returns the worn state."""
        o = self._one
        o[0] = gx
        o[1] = gy
        o[2] = gz
        o[3] = ax
        o[4] = ay
        o[5] = az
        return self.update_batch(o, 1)

    def update_batch(self, buf, n):
        """n interleaved samples from buf[0]; returns the worn state."""
        s = self._s
        w = self.window
        j = 0
        end = 6 * n
        while j < end:
            if not self._have_ref:
                for k in range(6):
                    s[_RG + k] = buf[j + k]
                self._have_ref = True
            dg = 0
            for k in range(3):
                v = buf[j + k]
                s[_SG + k] += v
                d = v - s[_RG + k]
                dg += d if d >= 0 else -d
            da = 0
            for k in range(3, 6):
                v = buf[j + k]
                s[_SG + k] += v
                d = v - s[_RG + k]
                da += d if d >= 0 else -d
            s[_DG] += dg
            s[_DA] += da
            s[_N] += 1
            j += 6
            if s[_N] >= w:
                self._close_window()
        return self.worn

    def _close_window(self):
        s = self._s
        w = s[_N]
        for k in range(6):
            s[_RG + k] = s[_SG + k] // w
            s[_SG + k] = 0
        still = s[_DG] < self.gyro_limit and s[_DA] < self.acc_limit
        self.last_gyro_dev = s[_DG]
        self.last_acc_dev = s[_DA]
        s[_DG] = 0
        s[_DA] = 0
        s[_N] = 0
        sh = self._ash
        ax = s[_RG + 3] >> sh
        ay = s[_RG + 4] >> sh
        az = s[_RG + 5] >> sh
        mag2 = ax * ax + ay * ay + az * az
        # up more than 120 degrees from +z: az / |a| < -0.5
        inverted = mag2 > 0 and az < 0 and 4 * az * az > mag2
        self.last_still = still
        self.last_inverted = inverted
        self.windows += 1
        if self.worn:
            self.still_run = self.still_run + 1 if still else 0
            self.inverted_run = self.inverted_run + 1 if inverted else 0
            if self.still_run >= self.not_worn_still_s or self.inverted_run >= self.inverted_s:
                self._set(False)
        else:
            self.active_run = 0 if (still or inverted or mag2 == 0) else self.active_run + 1
            if self.active_run >= self.rewear_s:
                self._set(True)

    def _set(self, worn):
        self.worn = worn
        self.changes += 1
        self.still_run = 0
        self.inverted_run = 0
        self.active_run = 0
