"""The simulated MPU-6050: kinematics, error model, registers."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime

import numpy as np
import pytest

from neckline.sim import (
    Activity,
    ImuModel,
    RenderConfig,
    Schedule,
    SensorConfig,
    mount_quaternion,
    render,
    rotation,
)
from neckline.sim.sensor import (
    ACCEL_SI_PER_LSB,
    GRAVITY,
    GYRO_SI_PER_LSB,
    accel_to_raw,
    gyro_to_raw,
    raw_to_accel,
    raw_to_gyro,
    temp_to_raw,
)
from neckline.sim.stream import simulate_imu

MONDAY = datetime(2026, 1, 5, tzinfo=UTC)
A = Activity
MOVING = [
    (40.0, A.DESK, True, 15.0, 0.2, 2.0, -5.0),
    (30.0, A.PHONE, True, 45.0, 0.0, -3.0, 4.0),
    (30.0, A.WALK, True, 8.0, 0.0, 0.0, 60.0),
    (30.0, A.TALK, True, 2.0, 0.0, 3.0, -40.0),
]


def _moving_trace() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    chunks = list(render(Schedule.from_rows(MONDAY, MOVING), 9))
    t = np.concatenate([c.t for c in chunks])
    q = np.concatenate([c.q for c in chunks])
    lin = np.concatenate([c.lin_acc for c in chunks])
    return t, q, lin


def _integrate(q0: np.ndarray, gyro: np.ndarray, dt: float) -> np.ndarray:
    """q_k = q_(k-1) ⊗ exp(ω_k·dt/2), in plain Python as a firmware would do it."""
    out = np.empty((gyro.shape[0], 4))
    w, x, y, z = (float(v) for v in q0)
    for k, (gx, gy, gz) in enumerate(gyro.tolist()):
        if k:
            angle = math.sqrt(gx * gx + gy * gy + gz * gz) * dt
            if angle > 0:
                s = math.sin(0.5 * angle) / (angle / dt)
                c = math.cos(0.5 * angle)
                bx, by, bz = gx * s, gy * s, gz * s
                w, x, y, z = (
                    w * c - x * bx - y * by - z * bz,
                    w * bx + x * c + y * bz - z * by,
                    w * by - x * bz + y * c + z * bx,
                    w * bz + x * by - y * bx + z * c,
                )
        out[k] = (w, x, y, z)
    return out


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    rel = rotation.multiply(rotation.conj(a), b)
    return np.degrees(2 * np.arctan2(np.linalg.norm(rel[:, 1:], axis=1), np.abs(rel[:, 0])))


@pytest.mark.parametrize("quantize", [False, True])
def test_gyro_integrates_back_to_the_orientation(quantize: bool) -> None:
    t, q, lin = _moving_trace()
    imu = ImuModel(1, SensorConfig.ideal(quantize=quantize, mount_offset_deg=(4.0, 15.0, -3.0)))
    out = imu.process(t, q, lin)
    q_sensor = rotation.multiply(q, imu.mount)
    est = _integrate(q_sensor[0], out.gyro, 0.01)
    err = _angle_deg(est, q_sensor)
    if quantize:
        assert err.max() < 0.05  # two minutes of 1/131 °/s rounding
    else:
        assert err.max() < 1e-6
    assert np.abs(out.gyro_true).max() > math.radians(20)  # the trace really moves


def test_accelerometer_at_rest_reads_gravity_in_the_sensor_frame() -> None:
    q_head = np.tile(rotation.from_posture(10.0, 30.0, -12.0), (200, 1))
    t = np.arange(200) / 100.0
    imu = ImuModel(2, SensorConfig.ideal(quantize=False, mount_offset_deg=(3.0, 20.0, 0.0)))
    out = imu.process(t, q_head)
    q_sensor = rotation.multiply(q_head[0], imu.mount)
    expected = rotation.rotate_inverse(q_sensor, [0.0, 0.0, GRAVITY])
    assert np.allclose(out.accel, expected, atol=1e-12)
    assert np.allclose(np.linalg.norm(out.accel, axis=1), GRAVITY)
    assert np.allclose(out.gyro, 0.0, atol=1e-12)
    assert np.allclose(out.up, expected / GRAVITY)


def test_nominal_mount_reads_one_g_on_x_at_neutral() -> None:
    imu = ImuModel(3, SensorConfig.ideal())
    out = imu.process(np.arange(5) / 100.0, np.tile([1.0, 0.0, 0.0, 0.0], (5, 1)))
    assert np.all(out.raw_accel == [16384, 0, 0])
    # Head forward is the sensor's -z: tipping the head forward rotates up toward +z.
    forward = np.tile(rotation.from_posture(0.0, 30.0, 0.0), (5, 1))
    out2 = ImuModel(3, SensorConfig.ideal()).process(np.arange(5) / 100.0, forward)
    assert out2.accel[0, 2] > 4.0
    q_mount = mount_quaternion()
    assert np.allclose(rotation.rotate(q_mount, [1.0, 0.0, 0.0]), [0.0, 0.0, 1.0])
    assert np.allclose(rotation.rotate(q_mount, [0.0, 0.0, 1.0]), [-1.0, 0.0, 0.0])


def test_register_scaling_quantisation_and_clipping() -> None:
    assert accel_to_raw([GRAVITY])[0] == 16384
    assert accel_to_raw([-GRAVITY / 2])[0] == -8192
    assert accel_to_raw([3 * GRAVITY, -3 * GRAVITY]).tolist() == [32767, -32768]
    assert gyro_to_raw([math.radians(1.0)])[0] == 131
    assert gyro_to_raw([math.radians(400.0), math.radians(-400.0)]).tolist() == [32767, -32768]
    assert accel_to_raw([0.4 * ACCEL_SI_PER_LSB, 0.6 * ACCEL_SI_PER_LSB]).tolist() == [0, 1]
    raw = np.arange(-32768, 32768, 97, dtype=np.int16)
    assert np.array_equal(accel_to_raw(raw_to_accel(raw)), raw)
    assert np.array_equal(gyro_to_raw(raw_to_gyro(raw)), raw)
    assert temp_to_raw([36.53])[0] == 0
    assert temp_to_raw([36.53 + 10.0])[0] == 3400


def test_fast_spin_saturates_the_gyro() -> None:
    n = 100
    t = np.arange(n) / 100.0
    q = rotation.axis_angle(2, np.radians(400.0) * t)  # 400 °/s about up
    out = ImuModel(4, SensorConfig.ideal()).process(t, q)
    assert np.all(out.raw_gyro[:, 0] == 32767)  # up is sensor x with the nominal mount
    assert np.allclose(out.gyro[:, 0], 32767 * GYRO_SI_PER_LSB)
    assert np.allclose(out.gyro_true[:, 0], math.radians(400.0))


def test_outputs_are_registers_scaled_back() -> None:
    t, q, lin = _moving_trace()
    out = ImuModel(5).process(t, q, lin)
    assert out.raw_accel.dtype == np.int16 and out.raw_gyro.dtype == np.int16
    assert np.array_equal(out.accel, out.raw_accel * ACCEL_SI_PER_LSB)
    assert np.array_equal(out.gyro, out.raw_gyro * GYRO_SI_PER_LSB)
    assert np.array_equal(out.ax, out.raw_accel[:, 0])
    assert np.array_equal(out.gz, out.raw_gyro[:, 2])
    blob = out.register_bytes()
    assert len(blob) == 14 * len(out)
    regs = np.frombuffer(blob, dtype=">i2").reshape(-1, 7)
    assert np.array_equal(regs[:, :3], out.raw_accel)
    assert np.array_equal(regs[:, 3], out.raw_temp)
    assert np.array_equal(regs[:, 4:], out.raw_gyro)


def test_error_model_bias_noise_and_temperature() -> None:
    cfg = SensorConfig(mount_offset_deg=(0.0, 0.0, 0.0))
    n = 60_000  # ten minutes at rest, worn
    t = np.arange(n) / 100.0
    q = np.tile([1.0, 0.0, 0.0, 0.0], (n, 1))
    imu = ImuModel(6, cfg)
    worn = t >= 300.0  # on the table for five minutes, then put on
    out = imu.process(t, q, worn=worn)
    # Mean gyro reading: the turn-on bias, plus a slow walk and a thermal drift of the order
    # of 0.3 °/s over the warm-up from room to skin temperature.
    assert np.allclose(out.gyro.mean(axis=0), imu.gyro_bias, atol=math.radians(0.8))
    assert np.abs(imu.gyro_bias).max() > math.radians(0.2)
    # White noise: density times the square root of the Nyquist band, within 25 %.
    expected = math.radians(cfg.gyro_noise_dps_rthz) * math.sqrt(50.0)
    residual = out.gyro - out.gyro_true
    high_pass = np.diff(residual[:6000], axis=0) / math.sqrt(2)
    assert np.allclose(high_pass.std(axis=0), expected, rtol=0.25)
    # Room temperature on the table, then the die warms toward skin temperature.
    assert 18.0 < out.temp_c[0] < 24.0
    assert np.ptp(out.temp_c[t < 300.0]) < 0.5
    assert out.temp_c[-1] > out.temp_c[29_999] + 4.0
    assert np.all(np.diff(out.temp_c[t >= 301.0]) >= 0)
    assert np.array_equal(out.raw_temp, temp_to_raw(out.temp_c))
    # Scale and misalignment: |accel| at rest is 1 g within a few percent, not exactly.
    norm = np.linalg.norm(out.accel, axis=1).mean()
    assert 0.95 * GRAVITY < norm < 1.05 * GRAVITY
    assert abs(norm - GRAVITY) > 1e-4


def test_same_seed_same_output_and_blocking_does_not_matter() -> None:
    t, q, lin = _moving_trace()
    a = ImuModel(8).process(t, q, lin)
    b = ImuModel(8)
    parts = [b.process(t[i:i + 1234], q[i:i + 1234], lin[i:i + 1234])
             for i in range(0, t.size, 1234)]
    for name in ("raw_accel", "raw_gyro", "raw_temp", "accel", "gyro", "temp_c"):
        joined = np.concatenate([getattr(p, name) for p in parts])
        assert np.allclose(getattr(a, name), joined, rtol=0, atol=1e-9), name
    c = ImuModel(9).process(t, q, lin)
    assert not np.array_equal(a.raw_gyro, c.raw_gyro)


def test_walking_shows_up_in_the_accelerometer() -> None:
    t, q, lin = _moving_trace()
    out = ImuModel(1, SensorConfig.ideal(quantize=False)).process(t, q, lin)
    walking = (t > 75) & (t < 95)
    desk = (t > 10) & (t < 35)
    dev_walk = np.abs(np.linalg.norm(out.accel[walking], axis=1) - GRAVITY).max()
    dev_desk = np.abs(np.linalg.norm(out.accel[desk], axis=1) - GRAVITY).max()
    assert dev_walk > 1.5
    assert dev_desk < 0.05


def test_stream_pairs_truth_with_samples() -> None:
    pairs = list(simulate_imu(3, MONDAY.replace(hour=9), 120.0,
                              RenderConfig(rate_hz=50.0, chunk_s=60.0)))
    assert len(pairs) == 2
    for chunk, samples in pairs:
        assert len(chunk) == len(samples) == 3000
        assert np.array_equal(chunk.t, samples.t)


def test_rejects_bad_input() -> None:
    imu = ImuModel(1)
    with pytest.raises(ValueError):
        imu.process(np.arange(3) / 100.0, np.zeros((2, 4)))
    chunk = next(render(Schedule.from_rows(MONDAY, MOVING), 1, RenderConfig(rate_hz=50.0)))
    with pytest.raises(ValueError, match="Hz"):
        imu.process_chunk(chunk)
    back = np.array([0.0, 0.01, 0.005, 0.02])
    still = np.tile([1.0, 0.0, 0.0, 0.0], (4, 1))
    for step in (imu.process, imu.skip):
        with pytest.raises(ValueError, match="forward in time"):
            step(back, still)
    with pytest.raises(ValueError, match="shape"):
        imu.skip(np.arange(3) / 100.0, np.zeros((2, 4)))


def test_skip_leaves_the_model_where_processing_would() -> None:
    # 20 minutes: on the table, put on, worn; long enough to cross a fetch of raw noise words.
    rows = [
        (300.0, A.BREAK, False, 5.0, 0.0, 0.0, 0.0),
        (600.0, A.DESK, True, 15.0, 0.02, 2.0, -5.0),
        (300.0, A.WALK, True, 8.0, 0.0, 0.0, 60.0),
    ]
    chunks = list(render(Schedule.from_rows(MONDAY, rows), 5, RenderConfig(chunk_s=400.0)))
    t = np.concatenate([c.t for c in chunks])
    q = np.concatenate([c.q for c in chunks])
    lin = np.concatenate([c.lin_acc for c in chunks])
    worn = np.concatenate([c.worn for c in chunks])
    whole = ImuModel(7).process(t, q, lin, worn)
    fields = ("raw_accel", "raw_gyro", "raw_temp", "accel", "gyro", "up", "gyro_true",
              "accel_true", "temp_c")
    cuts = [0, 25_000, 101_000, 102_234, t.size]  # the second skip crosses a fetch of noise
    for skipped in ((0, 2), (1, 3)):
        imu = ImuModel(7)
        for part, (a, b) in enumerate(itertools.pairwise(cuts)):
            if part in skipped:
                imu.skip(t[a:b], q[a:b], worn[a:b])
                continue
            out = imu.process(t[a:b], q[a:b], lin[a:b], worn[a:b])
            for name in fields:
                assert np.array_equal(getattr(out, name), getattr(whole, name)[a:b]), (part, name)
    assert np.abs(whole.gyro_true).max() > 0.1 and not worn[0] and worn[-1]


def test_white_noise_is_gaussian_and_independent() -> None:
    cfg = SensorConfig(
        mount_offset_deg=(0.0, 0.0, 0.0), gyro_bias_dps=0.0, accel_bias_mg=0.0,
        gyro_bias_walk_dps_rts=0.0, accel_bias_walk_mg_rts=0.0, gyro_scale_sd=0.0,
        accel_scale_sd=0.0, misalignment_sd=0.0, gyro_temp_dps_per_c=0.0,
        accel_temp_mg_per_c=0.0, quantize=False,
    )
    n = 200_000
    out = ImuModel(11, cfg).process(np.arange(n) / 100.0, np.tile([1.0, 0.0, 0.0, 0.0], (n, 1)))
    noise = np.concatenate((out.accel - out.accel_true, out.gyro - out.gyro_true), axis=1)
    expected = np.array([cfg.accel_noise_ug_rthz * 1e-6 * GRAVITY] * 3
                        + [math.radians(cfg.gyro_noise_dps_rthz)] * 3) * math.sqrt(50.0)
    z = noise / expected
    assert np.allclose(z.std(axis=0), 1.0, atol=0.01)
    assert np.abs(z.mean(axis=0)).max() < 0.01
    # Gaussian shape: fourth moment and the share beyond 3 SD (0.27 %).
    assert np.abs((z**4).mean(axis=0) - 3.0).max() < 0.1
    beyond = (np.abs(z) > 3.0).mean(axis=0)
    assert np.all((beyond > 0.0020) & (beyond < 0.0035)), beyond
    # White, and independent across channels (also in magnitude: Box–Muller pairs share a radius).
    lag1 = (z[1:] * z[:-1]).mean(axis=0)
    assert np.abs(lag1).max() < 0.01
    corr = np.corrcoef(z.T)
    assert np.abs(corr - np.eye(6)).max() < 0.01
    corr_sq = np.corrcoef((z**2).T)
    assert np.abs(corr_sq - np.eye(6)).max() < 0.015
