"""Wear detection on synthetic IMU traces (sensor frame, raw counts): a wearer sitting and lying
still stays "worn"; a device put on a table is "not worn" after 5 minutes; face-down after 30 s;
picked up and worn again after 10 s; the single-sample path agrees with the batch path; the batch
path allocates nothing. Usage: logs_wear.py"""

import math
from array import array

from logs_common import Lcg, alloc_end, alloc_start, check, done, eq
from wearable.wear import Wear

GYRO = 65.536  # LSB per dps (+-500 dps)
ACC = 8192.0  # LSB per g (+-4 g)
RND = Lcg(2024)
NOISE = array("f", [RND.gauss(1.0) for _ in range(4096)])


class Trace:
    """Samples of a device: gravity along `up`, gyro bias, white noise, and micro-motion given
    as (axis, amplitude dps, frequency Hz) sinusoids on the gyro."""

    def __init__(self, rate, up=(0.0, 0.0, 1.0), gyro_noise_dps=0.03, acc_noise_g=0.0006,
                 motion=(), bias=(20, -15, 8)):
        self.rate = rate
        self.up = up
        self.gn = gyro_noise_dps * GYRO
        self.an = acc_noise_g * ACC
        self.motion = motion
        self.bias = bias
        self.k = 0
        self.r = Lcg(77)

    def fill(self, buf, n):
        for i in range(n):
            t = self.k / self.rate
            self.k += 1
            for a in range(3):
                v = self.bias[a] + self.gn * NOISE[self.r.below(4096)]
                for axis, amp, f in self.motion:
                    if axis == a:
                        v += amp * GYRO * math.sin(2 * math.pi * f * t + axis)
                buf[6 * i + a] = int(v)
                buf[6 * i + 3 + a] = int(self.up[a] * ACC + self.an * NOISE[self.r.below(4096)])
        return n


SITTING = ((1, 0.3, 0.25), (0, 0.2, 1.1), (2, 0.1, 0.6))  # breathing, pulse, sway
BUF = array("h", [0] * 6 * 32)


def play(w, trace, seconds):
    """Feed `seconds` of the trace in FIFO-sized batches; returns the window index at which the
    state last changed (-1: no change)."""
    changed = -1
    state = w.worn
    left = int(seconds * trace.rate)
    while left > 0:
        n = 32 if left > 32 else left
        trace.fill(BUF, n)
        if w.update_batch(BUF, n) != state:
            state = w.worn
            changed = w.windows
        left -= n
    return changed


def new(rate, worn=True):
    return Wear(rate_hz=rate, gyro_lsb_per_dps=GYRO, accel_lsb_per_g=ACC, worn=worn)


RATE = 26

# 1. a wearer sitting still for 20 minutes stays worn
w = new(RATE)
eq(play(w, Trace(RATE, (0.2, 0.05, 0.98), motion=SITTING), 1200), -1, "sitting still: worn")
eq(w.changes, 0, "sitting: no change")
check(not w.last_still, "sitting: windows are not dead still")

# 2. lying down asleep (up along sensor x) for 30 minutes stays worn
w = new(RATE)
eq(play(w, Trace(RATE, (0.97, 0.1, 0.2), motion=((1, 0.25, 0.2), (0, 0.15, 1.0))), 1800), -1,
   "lying down: worn")

# 3. put on a table on its back: not worn after 5 minutes
w = new(RATE)
play(w, Trace(RATE, (0.2, 0.05, 0.98), motion=SITTING), 60)
start = w.windows
at = play(w, Trace(RATE, (0.99, 0.0, 0.1)), 400)
check(not w.worn, "table: not worn")
check(300 <= at - start <= 302, "table: after 300 s of stillness: " + str(at - start))
check(w.last_still, "table: windows dead still")

# 4. a noisier chip (MPU-6050 class noise) on a table is still recognised
w = new(RATE)
play(w, Trace(RATE, (0.0, 0.0, 1.0), gyro_noise_dps=0.045, acc_noise_g=0.0035), 320)
check(not w.worn, "noisy chip on a table: not worn")

# 5. a table break shorter than 5 minutes keeps worn
w = new(RATE)
play(w, Trace(RATE, (0.0, 0.0, 1.0), motion=SITTING), 30)
play(w, Trace(RATE, (0.99, 0.0, 0.1)), 240)
eq(play(w, Trace(RATE, (0.0, 0.0, 1.0), motion=SITTING), 120), -1, "4 min on a table: worn")
eq(w.changes, 0, "short break: no change")

# 6. face down (up along -z): not worn after 30 s, still or moving
w = new(RATE)
play(w, Trace(RATE, (0.0, 0.0, 1.0), motion=SITTING), 10)
start = w.windows
at = play(w, Trace(RATE, (0.1, 0.0, -0.99)), 60)
check(not w.worn and 30 <= at - start <= 32, "face down still: " + str(at - start))
w = new(RATE)
play(w, Trace(RATE, (0.0, 0.0, 1.0), motion=SITTING), 10)
start = w.windows
at = play(w, Trace(RATE, (0.3, 0.2, -0.93), motion=((0, 20.0, 0.5), (1, 15.0, 0.7))), 60)
check(not w.worn and 30 <= at - start <= 32, "upside down moving: " + str(at - start))
# 60 degrees past horizontal is still plausible (a head bowed far): stays worn
w = new(RATE)
eq(play(w, Trace(RATE, (0.8, 0.0, -0.4), motion=SITTING), 120), -1, "up 114 deg from +z: worn")

# 7. picked up and worn again: worn after 10 s of activity
w = new(RATE, worn=False)
play(w, Trace(RATE, (0.99, 0.0, 0.1)), 30)
check(not w.worn, "starts not worn")
start = w.windows
at = play(w, Trace(RATE, (0.1, 0.0, 0.99), motion=SITTING), 30)
check(w.worn and 10 <= at - start <= 12, "worn again after 10 s: " + str(at - start))

# 8. the single-sample path matches the batch path, at 104 Hz
wa = new(104)
wb = new(104)
tr1 = Trace(104, (0.0, 0.0, 1.0), motion=SITTING)
tr2 = Trace(104, (0.0, 0.0, 1.0), motion=SITTING)
one = array("h", [0] * 6)
for _ in range(104 * 20):
    tr1.fill(one, 1)
    wa.update(one[0], one[1], one[2], one[3], one[4], one[5])
play(wb, tr2, 20)
eq((wa.windows, wa.last_gyro_dev, wa.last_acc_dev), (wb.windows, wb.last_gyro_dev,
   wb.last_acc_dev), "update() == update_batch()")
eq(wa.windows, 20, "one window per second at 104 Hz")

# 9. no allocation in update_batch
w = new(100)
tr = Trace(100, (0.0, 0.0, 1.0), motion=SITTING)
batches = []
for _ in range(32):
    b = array("h", [0] * 6 * 32)
    tr.fill(b, 32)
    batches.append(b)
w.update_batch(batches[0], 32)
a = alloc_start()
for b in batches:
    w.update_batch(b, 32)
used = alloc_end(a)
print("alloc wear update_batch", used, "bytes for", 32 * 32, "samples")
eq(used, 0, "update_batch allocates nothing")

try:
    Wear(rate_hz=0)
    check(False, "rate 0 accepted")
except ValueError:
    check(True, "")
done("logs_wear")
