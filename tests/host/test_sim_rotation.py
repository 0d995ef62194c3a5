"""Quaternion helpers and the posture-angle convention shared with the firmware."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neckline.sim import rotation
from neckline.sim.sensor import NOMINAL_FORWARD_SENSOR, mount_quaternion


def _random_angles(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-170, 170, n), rng.uniform(-85, 85, n), rng.uniform(-170, 170, n)


def test_posture_round_trip() -> None:
    axial, flexion, lateral = _random_angles(1000)
    q = rotation.from_posture(axial, flexion, lateral)
    assert np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-12)
    a2, f2, l2 = rotation.to_posture(q)
    assert np.allclose(a2, axial, atol=1e-9)
    assert np.allclose(f2, flexion, atol=1e-9)
    assert np.allclose(l2, lateral, atol=1e-9)


def test_posture_is_z_then_y_then_x() -> None:
    axial, flexion, lateral = _random_angles(50, seed=1)
    composed = rotation.multiply(
        rotation.multiply(rotation.axis_angle(2, np.radians(axial)),
                          rotation.axis_angle(1, np.radians(flexion))),
        rotation.axis_angle(0, np.radians(lateral)),
    )
    assert np.allclose(rotation.from_posture(axial, flexion, lateral), composed, atol=1e-12)


def test_fast_posture_is_close_to_exact() -> None:
    axial, flexion, lateral = _random_angles(2000, seed=2)
    exact = rotation.from_posture(axial, flexion, lateral)
    fast = rotation.from_posture(axial, flexion, lateral, fast=True)
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-12)
    assert np.max(np.abs(fast - exact)) < 1e-6


def test_sign_conventions() -> None:
    forward = rotation.from_posture(0.0, 30.0, 0.0)
    # Flexion tips the head's forward axis below the horizon.
    assert rotation.rotate(forward, [1.0, 0.0, 0.0])[2] < -0.4
    right = rotation.from_posture(0.0, 0.0, 20.0)
    # Lateral bend to the right moves the top of the head toward -y (the right side).
    assert rotation.rotate(right, [0.0, 0.0, 1.0])[1] < -0.3
    left_turn = rotation.from_posture(30.0, 0.0, 0.0)
    assert rotation.rotate(left_turn, [1.0, 0.0, 0.0])[1] > 0.4


def test_posture_from_up_formula() -> None:
    axial, flexion, lateral = _random_angles(500, seed=3)
    up = rotation.up_in_body(rotation.from_posture(axial, flexion, lateral))
    f = np.radians(flexion)
    lat = np.radians(lateral)
    expected = np.stack((-np.sin(f), np.sin(lat) * np.cos(f), np.cos(lat) * np.cos(f)), axis=1)
    assert np.allclose(up, expected, atol=1e-12)
    f2, l2 = rotation.posture_from_up(up * 9.81)  # scale does not matter
    assert np.allclose(f2, flexion, atol=1e-9)
    assert np.allclose(l2, lateral, atol=1e-9)


def test_rotvec_round_trip_and_short_way() -> None:
    rng = np.random.default_rng(4)
    rv = rng.normal(size=(200, 3))
    rv *= (rng.uniform(0, math.pi * 0.999, 200) / np.linalg.norm(rv, axis=1))[:, None]
    q = rotation.from_rotvec(rv)
    assert np.allclose(rotation.to_rotvec(q), rv, atol=1e-10)
    assert np.allclose(rotation.to_rotvec(-q), rv, atol=1e-10)
    assert np.allclose(rotation.to_rotvec(rotation.from_rotvec(np.zeros(3))), 0.0)
    tiny = np.array([1e-10, -2e-10, 3e-10])
    assert np.allclose(rotation.to_rotvec(rotation.from_rotvec(tiny)), tiny, rtol=1e-6, atol=0)


def test_matrix_round_trip() -> None:
    axial, flexion, lateral = _random_angles(30, seed=5)
    for q in rotation.from_posture(axial, flexion, lateral):
        back = rotation.from_matrix(rotation.to_matrix(q))
        assert min(np.abs(back - q).max(), np.abs(back + q).max()) < 1e-12
        v = np.array([0.3, -0.2, 0.9])
        assert np.allclose(rotation.to_matrix(q) @ v, rotation.rotate(q, v))
        assert np.allclose(rotation.rotate_inverse(q, rotation.rotate(q, v)), v)


def test_slerp_endpoints_and_midpoint() -> None:
    a = rotation.from_posture(0.0, 0.0, 0.0)
    b = rotation.from_posture(0.0, 60.0, 0.0)
    assert np.allclose(rotation.slerp(a, b, 0.0), a)
    assert np.allclose(rotation.slerp(a, b, 1.0), b)
    mid = rotation.slerp(a, b, 0.5)
    assert np.allclose(rotation.to_posture(mid)[1], 30.0)
    assert np.allclose(rotation.slerp(a, -b, 0.5), mid)  # q and -q are the same rotation


def test_make_continuous_flips_hemisphere() -> None:
    q = rotation.from_posture(np.linspace(-179, 179, 50), 10.0, 0.0)
    q[::3] *= -1
    cont = rotation.make_continuous(q)
    assert np.all(np.sum(cont[1:] * cont[:-1], axis=1) > 0)
    assert np.allclose(np.abs(np.sum(cont * q, axis=1)), 1.0)


def test_neutral_frame_recovers_posture_through_a_tilted_mount() -> None:
    # A mount tilted about the sensor's left axis is fully absorbed by calibration.
    mount = mount_quaternion((0.0, 20.0, 0.0))
    axial, flexion, lateral = _random_angles(300, seed=6)
    q_sensor = rotation.multiply(rotation.from_posture(axial, flexion, lateral), mount)
    neutral_up = rotation.up_in_body(mount)
    frame = rotation.NeutralFrame.from_calibration(neutral_up * 9.8, NOMINAL_FORWARD_SENSOR)
    f, lat = frame.posture(rotation.up_in_body(q_sensor))
    assert np.allclose(f, flexion, atol=1e-9)
    assert np.allclose(lat, lateral, atol=1e-9)


def test_neutral_frame_yaw_error_only_cross_talks() -> None:
    # A mount rotated 3° about "up" cannot be calibrated away: bounded cross-talk remains.
    mount = mount_quaternion((3.0, 0.0, 0.0))
    q_sensor = rotation.multiply(rotation.from_posture(0.0, 40.0, 0.0), mount)
    frame = rotation.NeutralFrame.from_calibration(rotation.up_in_body(mount))
    f, lat = frame.posture(rotation.up_in_body(q_sensor))
    assert abs(float(f) - 40.0) < 0.2
    assert 0.5 < abs(float(lat)) < 3.0


def test_neutral_frame_rejects_forward_along_up() -> None:
    with pytest.raises(ValueError):
        rotation.NeutralFrame.from_calibration([0.0, 0.0, 1.0], [0.0, 0.0, 2.0])
