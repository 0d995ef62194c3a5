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
from typing import Any

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
        # White noise is made from the raw 64-bit words of this stream (see _add_noise).
        self._noise_bits = np.random.PCG64DXSM(np.random.SeedSequence([seed, 12]))
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
        # The error path runs in single precision when the output is quantised: float32's
        # relative error of 6e-8 is under 0.004 LSB even at full scale, so rounding to the LSB
        # swamps it. Unquantised output keeps double precision, so integrating it stays exact.
        self._work: type[np.floating[Any]] = np.float32 if c.quantize else np.float64
        wd = self._work
        bandwidth = 0.5 * c.rate_hz  # white noise spread over the whole Nyquist band
        self._noise_sd = np.concatenate(
            (
                np.full(3, c.accel_noise_ug_rthz * 1e-6 * GRAVITY * math.sqrt(bandwidth)),
                np.full(3, math.radians(c.gyro_noise_dps_rthz) * math.sqrt(bandwidth)),
            )
        )
        self._noise_sd_w = self._noise_sd.astype(np.float32)[:, None]
        self._walk_sd = np.concatenate(
            (
                np.full(3, c.accel_bias_walk_mg_rts * mg),
                np.full(3, math.radians(c.gyro_bias_walk_dps_rts)),
            )
        )
        self._matrix = np.zeros((6, 6))
        self._matrix[:3, :3] = self._errors.accel_matrix
        self._matrix[3:, 3:] = self._errors.gyro_matrix
        self._matrix_w = self._matrix.astype(wd)
        self._counts_per_si = np.array([1.0 / ACCEL_SI_PER_LSB] * 3 + [1.0 / GYRO_SI_PER_LSB] * 3)
        self._counts_per_si_w: NDArray[Any] = self._counts_per_si.astype(wd)[:, None]
        self._si_max = 32767.0 / self._counts_per_si[:, None]
        self._si_min = -32768.0 / self._counts_per_si[:, None]
        self._temp_a = math.exp(-1.0 / c.temp_tau_s)  # per one-second knot
        self._bias_const = np.concatenate((self._errors.accel_bias, self._errors.gyro_bias))
        self._bias_temp = np.concatenate((self._errors.accel_temp, self._errors.gyro_temp))
        # Slow state at whole seconds: temperature and bias random walk (accel xyz, gyro xyz).
        self._knot_first: int | None = None
        self._knot_temp = np.zeros(0)
        self._knot_walk = np.zeros((6, 0))
        self._temp_knots = np.zeros(0)
        self._temp_slopes = np.zeros(0)
        self._bias_knots = np.zeros((6, 0), dtype=self._work)
        self._bias_slopes = np.zeros((6, 0), dtype=self._work)
        self._q_prev: FloatArray | None = None  # sensor quaternion of the last sample
        self._qh_prev: FloatArray | None = None  # head quaternion of the last sample
        self._up_prev = np.zeros(3)
        # Scratch rows reused by every block.
        self._qbuf = np.empty((4, _BLOCK + 1))
        self._qrows = np.empty((4, _BLOCK))
        self._meas = np.empty((6, _BLOCK), dtype=wd)
        self._halves = np.zeros((6, _NOISE_SAMPLES), dtype=np.uint32)
        self._noise_used = 0  # samples of the noise stream used (or skipped) so far
        self._noise_fetched = 0  # fetches of _NOISE_SAMPLES samples made from the generator
        self._ints = np.empty((6, _BLOCK), dtype=np.int32)
        self._uniform = np.empty((6, _BLOCK), dtype=np.float32)
        self._wave = np.empty((3, _BLOCK), dtype=np.float32)
        self._force = np.empty((3, 1))
        self._still_up: FloatArray | None = None  # the up vector _force and _one_meas are for
        self._one_meas = np.empty((6, 1), dtype=wd)
        self._temp_counts = np.empty(_BLOCK)

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
        if n > 1 and bool((times[1:] < times[:-1]).any()):
            raise ValueError("sensor input must move forward in time")
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
            gyro_true=np.zeros((3, n)).T,  # zero-filled pages: still blocks leave them as they are
            accel_true=np.empty((3, n)).T,
            temp_c=np.empty(n),
        )
        if n:
            self._extend_knots(times, wear)
        b0 = 0
        while b0 < n:
            # A block also ends where the fetched noise does, so that it never straddles two.
            left = _NOISE_SAMPLES - self._noise_used % _NOISE_SAMPLES
            b1 = min(n, b0 + _BLOCK, b0 + left)
            self._block(out, b0, b1, qh[b0:b1], None if lin is None else lin[b0:b1])
            b0 = b1
        return out

    def skip(
        self,
        t: ArrayLike,
        q_head: ArrayLike,
        worn: ArrayLike | None = None,
    ) -> None:
        """Move the sensor's state over these samples without working out its output.

        Afterwards the model is exactly where `process` on the same input would have left it
        (slow state, noise stream, last orientation), so work on one stream can be shared out:
        one model processes a span while another skips it, and the output of both matches one
        model processing everything.
        """
        times = np.asarray(t, dtype=np.float64)
        qh = rotation.as_quat(q_head)
        n = times.size
        if qh.shape != (n, 4):
            raise ValueError(f"q_head must have shape ({n}, 4), got {qh.shape}")
        if n == 0:
            return
        wear = np.ones(n, dtype=bool) if worn is None else np.asarray(worn, dtype=bool)
        if n > 1 and bool((times[1:] < times[:-1]).any()):
            raise ValueError("sensor input must move forward in time")
        self._extend_knots(times, wear)
        self._noise_used += n
        last = np.empty((4, 1))
        self._sensor_quat(qh[-1:], last)
        self._q_prev = last[:, 0].copy()
        self._qh_prev = qh[-1].copy()
        w, x, y, z = self._q_prev
        self._up_prev = np.array([(x * z - w * y) * 2.0, (y * z + w * x) * 2.0,
                                  (x * x + y * y) * -2.0 + 1.0])

    def _block(
        self,
        out: ImuSamples,
        b0: int,
        b1: int,
        qh: FloatArray,
        lin: FloatArray | None,
    ) -> None:
        # Components are handled as rows of (k, n) arrays: contiguous rows are much faster
        # than the strided columns of (n, k).
        n = b1 - b0
        up = out.up.T[:, b0:b1]
        gyro_true = out.gyro_true.T[:, b0:b1]
        accel_true = out.accel_true.T[:, b0:b1]
        meas = self._meas[:, :n]
        # Integer view: a cheaper test for "any non-zero" (a -0.0 merely takes the long way).
        moves = lin is not None and bool(lin.view(np.int64).any())
        still = self._qh_prev is not None and bool((qh == self._qh_prev).all())
        self._qh_prev = qh[-1].copy()
        if still and not moves:
            # The device lies still (on a table, say): no rotation, the same specific force.
            # One sample is worked out and repeated; the general path would compute exactly
            # these numbers, only slower.
            if self._still_up is not self._up_prev:  # the same up vector as last time?
                np.multiply(self._up_prev[:, None], GRAVITY, out=self._force)
                self._apply_matrix(self._force, np.zeros((3, 1)), self._one_meas)
                self._still_up = self._up_prev
            up[:] = self._up_prev[:, None]
            accel_true[:] = self._force
            meas[:] = self._one_meas
        else:
            if still:
                gyro_true[:] = 0.0
                up[:] = self._up_prev[:, None]
                q = self._q_prev[:, None]  # type: ignore[index]
            else:
                q = self._rates(qh, gyro_true)
                w, x, y, z = q
                np.multiply(x, z, out=up[0])
                up[0] -= w * y
                up[0] *= 2.0
                np.multiply(y, z, out=up[1])
                up[1] += w * x
                up[1] *= 2.0
                np.multiply(x, x, out=up[2])
                up[2] += y * y
                up[2] *= -2.0
                up[2] += 1.0
                self._up_prev = up[:, -1].copy()
            np.multiply(up, GRAVITY, out=accel_true)
            if moves:
                accel_true += _rotate_inverse_rows(q, lin.T)  # type: ignore[union-attr]
            self._apply_matrix(accel_true, gyro_true, meas)
        temp = out.temp_c[b0:b1]
        self._add_bias(out.t[b0:b1], meas, temp)
        self._add_noise(meas)

        raw = (out.raw_accel.T[:, b0:b1], out.raw_gyro.T[:, b0:b1])
        si = (out.accel.T[:, b0:b1], out.gyro.T[:, b0:b1])
        if not self.config.quantize:
            np.clip(meas[:3], self._si_min[:3], self._si_max[:3], out=si[0])
            np.clip(meas[3:], self._si_min[3:], self._si_max[3:], out=si[1])
        meas *= self._counts_per_si_w
        np.rint(meas, out=meas)
        np.clip(meas, -32768.0, 32767.0, out=meas)
        np.copyto(raw[0], meas[:3], casting="unsafe")
        np.copyto(raw[1], meas[3:], casting="unsafe")
        if self.config.quantize:
            np.multiply(raw[0], ACCEL_SI_PER_LSB, out=si[0])
            np.multiply(raw[1], GYRO_SI_PER_LSB, out=si[1])
        counts = self._temp_counts[:n]
        np.subtract(temp, TEMP_OFFSET_C, out=counts)
        counts *= TEMP_LSB_PER_C
        np.rint(counts, out=counts)
        np.clip(counts, -32768.0, 32767.0, out=counts)
        np.copyto(out.raw_temp[b0:b1], counts, casting="unsafe")

    def _apply_matrix(self, accel: FloatArray, gyro: FloatArray,
                      meas: NDArray[np.floating[Any]]) -> None:
        """meas (6, k) = scale-and-misalignment matrices times the error-free signals (3, k).

        Written out term by term: a BLAS product may round differently depending on where a
        sample sits in a block, and the still path above must match the general one exactly.
        """
        m = self._matrix_w
        for k, src in ((0, accel.astype(self._work)), (3, gyro.astype(self._work))):
            for r in range(k, k + 3):
                row = meas[r]
                np.multiply(src[0], m[r, k], out=row)
                row += src[1] * m[r, k + 1]
                row += src[2] * m[r, k + 2]

    def _sensor_quat(self, qh: FloatArray, out: FloatArray) -> None:
        """q_sensor = q_head ⊗ mount for head quaternions (n, 4), written as rows (4, n).

        Term by term rather than as a matrix product: BLAS may round a sample differently
        depending on where it sits in a block, and `skip` relies on getting the same bits.
        """
        m = self._mount_right
        rows = self._qrows[:, : qh.shape[0]]
        np.copyto(rows, qh.T)
        for r in range(4):
            row = out[r]
            np.multiply(rows[0], m[r, 0], out=row)
            for c in range(1, 4):
                if m[r, c] != 0.0:
                    row += rows[c] * m[r, c]

    def _rates(self, qh: FloatArray, gyro: FloatArray) -> FloatArray:
        """Sensor quaternions (4, n) of the block; writes the body rates into `gyro` (3, n).

        The rate of sample k comes from dq = q_(k-1)* ⊗ q_k, so it needs the block's previous
        sample: column 0 of the scratch array holds it.
        """
        n = qh.shape[0]
        buf = self._qbuf[:, : n + 1]
        self._sensor_quat(qh, buf[:, 1:])
        first = self._q_prev is None
        buf[:, 0] = buf[:, 1] if self._q_prev is None else self._q_prev
        self._q_prev = buf[:, -1].copy()
        pw, px, py, pz = buf[:, :n]
        q = buf[:, 1:]
        w, x, y, z = q
        # dq = conj(q_prev) ⊗ q, the rotation over one sample in the body frame.
        dw = pw * w
        dw += px * x
        dw += py * y
        dw += pz * z
        gx, gy, gz = gyro
        np.multiply(pw, x, out=gx)
        gx -= px * w
        gx -= py * z
        gx += pz * y
        np.multiply(pw, y, out=gy)
        gy += px * z
        gy -= py * w
        gy -= pz * x
        np.multiply(pw, z, out=gz)
        gz -= px * y
        gz += py * x
        gz -= pz * w
        gyro *= _rotvec_scale(dw, gyro) * self.config.rate_hz
        if first and n > 1:
            gyro[:, 0] = gyro[:, 1]  # nothing precedes the very first sample
        return q

    def _add_noise(self, meas: NDArray[np.floating[Any]]) -> None:
        """Add white noise to the (6, n) measurement, in time order whatever the blocking.

        Raw 64-bit words are fetched for _NOISE_SAMPLES samples at a time and read as 32-bit
        halves, six per sample (one row per channel), so that samples take them in time order.
        The top 24 bits of each make a uniform: three radii and three angles per sample. By the
        Box–Muller transform each radius-angle pair gives one accelerometer and one gyro normal
        deviate (cosine and sine). This is exact Gaussian noise (to float32 resolution, tails
        cut at 5.8 SD) at a fraction of the cost of the generator's own normal sampler.
        """
        n = meas.shape[1]
        fetch, pos = divmod(self._noise_used, _NOISE_SAMPLES)
        if fetch >= self._noise_fetched:
            bits = self._noise_bits
            bits.advance(3 * _NOISE_SAMPLES * (fetch - self._noise_fetched))  # skipped spans
            words = bits.random_raw(3 * _NOISE_SAMPLES).astype("<u8", copy=False)
            # As little-endian 32-bit halves on every platform, stored by channel.
            self._halves = words.view("<u4").reshape(6, _NOISE_SAMPLES)
            self._noise_fetched = fetch + 1
        self._noise_used += n
        ints = self._ints[:, :n]
        np.right_shift(self._halves[:, pos : pos + n], 8, out=ints.view(np.uint32))
        uniform = self._uniform[:, :n]
        np.copyto(uniform, ints, casting="unsafe")
        radius = uniform[:3]
        angle = uniform[3:]
        radius += 1.0
        radius *= _TWO_M24  # uniform on (0, 1]
        np.log(radius, out=radius)
        radius *= -2.0
        np.sqrt(radius, out=radius)
        angle *= _TWO_PI_M24  # uniform on [0, 2π)
        wave = self._wave[:, :n]
        sd = self._noise_sd_w
        np.cos(angle, out=wave)
        wave *= radius
        wave *= sd[:3]
        meas[:3] += wave
        np.sin(angle, out=wave)
        wave *= radius
        wave *= sd[3:]
        meas[3:] += wave

    def _extend_knots(self, t: FloatArray, worn: NDArray[np.bool_]) -> None:
        """Make the slow state's knots up to the second after `t[-1]`; drop those before t[0].

        Temperature and bias change over minutes, so they are stepped once per whole second
        and interpolated: the temperature relaxes toward the skin (worn) or the room (off the
        neck), the bias is constant + random walk + temperature coefficient. Knots are made in
        time order, each from the samples of its own second, so block boundaries change
        nothing. This runs once per `process` call; the blocks only interpolate.
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
            self._knot_first = first + drop
        # Values and slopes per knot, in the precision the blocks add them in.
        knots = np.empty((7, self._knot_temp.size))
        knots[0] = self._knot_temp
        knots[1:] = (
            self._bias_const[:, None]
            + self._bias_temp[:, None] * (self._knot_temp - c.temp_ref_c)
            + self._knot_walk
        )
        bias = knots[1:].astype(self._work)
        self._temp_knots = knots[0]
        self._temp_slopes = np.diff(knots[0], append=knots[0, -1])
        self._bias_knots = bias
        self._bias_slopes = np.diff(bias, axis=1, append=bias[:, -1:])

    def _add_bias(self, t: FloatArray, meas: NDArray[np.floating[Any]], temp: FloatArray) -> None:
        """Write the die temperature into `temp` and add the total bias to `meas` (6, n).

        Linear interpolation between the one-second knots, by hand: every channel shares the
        knot index and fraction, and repeating knots over their samples is several times
        cheaper than np.interp per channel. Times increase, so the samples of one knot are
        consecutive.
        """
        assert self._knot_first is not None
        pos = t - self._knot_first
        idx = pos.astype(np.intp)  # t >= the first knot, so this is the floor
        frac = pos - idx
        lo = int(idx[0])
        hi = int(idx[-1]) + 1
        counts = np.diff(np.searchsorted(idx, np.arange(lo, hi + 1)))
        np.multiply(np.repeat(self._temp_slopes[lo:hi], counts), frac, out=temp)
        temp += np.repeat(self._temp_knots[lo:hi], counts)
        ramp = np.repeat(self._bias_slopes[:, lo:hi], counts, axis=1)
        ramp *= frac.astype(self._work)
        ramp += np.repeat(self._bias_knots[:, lo:hi], counts, axis=1)
        meas += ramp

    def _room(self, t: FloatArray) -> FloatArray:
        """Room temperature with a 1.5 °C daily swing, warmest mid-afternoon."""
        phase = 2.0 * math.pi * ((t / 86400.0) % 1.0 - 9.0 / 24.0)
        return self.config.ambient_c + 1.5 * np.sin(phase)

    def _target_temp(self, t: float, worn: bool) -> float:
        return self.config.skin_c if worn else float(self._room(np.array([t]))[0])


_BLOCK = 8192
_NOISE_SAMPLES = 8 * _BLOCK  # samples per fetch of raw noise words
_TWO_M24 = np.float32(2.0**-24)
_TWO_PI_M24 = np.float32(2.0 * math.pi * 2.0**-24)


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
    s = v[0] * v[0]
    s += v[1] * v[1]
    s += v[2] * v[2]
    np.sqrt(s, out=s)
    # angle/s with angle = 2·atan2(s, |w|), signed by w to take the short way. At s = 0 the
    # vector part is zero too, so any finite factor gives the right (zero) rate.
    scale = np.arctan2(s, np.abs(w))
    np.maximum(s, 1e-300, out=s)
    scale /= s
    scale *= 2.0
    return np.copysign(scale, w, out=scale)


def _error_matrix(rng: np.random.Generator, scale_sd: float, misalign_sd: float) -> FloatArray:
    """I + scale errors on the diagonal + small cross-axis couplings off it."""
    m = np.eye(3) + np.diag(rng.standard_normal(3) * scale_sd)
    off = rng.standard_normal((3, 3)) * misalign_sd
    np.fill_diagonal(off, 0.0)
    return m + off
