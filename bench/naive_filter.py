"""The firmware's orientation filter and posture step written the straightforward way, in floats.

Same algorithm as firmware/wearable/orient.py and posture.py (rest detection, bias running mean at
rest, gyro integration of the up vector, |a|-weighted accelerometer correction with a faster gain
at rest, renormalisation, heading integral, atan2 posture angles), but with SI floats and lists as
one would first write it. It exists only as the baseline for bench/firmware.py: on MicroPython
every float is a heap object, and this is what that costs.
"""

import math

TAU_MOTION_S = 3.0
TAU_REST_S = 1.0
TAU_REST_LP_S = 0.5
REST_MIN_S = 1.5
REST_GYRO_DPS = 2.0
REST_ACC_G = 0.05
BIAS_CLIP_DPS = 4.0
BIAS_WINDOW_S = 3.0
W_FULL_G = 0.04
W_ZERO_G = 0.20


class NaiveOrient:
    def __init__(self, rate_hz=100.0, gyro_lsb_per_dps=65.536, accel_lsb_per_g=8192.0):
        self.dt = 1.0 / rate_hz
        self.gyro_scale = math.radians(1.0) / gyro_lsb_per_dps
        self.acc_scale = 1.0 / accel_lsb_per_g
        self.k_lp = self.dt / TAU_REST_LP_S
        self.k_motion = self.dt / TAU_MOTION_S
        self.k_rest = self.dt / TAU_REST_S
        self.rest_min = int(REST_MIN_S * rate_hz)
        self.bias_max = int(BIAS_WINDOW_S * rate_hz)
        self.rest_gyro = math.radians(REST_GYRO_DPS)
        self.bias_clip = math.radians(BIAS_CLIP_DPS)
        self.u = [0.0, 0.0, 1.0]
        self.gyro_lp = [0.0, 0.0, 0.0]
        self.acc_lp = [0.0, 0.0, 0.0]
        self.bias = [0.0, 0.0, 0.0]
        self.rest_n = 0
        self.bias_n = 0
        self.yaw = 0.0
        self.ready = False

    def update(self, gx, gy, gz, ax, ay, az):
        g = [gx * self.gyro_scale, gy * self.gyro_scale, gz * self.gyro_scale]
        a = [ax * self.acc_scale, ay * self.acc_scale, az * self.acc_scale]
        norm = math.sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2])
        if norm == 0.0:
            return
        if not self.ready:
            self.u = [a[0] / norm, a[1] / norm, a[2] / norm]
            self.acc_lp = list(a)
            self.ready = True

        rest = True
        for i in range(3):
            self.gyro_lp[i] += (g[i] - self.gyro_lp[i]) * self.k_lp
            self.acc_lp[i] += (a[i] - self.acc_lp[i]) * self.k_lp
            if (abs(g[i] - self.gyro_lp[i]) > self.rest_gyro
                    or abs(self.gyro_lp[i]) > self.bias_clip
                    or abs(a[i] - self.acc_lp[i]) > REST_ACC_G):
                rest = False
        self.rest_n = self.rest_n + 1 if rest else 0
        at_rest = self.rest_n >= self.rest_min
        if at_rest:
            self.bias_n = min(self.bias_n + 1, self.bias_max)
            for i in range(3):
                self.bias[i] += (g[i] - self.bias[i]) / self.bias_n

        w = [g[i] - self.bias[i] for i in range(3)]
        u = self.u
        dt = self.dt
        c = [u[1] * w[2] - u[2] * w[1], u[2] * w[0] - u[0] * w[2], u[0] * w[1] - u[1] * w[0]]
        u = [u[i] + c[i] * dt for i in range(3)]
        self.yaw -= (w[0] * u[0] + w[1] * u[1] + w[2] * u[2]) * dt

        dev = abs(norm - 1.0)
        if dev <= W_FULL_G:
            weight = 1.0
        elif dev >= W_ZERO_G:
            weight = 0.0
        else:
            weight = (W_ZERO_G - dev) / (W_ZERO_G - W_FULL_G)
        k = (self.k_rest if at_rest else self.k_motion) * weight
        u = [u[i] + k * (a[i] - u[i]) for i in range(3)]
        n = math.sqrt(u[0] * u[0] + u[1] * u[1] + u[2] * u[2])
        self.u = [u[0] / n, u[1] / n, u[2] / n]


class NaivePosture:
    def __init__(self, orient):
        self.f = orient
        self.x_n = [1.0, 0.0, 0.0]
        self.y_n = [0.0, 1.0, 0.0]
        self.z_n = [0.0, 0.0, 1.0]
        self.yaw0 = 0.0
        self.flexion_cd = 0
        self.lateral_cd = 0
        self.rotation_cd = 0

    def set_neutral(self, u0):
        n = math.sqrt(sum(v * v for v in u0))
        z = [v / n for v in u0]
        x = [1.0 - z[0] * z[0], -z[0] * z[1], -z[0] * z[2]]
        m = math.sqrt(sum(v * v for v in x))
        x = [v / m for v in x]
        self.x_n = x
        self.z_n = z
        self.y_n = [z[1] * x[2] - z[2] * x[1], z[2] * x[0] - z[0] * x[2],
                    z[0] * x[1] - z[1] * x[0]]
        self.yaw0 = self.f.yaw

    def update(self):
        u = self.f.u
        px = sum(u[i] * self.x_n[i] for i in range(3))
        py = sum(u[i] * self.y_n[i] for i in range(3))
        pz = sum(u[i] * self.z_n[i] for i in range(3))
        self.flexion_cd = round(math.degrees(math.atan2(-px, math.sqrt(py * py + pz * pz))) * 100)
        self.lateral_cd = round(math.degrees(math.atan2(py, pz)) * 100)
        r = math.degrees(self.f.yaw - self.yaw0)
        r = (r + 180.0) % 360.0 - 180.0
        self.rotation_cd = round(r * 100)
