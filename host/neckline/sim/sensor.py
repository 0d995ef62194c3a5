"""An MPU-6050 on the back of the neck: what it would report for a given head motion.

Frames: the head frame (x forward, y left, z up at neutral) and the sensor frame, related by a
fixed mounting rotation. Nominally the board lies flat on the back of the neck with its x axis
up, y axis left and z axis pointing backwards out of the skin; `mount_offset_deg` tilts it away
from that (the back of the neck leans forward, straps sit askew).

Signals: gyro = body angular rate in the sensor frame, the mean rate over the interval ending at
each sample (from successive quaternions), so that integrating q_k = q_(k-1) ⊗ exp(ω_k·dt/2)
reproduces the orientation exactly; accel = specific force (linear acceleration minus gravity)
in the sensor frame, +1 g along "up" at rest.

Errors, applied in this order: axis misalignment and scale factor, bias (constant turn-on bias +
random walk + temperature coefficient), white noise, range clipping, quantisation to int16 at
±2 g (16384 LSB/g) and ±250 °/s (131 LSB/(°/s)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.signal import lfilter

from neckline.sim import rotation
from neckline.sim.render import TraceChunk

FloatArray = NDArray[np.float64]
Int16Array = NDArray[np.int16]

GRAVITY = 9.80665  # m/s² per g, as the MPU-6050 datasheet scales it
ACCEL_LSB_PER_G = 16384.0
GYRO_LSB_PER_DPS = 131.0
ACCEL_SI_PER_LSB = GRAVITY / ACCEL_LSB_PER_G  # m/s² per LSB
GYRO_SI_PER_LSB = math.radians(1.0) / GYRO_LSB_PER_DPS  # rad/s per LSB
TEMP_LSB_PER_C = 340.0
TEMP_OFFSET_C = 36.53

# Columns: sensor x, y, z expressed in the head frame.
NOMINAL_MOUNT = np.array(
    [
        [0.0, 0.0, -1.0],
        [0.0, 1.0, 0.0],
        [1.0, 0.0, 0.0],
    ]
)
NOMINAL_FORWARD_SENSOR = (0.0, 0.0, -1.0)  # head forward (+x) in sensor coordinates


@dataclass(frozen=True)
class SensorConfig:
    """Error model; the defaults are typical of a hobby MPU-6050 breakout, not its worst case."""

    rate_hz: float = 100.0
    mount_offset_deg: tuple[float, float, float] = (3.0, 20.0, 0.0)  # rotation vector, sensor axes
    gyro_noise_dps_rthz: float = 0.005
    accel_noise_ug_rthz: float = 400.0
    gyro_bias_dps: float = 2.0  # standard deviation of the constant bias per axis
    accel_bias_mg: float = 20.0
    gyro_bias_walk_dps_rts: float = 0.002  # random walk of the bias, per √s
    accel_bias_walk_mg_rts: float = 0.02
    gyro_scale_sd: float = 0.01  # scale-factor error, relative
    accel_scale_sd: float = 0.01
    misalignment_sd: float = 0.005  # cross-axis terms, radians
    gyro_temp_dps_per_c: float = 0.03  # standard deviation of the bias temperature coefficient
    accel_temp_mg_per_c: float = 0.3
    temp_ref_c: float = 25.0
    ambient_c: float = 21.0
    skin_c: float = 32.5
    temp_tau_s: float = 480.0
    quantize: bool = True

    def __post_init__(self) -> None:
        if not self.rate_hz > 0:
            raise ValueError("rate_hz must be positive")
        if not self.temp_tau_s > 0:
            raise ValueError("temp_tau_s must be positive")

    @classmethod
    def ideal(cls, rate_hz: float = 100.0, quantize: bool = True,
              mount_offset_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> SensorConfig:
        """No noise, bias, scale, misalignment or temperature error: only range and LSB remain."""
        return cls(
            rate_hz=rate_hz,
            mount_offset_deg=mount_offset_deg,
            gyro_noise_dps_rthz=0.0,
            accel_noise_ug_rthz=0.0,
            gyro_bias_dps=0.0,
            accel_bias_mg=0.0,
            gyro_bias_walk_dps_rts=0.0,
            accel_bias_walk_mg_rts=0.0,
            gyro_scale_sd=0.0,
            accel_scale_sd=0.0,
            misalignment_sd=0.0,
            gyro_temp_dps_per_c=0.0,
            accel_temp_mg_per_c=0.0,
            quantize=quantize,
        )

    def with_rate(self, rate_hz: float) -> SensorConfig:
        return replace(self, rate_hz=rate_hz)


def mount_quaternion(offset_deg: ArrayLike = (0.0, 0.0, 0.0)) -> FloatArray:
    """Sensor-to-head rotation: the nominal mounting followed by an offset in sensor axes."""
    nominal = rotation.from_matrix(NOMINAL_MOUNT)
    offset = rotation.from_rotvec(np.radians(np.asarray(offset_deg, dtype=np.float64)))
    return rotation.normalize(rotation.multiply(nominal, offset))


def accel_to_raw(accel_ms2: ArrayLike) -> Int16Array:
    """m/s² to MPU-6050 ±2 g register counts, saturating like the chip."""
    counts = np.rint(np.asarray(accel_ms2, dtype=np.float64) / ACCEL_SI_PER_LSB)
    return np.clip(counts, -32768, 32767).astype(np.int16)


def gyro_to_raw(gyro_rad_s: ArrayLike) -> Int16Array:
    """rad/s to MPU-6050 ±250 °/s register counts, saturating like the chip."""
    counts = np.rint(np.asarray(gyro_rad_s, dtype=np.float64) / GYRO_SI_PER_LSB)
    return np.clip(counts, -32768, 32767).astype(np.int16)


def raw_to_accel(raw: ArrayLike) -> FloatArray:
    return np.asarray(raw, dtype=np.float64) * ACCEL_SI_PER_LSB


def raw_to_gyro(raw: ArrayLike) -> FloatArray:
    return np.asarray(raw, dtype=np.float64) * GYRO_SI_PER_LSB


def temp_to_raw(temp_c: ArrayLike) -> Int16Array:
    counts = np.rint((np.asarray(temp_c, dtype=np.float64) - TEMP_OFFSET_C) * TEMP_LSB_PER_C)
    return np.clip(counts, -32768, 32767).astype(np.int16)


@dataclass(frozen=True)
class ImuSamples:
    """One block of sensor output. Vectors are (n, 3) in the sensor frame."""

    t: FloatArray  # seconds since the start of the simulation
    raw_accel: Int16Array  # register counts ax, ay, az
    raw_gyro: Int16Array  # register counts gx, gy, gz
    raw_temp: Int16Array
    accel: FloatArray  # m/s², what the firmware sees (raw scaled back when quantised)
    gyro: FloatArray  # rad/s
    up: FloatArray  # true unit "up" vector in the sensor frame, for scoring
    gyro_true: FloatArray  # error-free angular rate, rad/s
    accel_true: FloatArray  # error-free specific force, m/s²
    temp_c: FloatArray

    def __len__(self) -> int:
        return int(self.t.size)

    @property
    def ax(self) -> Int16Array:
        return self.raw_accel[:, 0]

    @property
    def ay(self) -> Int16Array:
        return self.raw_accel[:, 1]

    @property
    def az(self) -> Int16Array:
        return self.raw_accel[:, 2]

    @property
    def gx(self) -> Int16Array:
        return self.raw_gyro[:, 0]

    @property
    def gy(self) -> Int16Array:
        return self.raw_gyro[:, 1]

    @property
    def gz(self) -> Int16Array:
        return self.raw_gyro[:, 2]

    def register_bytes(self) -> bytes:
        """The 14-byte ACCEL_XOUT_H..GYRO_ZOUT_L burst per sample, big-endian, as the chip sends."""
        block = np.empty((len(self), 7), dtype=">i2")
        block[:, 0:3] = self.raw_accel
        block[:, 3] = self.raw_temp
        block[:, 4:7] = self.raw_gyro
        return block.tobytes()


@dataclass(frozen=True)
class _Errors:
    """The unit's own errors, drawn once from the seed."""

    accel_matrix: FloatArray
    gyro_matrix: FloatArray
    accel_bias: FloatArray
    gyro_bias: FloatArray
    accel_temp: FloatArray
    gyro_temp: FloatArray


class ImuModel:
    """A seeded, stateful sensor: feed it consecutive blocks of head orientation."""

    def __init__(self, seed: int, config: SensorConfig | None = None) -> None:
        self.config = config or SensorConfig()
        c = self.config
        rng = np.random.default_rng([seed, 11])
        self._noise_rng = np.random.default_rng([seed, 12])
        self._walk_rng = np.random.default_rng([seed, 13])
        self.mount = mount_quaternion(c.mount_offset_deg)
        self._mount_right = _right_multiplication(self.mount)
        mg = GRAVITY / 1000.0
        self._errors = _Errors(
            accel_matrix=_error_matrix(rng, c.accel_scale_sd, c.misalignment_sd),
            gyro_matrix=_error_matrix(rng, c.gyro_scale_sd, c.misalignment_sd),
            accel_bias=rng.standard_normal(3) * c.accel_bias_mg * mg,
            gyro_bias=np.radians(rng.standard_normal(3) * c.gyro_bias_dps),
            accel_temp=rng.standard_normal(3) * c.accel_temp_mg_per_c * mg,
            gyro_temp=np.radians(rng.standard_normal(3) * c.gyro_temp_dps_per_c),
        )
        bandwidth = 0.5 * c.rate_hz  # white noise spread over the whole Nyquist band
        self._noise_sd = np.concatenate(
            (
                np.full(3, c.accel_noise_ug_rthz * 1e-6 * GRAVITY * math.sqrt(bandwidth)),
                np.full(3, math.radians(c.gyro_noise_dps_rthz) * math.sqrt(bandwidth)),
            )
        )
        self._walk_sd = np.concatenate(
            (
                np.full(3, c.accel_bias_walk_mg_rts * mg),
                np.full(3, math.radians(c.gyro_bias_walk_dps_rts)),
            )
        )
        self._temp_a = math.exp(-1.0 / c.temp_tau_s)  # per one-second knot
        self._bias_const = np.concatenate((self._errors.accel_bias, self._errors.gyro_bias))
        self._bias_temp = np.concatenate((self._errors.accel_temp, self._errors.gyro_temp))
        # Slow state at whole seconds: temperature and bias random walk (accel xyz, gyro xyz).
        self._knot_first: int | None = None
        self._knot_temp = np.zeros(0)
        self._knot_walk = np.zeros((6, 0))
        self._q_prev: FloatArray | None = None

    @property
    def gyro_bias(self) -> FloatArray:
        """The constant part of the gyro bias, rad/s (for tests and filter scoring)."""
        return self._errors.gyro_bias.copy()

    def process_chunk(self, chunk: TraceChunk) -> ImuSamples:
        if not math.isclose(chunk.rate_hz, self.config.rate_hz):
            raise ValueError(
                f"trace is at {chunk.rate_hz} Hz but the sensor samples at {self.config.rate_hz} Hz"
            )
        return self.process(chunk.t, chunk.q, chunk.lin_acc, chunk.worn)

    def process(
        self,
        t: ArrayLike,
        q_head: ArrayLike,
        lin_acc_world: ArrayLike | None = None,
        worn: ArrayLike | None = None,
    ) -> ImuSamples:
        """Sensor output for consecutive head orientations sampled at `config.rate_hz`.

        `lin_acc_world` is the head's linear acceleration in the neutral frame (m/s², gravity
        excluded); `worn` drives the temperature (skin versus room).
        """
        times = np.asarray(t, dtype=np.float64)
        qh = rotation.as_quat(q_head)
        n = times.size
        if qh.shape != (n, 4):
            raise ValueError(f"q_head must have shape ({n}, 4), got {qh.shape}")
        lin = None if lin_acc_world is None else np.asarray(lin_acc_world, dtype=np.float64)
        if lin is not None and lin.shape != (n, 3):
            raise ValueError(f"lin_acc_world must have shape ({n}, 3), got {lin.shape}")
        wear = np.ones(n, dtype=bool) if worn is None else np.asarray(worn, dtype=bool)
        # Vectors are stored as rows of (3, n) arrays and exposed as (n, 3) views: the block
        # computations below work on contiguous rows.
        out = ImuSamples(
            t=times,
            raw_accel=np.empty((3, n), dtype=np.int16).T,
            raw_gyro=np.empty((3, n), dtype=np.int16).T,
            raw_temp=np.empty(n, dtype=np.int16),
            accel=np.empty((3, n)).T,
            gyro=np.empty((3, n)).T,
            up=np.empty((3, n)).T,
            gyro_true=np.empty((3, n)).T,
            accel_true=np.empty((3, n)).T,
            temp_c=np.empty(n),
        )
        for b0 in range(0, n, _BLOCK):
            b1 = min(n, b0 + _BLOCK)
            self._block(out, b0, b1, qh[b0:b1], None if lin is None else lin[b0:b1],
                        wear[b0:b1])
        return out

    def _block(
        self,
        out: ImuSamples,
        b0: int,
        b1: int,
        qh: FloatArray,
        lin: FloatArray | None,
        worn: NDArray[np.bool_],
    ) -> None:
        # Components are handled as rows of (k, n) arrays: contiguous rows are much faster
        # than the strided columns of (n, k).
        q = (qh @ self._mount_right.T).T.copy()  # q_sensor = q_head ⊗ mount, a linear map
        w, x, y, z = q
        first = self._q_prev is None
        p = q[:, :1] if self._q_prev is None else self._q_prev[:, None]
        pw = np.concatenate((p[0], w[:-1]))
        px = np.concatenate((p[1], x[:-1]))
        py = np.concatenate((p[2], y[:-1]))
        pz = np.concatenate((p[3], z[:-1]))
        self._q_prev = q[:, -1].copy()
        # dq = conj(q_prev) ⊗ q, the rotation over one sample in the body frame.
        dw = pw * w + px * x + py * y + pz * z
        dv = np.stack((pw * x - px * w - py * z + pz * y,
                       pw * y + px * z - py * w - pz * x,
                       pw * z - px * y + py * x - pz * w))
        gyro_true = dv * (_rotvec_scale(dw, dv) * self.config.rate_hz)
        if first and gyro_true.shape[1] > 1:
            gyro_true[:, 0] = gyro_true[:, 1]  # nothing precedes the very first sample

        up = np.stack((2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y)))
        accel_true = up * GRAVITY
        if lin is not None and lin.any():
            accel_true += _rotate_inverse_rows(q, lin.T)

        temp, bias = self._slow(out.t[b0:b1], worn)
        noise = self._noise_rng.standard_normal((b1 - b0, 6)).T * self._noise_sd[:, None]
        e = self._errors
        accel = e.accel_matrix @ accel_true + bias[:3] + noise[:3]
        gyro = e.gyro_matrix @ gyro_true + bias[3:] + noise[3:]
        raw_accel = accel_to_raw(accel)
        raw_gyro = gyro_to_raw(gyro)
        if self.config.quantize:
            accel = raw_to_accel(raw_accel)
            gyro = raw_to_gyro(raw_gyro)
        else:
            accel = np.clip(accel, -32768 * ACCEL_SI_PER_LSB, 32767 * ACCEL_SI_PER_LSB)
            gyro = np.clip(gyro, -32768 * GYRO_SI_PER_LSB, 32767 * GYRO_SI_PER_LSB)
        out.raw_accel.T[:, b0:b1] = raw_accel
        out.raw_gyro.T[:, b0:b1] = raw_gyro
        out.raw_temp[b0:b1] = temp_to_raw(temp)
        out.accel.T[:, b0:b1] = accel
        out.gyro.T[:, b0:b1] = gyro
        out.up.T[:, b0:b1] = up
        out.gyro_true.T[:, b0:b1] = gyro_true
        out.accel_true.T[:, b0:b1] = accel_true
        out.temp_c[b0:b1] = temp

    def _slow(self, t: FloatArray, worn: NDArray[np.bool_]) -> tuple[FloatArray, FloatArray]:
        """Die temperature (n,) and total bias (6, n) in SI units for consecutive samples.

        Both change over minutes, so they are stepped once per whole second and interpolated:
        the temperature relaxes toward the skin (worn) or the room (off the neck), the bias is
        constant + random walk + temperature coefficient. Knots are made in time order, each
        from the samples of its own second, so block boundaries change nothing.
        """
        c = self.config
        if self._knot_first is None:
            self._knot_first = math.floor(t[0])
            self._knot_temp = np.array([self._target_temp(float(t[0]), bool(worn[0]))])
            self._knot_walk = np.zeros((6, 1))
        first = self._knot_first
        if t[0] < first:
            raise ValueError("sensor input must move forward in time")
        last = first + self._knot_temp.size - 1
        k_hi = math.floor(t[-1]) + 1
        if k_hi > last:
            seconds = np.arange(last, k_hi)
            at = np.minimum(np.searchsorted(t, seconds), t.size - 1)
            target = np.where(worn[at], c.skin_c, self._room(seconds.astype(np.float64)))
            a = self._temp_a
            new_temp, _ = lfilter([1.0 - a], [1.0, -a], target, zi=[a * self._knot_temp[-1]])
            steps = self._walk_rng.standard_normal((seconds.size, 6)).T * self._walk_sd[:, None]
            new_walk = self._knot_walk[:, -1:] + np.cumsum(steps, axis=1)
            self._knot_temp = np.concatenate((self._knot_temp, new_temp))
            self._knot_walk = np.concatenate((self._knot_walk, new_walk), axis=1)
        drop = math.floor(t[0]) - first
        if drop > 0:  # keep memory bounded on long runs
            self._knot_temp = self._knot_temp[drop:]
            self._knot_walk = self._knot_walk[:, drop:]
            first += drop
            self._knot_first = first

        knots = np.empty((7, self._knot_temp.size))
        knots[0] = self._knot_temp
        knots[1:] = (
            self._bias_const[:, None]
            + self._bias_temp[:, None] * (self._knot_temp - c.temp_ref_c)
            + self._knot_walk
        )
        times = first + np.arange(knots.shape[1], dtype=np.float64)
        values = np.empty((7, t.size))
        for ch in range(7):
            values[ch] = np.interp(t, times, knots[ch])
        return values[0], values[1:]

    def _room(self, t: FloatArray) -> FloatArray:
        """Room temperature with a 1.5 °C daily swing, warmest mid-afternoon."""
        phase = 2.0 * math.pi * ((t / 86400.0) % 1.0 - 9.0 / 24.0)
        return self.config.ambient_c + 1.5 * np.sin(phase)

    def _target_temp(self, t: float, worn: bool) -> float:
        return self.config.skin_c if worn else float(self._room(np.array([t]))[0])


_BLOCK = 8192


def _right_multiplication(m: FloatArray) -> FloatArray:
    """The 4x4 matrix M with q ⊗ m = M · q for every quaternion q."""
    return np.stack([rotation.multiply(e, m) for e in np.eye(4)], axis=1)


def _rotate_inverse_rows(q: FloatArray, v: FloatArray) -> FloatArray:
    """World vectors v (3, n) into the body frames of quaternions q (4, n): q* ⊗ v ⊗ q."""
    w, x, y, z = q
    # With u = -(x, y, z): t = 2·(u × v), result = v + w·t + u × t.
    tx = 2.0 * (z * v[1] - y * v[2])
    ty = 2.0 * (x * v[2] - z * v[0])
    tz = 2.0 * (y * v[0] - x * v[1])
    return np.stack((
        v[0] + w * tx - (y * tz - z * ty),
        v[1] + w * ty - (z * tx - x * tz),
        v[2] + w * tz - (x * ty - y * tx),
    ))


def _rotvec_scale(w: FloatArray, v: FloatArray) -> FloatArray:
    """Factor turning the vector part v of a quaternion into its rotation vector (short way)."""
    s = np.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
    sign = np.where(w < 0, -1.0, 1.0)
    aw = np.abs(w)
    safe = s > 1e-9
    # angle/s with angle = 2·atan2(s, |w|); near zero it tends to 2/|w| (error below 1e-18).
    return sign * np.where(safe, 2.0 * np.arctan2(s, aw) / np.where(safe, s, 1.0), 2.0 / aw)


def _error_matrix(rng: np.random.Generator, scale_sd: float, misalign_sd: float) -> FloatArray:
    """I + scale errors on the diagonal + small cross-axis couplings off it."""
    m = np.eye(3) + np.diag(rng.standard_normal(3) * scale_sd)
    off = rng.standard_normal((3, 3)) * misalign_sd
    np.fill_diagonal(off, 0.0)
    return m + off
