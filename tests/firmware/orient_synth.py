"""Synthetic scenarios for the orientation filter; runs under MicroPython and CPython alike.

    <interpreter> orient_synth.py SCENARIO

prints one JSON object of integers and strings. The motion is generated here (a head orientation
path, the IMU's view of it, a deterministic noise source), quantised to int16 counts and fed to
wearable.orient / wearable.posture exactly as on the board. Everything printed is derived from
integers, so both interpreters must print the same values (the test compares them).

Scenarios: bias, burst, burst_unweighted, calibration, signs, mounted, walk, high_motion, trig,
remap.
"""

import json
import math
import sys
from array import array

from wearable.orient import Orient, remap_batch, remap_table
from wearable.posture import (
    F_HIGH_MOTION,
    MOVING,
    NO_IMU,
    NO_RESULT,
    NOT_WORN,
    OK,
    TIMEOUT,
    Posture,
    iatan2,
    ihypot,
)

RATE = 100.0
DT = 1.0 / RATE
LSB_DPS = 65.536
LSB_G = 8192.0
G = 9.80665
D2R = math.pi / 180.0


def qmul(a, b):
    return (
        a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3],
        a[0] * b[1] + a[1] * b[0] + a[2] * b[3] - a[3] * b[2],
        a[0] * b[2] - a[1] * b[3] + a[2] * b[0] + a[3] * b[1],
        a[0] * b[3] + a[1] * b[2] - a[2] * b[1] + a[3] * b[0],
    )


def qaxis(axis, deg):
    h = deg * D2R / 2.0
    s = math.sin(h)
    return (math.cos(h), axis[0] * s, axis[1] * s, axis[2] * s)


def rot_t(q, v):
    """R(q)^T v: a world vector seen in the body frame."""
    qc = (q[0], -q[1], -q[2], -q[3])
    r = qmul(qmul(qc, (0.0, v[0], v[1], v[2])), q)
    return (r[1], r[2], r[3])


class Noise:
    """Deterministic approximately-Gaussian noise (sum of 4 uniforms from a 31-bit LCG)."""

    def __init__(self, seed):
        self.x = seed

    def uniform(self):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return self.x / 2147483648.0

    def gauss(self):
        return (self.uniform() + self.uniform() + self.uniform() + self.uniform() - 2.0) * 1.732


def counts(v):
    r = math.floor(v + 0.5)
    return -32768 if r < -32768 else (32767 if r > 32767 else r)


class Sim:
    """A head (orientation q_head, body->world) with an IMU mounted at rotation `mount`."""

    def __init__(self, orient, posture=None, bias_dps=(0.3, -0.2, 0.1), gyro_noise_dps=0.05,
                 acc_noise_g=0.002, mount=(1.0, 0.0, 0.0, 0.0), seed=12345):
        self.f = orient
        self.p = posture
        self.q = (1.0, 0.0, 0.0, 0.0)
        self.mount = mount
        self.bias = bias_dps
        self.gn = gyro_noise_dps
        self.an = acc_noise_g
        self.noise = Noise(seed)
        self.t = 0
        self.max_err = 0.0  # largest tilt error (deg) since reset_err()
        self.max_err_acc = 0.0  # same for the accelerometer alone

    def reset_err(self):
        self.max_err = 0.0
        self.max_err_acc = 0.0

    def sensor_q(self):
        return qmul(self.q, self.mount)

    def step(self, w_head, a_lin_world=(0.0, 0.0, 0.0)):
        """One sample: head angular velocity (deg/s, head frame) and linear accel (g, world)."""
        wn = math.sqrt(w_head[0] ** 2 + w_head[1] ** 2 + w_head[2] ** 2)
        if wn > 0.0:
            ax = (w_head[0] / wn, w_head[1] / wn, w_head[2] / wn)
            self.q = qmul(self.q, qaxis(ax, wn * DT))
        ws = rot_t(self.mount, w_head)
        sq = self.sensor_q()
        f_world = (a_lin_world[0], a_lin_world[1], a_lin_world[2] + 1.0)
        a = rot_t(sq, f_world)
        nz = self.noise
        g = [0, 0, 0, 0, 0, 0]
        for k in range(3):
            g[k] = counts((ws[k] + self.bias[k] + self.gn * nz.gauss()) * LSB_DPS)
            g[3 + k] = counts((a[k] + self.an * nz.gauss()) * LSB_G)
        self.f.update(g[0], g[1], g[2], g[3], g[4], g[5])
        if self.p is not None:
            self.p.update()
        self.t += 1
        up = rot_t(sq, (0.0, 0.0, 1.0))
        e = self.f.up()
        self.max_err = max(self.max_err, angle_deg(up, e))
        self.max_err_acc = max(self.max_err_acc, angle_deg(up, a))

    def hold(self, seconds):
        for _ in range(int(seconds * RATE + 0.5)):
            self.step((0.0, 0.0, 0.0))

    def rotate(self, axis, deg, seconds):
        """Smooth (raised-cosine rate) rotation by `deg` about a head-frame axis."""
        n = int(seconds * RATE + 0.5)
        for i in range(n):
            rate = deg / seconds * (1.0 - math.cos(2.0 * math.pi * (i + 0.5) / n))
            self.step((axis[0] * rate, axis[1] * rate, axis[2] * rate))

    def burst(self, direction, peak_g, seconds):
        """Linear acceleration along a world direction, Hann-shaped, the head not rotating."""
        n = int(seconds * RATE + 0.5)
        for i in range(n):
            m = peak_g * math.sin(math.pi * (i + 0.5) / n) ** 2
            self.step((0.0, 0.0, 0.0), (direction[0] * m, direction[1] * m, direction[2] * m))


def angle_deg(u, v):
    d = u[0] * v[0] + u[1] * v[1] + u[2] * v[2]
    n = math.sqrt((u[0] ** 2 + u[1] ** 2 + u[2] ** 2) * (v[0] ** 2 + v[1] ** 2 + v[2] ** 2))
    c = d / n
    c = 1.0 if c > 1.0 else (-1.0 if c < -1.0 else c)
    return math.acos(c) / D2R


def mdeg(x):
    """Float degrees to integer millidegrees (what the scenarios print)."""
    return math.floor(x * 1000.0 + 0.5)


def bias_mdps(f):
    b = f.bias_dps()
    return [mdeg(b[0]), mdeg(b[1]), mdeg(b[2])]


def scenario_bias():
    """A constant gyro bias at rest is learned; the estimate converges."""
    f = Orient(RATE, LSB_DPS, LSB_G)
    sim = Sim(f, bias_dps=(1.5, -0.8, 0.6), mount=qaxis((0.0, 1.0, 0.0), 10.0))
    marks = (1.0, 2.0, 3.0, 5.0, 10.0, 30.0)
    trace = []
    done = 0.0
    for m in marks:
        sim.hold(m - done)
        done = m
        trace.append(bias_mdps(f))
    # After learning, a minute of slow head motion without rest: tilt stays accurate.
    sim.reset_err()
    for _ in range(6):
        sim.rotate((0.0, 1.0, 0.0), 25.0, 2.0)
        sim.rotate((1.0, 0.0, 0.0), -20.0, 2.0)
        sim.rotate((0.0, 1.0, 0.0), -25.0, 2.0)
        sim.rotate((1.0, 0.0, 0.0), 20.0, 2.0)
    return {"true_mdps": [1500, -800, 600], "marks_s": [int(m) for m in marks],
            "trace_mdps": trace, "motion_max_err_mdeg": mdeg(sim.max_err)}


def _burst(weighted):
    if weighted:
        f = Orient(RATE, LSB_DPS, LSB_G)
    else:  # down-weighting disabled: full weight out to | |a| - 1 g | = 0.5 g
        f = Orient(RATE, LSB_DPS, LSB_G, w_full_g=0.49, w_zero_g=0.5)
    sim = Sim(f)
    sim.hold(5.0)
    out = {}
    for name, direction, peak in (("forward", (1.0, 0.0, 0.0), 0.8),
                                  ("left", (0.0, 1.0, 0.0), 0.8),
                                  ("forward_up", (0.6, 0.0, 0.8), 0.6)):
        sim.reset_err()
        sim.burst(direction, peak, 0.6)
        sim.hold(2.0)
        out[name] = [mdeg(sim.max_err), mdeg(sim.max_err_acc)]
        sim.hold(8.0)
    return out


def scenario_burst():
    return _burst(True)


def scenario_burst_unweighted():
    return _burst(False)


def scenario_calibration():
    out = {}
    # No samples yet: the IMU is missing.
    f = Orient(RATE, LSB_DPS, LSB_G)
    p = Posture(f)
    p.start_calibration()
    out["no_imu"] = p.take_cal_result()
    out["result_taken_twice"] = p.take_cal_result()

    f = Orient(RATE, LSB_DPS, LSB_G)
    p = Posture(f)
    sim = Sim(f, p)
    sim.hold(1.0)
    # Asked while the head is turning: refused at once.
    for _ in range(50):
        sim.step((0.0, 20.0, 0.0))
    p.start_calibration()
    out["while_moving"] = p.take_cal_result()
    out["calibrated_after_refusal"] = p.calibrated
    for _ in range(50):
        sim.step((0.0, -20.0, 0.0))
    sim.hold(1.0)
    # Started still, then moved within the 2 s window: refused.
    p.start_calibration()
    sim.hold(1.0)
    out["pending_mid_window"] = p.take_cal_result()
    sim.rotate((1.0, 0.0, 0.0), 15.0, 0.5)
    out["moved_in_window"] = p.take_cal_result()
    sim.rotate((1.0, 0.0, 0.0), -15.0, 0.5)
    sim.hold(1.0)
    # Still for 2 s: accepted.
    p.start_calibration()
    sim.hold(1.9)
    out["before_2s"] = p.take_cal_result()
    sim.hold(0.2)
    out["still"] = p.take_cal_result()
    out["calibrated"] = p.calibrated
    out["neutral_pitch_cd"] = p.cal_pitch_cd
    out["flags"] = p.flags
    # With a grace period: motion restarts the window instead of refusing.
    p.start_calibration(max_wait_s=5.0)
    sim.rotate((0.0, 1.0, 0.0), 10.0, 1.0)
    sim.hold(2.5)
    out["grace"] = p.take_cal_result()
    # Grace period exhausted by continuous motion: refused as moving.
    p.start_calibration(max_wait_s=1.0)
    for _ in range(3):
        sim.rotate((0.0, 0.0, 1.0), 20.0, 1.0)
    out["grace_exhausted"] = p.take_cal_result()
    # Aborted by the main loop's clock.
    p.start_calibration()
    sim.hold(0.5)
    p.abort_calibration(TIMEOUT)
    out["aborted"] = p.take_cal_result()
    # Lying on its side (sensor y up): not worn; the previous neutral stays.
    sim.rotate((1.0, 0.0, 0.0), -90.0, 2.0)
    sim.hold(3.0)
    p.start_calibration()
    sim.hold(2.5)
    out["on_side"] = p.take_cal_result()
    out["calibrated_kept"] = p.calibrated
    out["codes"] = [OK, MOVING, NOT_WORN, NO_IMU, TIMEOUT, NO_RESULT]
    return out


def _calibrated_sim(mount):
    f = Orient(RATE, LSB_DPS, LSB_G)
    p = Posture(f)
    sim = Sim(f, p, mount=mount)
    sim.hold(2.0)
    p.start_calibration()
    sim.hold(2.5)
    return sim, p, p.take_cal_result()


def _pose(sim, p):
    sim.hold(2.0)
    return [p.flexion_cd, p.lateral_cd, p.rotation_cd, p.flags]


def _poses(mount):
    sim, p, result = _calibrated_sim(mount)
    out = {"cal": result}
    y = (0.0, 1.0, 0.0)
    x = (1.0, 0.0, 0.0)
    z = (0.0, 0.0, 1.0)
    sim.rotate(y, 20.0, 1.0)  # positive about +y (left): nose down
    out["forward20"] = _pose(sim, p)
    sim.rotate(y, -20.0, 1.0)
    out["neutral"] = _pose(sim, p)
    sim.rotate(x, 15.0, 1.0)  # positive about +x (forward): right ear down
    out["right15"] = _pose(sim, p)
    sim.rotate(x, -15.0, 1.0)
    sim.rotate(y, -15.0, 1.0)
    out["back15"] = _pose(sim, p)
    sim.rotate(y, 15.0, 1.0)
    sim.rotate(x, -10.0, 1.0)
    out["left10"] = _pose(sim, p)
    sim.rotate(x, 10.0, 1.0)
    sim.rotate(y, 20.0, 1.0)
    sim.rotate(x, 15.0, 1.0)  # intrinsic: R = Ry(20) Rx(15)
    out["forward20_right15"] = _pose(sim, p)
    sim.rotate(x, -15.0, 1.0)
    sim.rotate(y, -20.0, 1.0)
    sim.hold(2.0)
    rot0 = p.rotation_cd
    sim.rotate(z, -30.0, 1.5)  # clockwise seen from above: turning right
    out["turn_right30"] = _pose(sim, p)
    out["turn_right30"][2] -= rot0
    return out


def scenario_signs():
    return _poses((1.0, 0.0, 0.0, 0.0))


def scenario_mounted():
    """Enclosure pitched 12 deg and rolled 4 deg on the neck: calibration absorbs it."""
    return _poses(qmul(qaxis((0.0, 1.0, 0.0), 12.0), qaxis((1.0, 0.0, 0.0), 4.0)))


def scenario_walk():
    """Walking: vertical 0.25 g and fore-aft 0.1 g at step rate, with head bob, for 30 s."""
    f = Orient(RATE, LSB_DPS, LSB_G)
    p = Posture(f)
    sim = Sim(f, p)
    sim.hold(3.0)
    p.start_calibration()
    sim.hold(2.5)
    sim.reset_err()
    flags_seen = 0
    n = int(30.0 * RATE)
    for i in range(n):
        ph = 2.0 * math.pi * 1.8 * i * DT
        sim.step((0.0, 6.0 * math.cos(ph), 0.0),
                 (0.1 * math.sin(ph), 0.0, 0.25 * math.sin(2.0 * ph)))
        flags_seen |= p.flags
    return {"max_err_mdeg": mdeg(sim.max_err), "max_err_acc_mdeg": mdeg(sim.max_err_acc),
            "flexion_cd": p.flexion_cd, "flags_seen": flags_seen}


def scenario_high_motion():
    """A fast head shake raises HIGH_MOTION; it clears about 0.5 s after the motion ends."""
    f = Orient(RATE, LSB_DPS, LSB_G)
    p = Posture(f)
    sim = Sim(f, p)
    sim.hold(3.0)
    before = p.flags
    seen = 0
    for _ in range(2):
        sim.rotate((0.0, 0.0, 1.0), 60.0, 0.4)  # peak 300 deg/s
        seen |= p.flags
        sim.rotate((0.0, 0.0, 1.0), -60.0, 0.4)
        seen |= p.flags
    sim.hold(0.2)
    soon_after = p.flags
    sim.hold(1.0)
    return {"before": before & F_HIGH_MOTION, "during": seen & F_HIGH_MOTION,
            "after_0_2s": soon_after & F_HIGH_MOTION, "after_1_2s": p.flags & F_HIGH_MOTION}


def scenario_trig():
    """Integer atan2 / hypot against math, over a deterministic spread of Q14-sized inputs."""
    nz = Noise(777)
    worst_atan = 0.0
    worst_hypot = 0.0
    for i in range(20000):
        x = int((nz.uniform() * 2.0 - 1.0) * 17000)
        y = int((nz.uniform() * 2.0 - 1.0) * 17000)
        if i % 10 == 0:
            x = x // 300
        ref = math.atan2(y, x) / D2R * 100.0
        e = abs(iatan2(y, x) - ref)
        if e > 18000.0:
            e = 36000.0 - e
        worst_atan = max(worst_atan, e)
        worst_hypot = max(worst_hypot, abs(ihypot(x, y) - math.sqrt(x * x + y * y)))
    return {"atan_err_mcd": mdeg(worst_atan), "hypot_err_milli": mdeg(worst_hypot),
            "axes_cd": [iatan2(0, 100), iatan2(100, 0), iatan2(0, -100), iatan2(-100, 0),
                        iatan2(0, 0), iatan2(-1, -100)]}


def scenario_remap():
    t = remap_table("-y, x, z")
    buf = array("h", [1, 2, 3, 4, 5, 6, -32768, 7, 8, 9, -32768, 10])
    remap_batch(buf, 2, t)
    bad = []
    for spec in ("x,y", "x,x,z", "x,y,w", "-q,y,z"):
        try:
            remap_table(spec)
            bad.append("accepted")
        except ValueError:
            bad.append("rejected")
    return {"table": list(t), "out": list(buf), "bad_specs": bad}


SCENARIOS = {
    "high_motion": scenario_high_motion,
    "trig": scenario_trig,
    "remap": scenario_remap,
    "bias": scenario_bias,
    "burst": scenario_burst,
    "burst_unweighted": scenario_burst_unweighted,
    "calibration": scenario_calibration,
    "signs": scenario_signs,
    "mounted": scenario_mounted,
    "walk": scenario_walk,
}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in SCENARIOS:
        sys.stderr.write("usage: orient_synth.py {" + ",".join(sorted(SCENARIOS)) + "}\n")
        sys.exit(2)
    print(json.dumps(SCENARIOS[sys.argv[1]]()))


main()
