"""Quaternion helpers and the posture-angle decomposition shared with the firmware.

Quaternions are numpy arrays whose last axis is (w, x, y, z), scalar first, unit norm.
A quaternion q "body to world" maps a body-frame vector v to the world frame as q ⊗ v ⊗ q*.
The world frame is the wearer's neutral frame: x forward, y left, z up (right-handed).

Posture angles (degrees) are the intrinsic z-y'-x'' Euler angles of the head orientation,
R = Rz(axial) · Ry(flexion) · Rx(lateral). The flexion and lateral angles depend only on the
"up" vector expressed in the head frame, u = Rᵀ·ẑ = (-sin f, sin l·cos f, cos l·cos f):

    flexion = atan2(-u_x, hypot(u_y, u_z))      positive: head tilts forward
    lateral = atan2(u_y, u_z)                   positive: head tilts toward the right shoulder

so a gravity-only estimator (the firmware) computes exactly the same two numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

UP = np.array([0.0, 0.0, 1.0])


def as_quat(q: ArrayLike) -> FloatArray:
    arr = np.asarray(q, dtype=np.float64)
    if arr.shape[-1] != 4:
        raise ValueError(f"quaternions need a last axis of 4, got shape {arr.shape}")
    return arr


def normalize(q: ArrayLike) -> FloatArray:
    arr = as_quat(q)
    return arr / np.linalg.norm(arr, axis=-1, keepdims=True)


def conj(q: ArrayLike) -> FloatArray:
    arr = as_quat(q)
    return arr * np.array([1.0, -1.0, -1.0, -1.0])


def multiply(a: ArrayLike, b: ArrayLike) -> FloatArray:
    """Hamilton product a ⊗ b, broadcasting over leading axes."""
    qa = as_quat(a)
    qb = as_quat(b)
    aw, ax, ay, az = qa[..., 0], qa[..., 1], qa[..., 2], qa[..., 3]
    bw, bx, by, bz = qb[..., 0], qb[..., 1], qb[..., 2], qb[..., 3]
    return np.stack(
        (
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ),
        axis=-1,
    )


def to_matrix(q: ArrayLike) -> FloatArray:
    """Rotation matrices (..., 3, 3) whose columns are the body axes in the world frame."""
    arr = as_quat(q)
    w, x, y, z = arr[..., 0], arr[..., 1], arr[..., 2], arr[..., 3]
    m = np.empty((*arr.shape[:-1], 3, 3))
    m[..., 0, 0] = 1 - 2 * (y * y + z * z)
    m[..., 0, 1] = 2 * (x * y - w * z)
    m[..., 0, 2] = 2 * (x * z + w * y)
    m[..., 1, 0] = 2 * (x * y + w * z)
    m[..., 1, 1] = 1 - 2 * (x * x + z * z)
    m[..., 1, 2] = 2 * (y * z - w * x)
    m[..., 2, 0] = 2 * (x * z - w * y)
    m[..., 2, 1] = 2 * (y * z + w * x)
    m[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return m


def from_matrix(m: ArrayLike) -> FloatArray:
    """Quaternion of a single proper rotation matrix (w kept non-negative)."""
    mat = np.asarray(m, dtype=np.float64)
    if mat.shape != (3, 3):
        raise ValueError("from_matrix takes one 3x3 matrix")
    tr = float(np.trace(mat))
    # Pick the largest diagonal term as pivot so the square root never nears zero.
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = [0.25 * s, (mat[2, 1] - mat[1, 2]) / s, (mat[0, 2] - mat[2, 0]) / s,
             (mat[1, 0] - mat[0, 1]) / s]
    elif mat[0, 0] > mat[1, 1] and mat[0, 0] > mat[2, 2]:
        s = 2.0 * np.sqrt(1.0 + mat[0, 0] - mat[1, 1] - mat[2, 2])
        q = [(mat[2, 1] - mat[1, 2]) / s, 0.25 * s, (mat[0, 1] + mat[1, 0]) / s,
             (mat[0, 2] + mat[2, 0]) / s]
    elif mat[1, 1] > mat[2, 2]:
        s = 2.0 * np.sqrt(1.0 + mat[1, 1] - mat[0, 0] - mat[2, 2])
        q = [(mat[0, 2] - mat[2, 0]) / s, (mat[0, 1] + mat[1, 0]) / s, 0.25 * s,
             (mat[1, 2] + mat[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + mat[2, 2] - mat[0, 0] - mat[1, 1])
        q = [(mat[1, 0] - mat[0, 1]) / s, (mat[0, 2] + mat[2, 0]) / s,
             (mat[1, 2] + mat[2, 1]) / s, 0.25 * s]
    out = normalize(np.array(q))
    return out if out[0] >= 0 else -out


def rotate(q: ArrayLike, v: ArrayLike) -> FloatArray:
    """Body-frame vectors to the world frame: q ⊗ v ⊗ q*."""
    arr = as_quat(q)
    vec = np.asarray(v, dtype=np.float64)
    qv = arr[..., 1:]
    t = 2.0 * np.cross(qv, vec)
    return vec + arr[..., :1] * t + np.cross(qv, t)


def rotate_inverse(q: ArrayLike, v: ArrayLike) -> FloatArray:
    """World-frame vectors to the body frame: q* ⊗ v ⊗ q."""
    return rotate(conj(q), v)


def from_rotvec(rv: ArrayLike) -> FloatArray:
    """Quaternion of a rotation vector (axis times angle, radians)."""
    vec = np.asarray(rv, dtype=np.float64)
    angle = np.linalg.norm(vec, axis=-1, keepdims=True)
    half = 0.5 * angle
    # sin(x/2)/x written with sinc so a zero vector needs no special case.
    k = 0.5 * np.sinc(half / np.pi)
    return np.concatenate((np.cos(half), vec * k), axis=-1)


def to_rotvec(q: ArrayLike) -> FloatArray:
    """Rotation vector (radians) of each quaternion, taking the shorter way round."""
    arr = as_quat(q)
    sign = np.where(arr[..., :1] < 0, -1.0, 1.0)
    w = arr[..., :1] * sign
    v = arr[..., 1:] * sign
    s = np.linalg.norm(v, axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(s, w)
    # angle/s → 2/w as s → 0; use the series form there to stay exact.
    scale = np.where(s > 1e-12, angle / np.where(s > 1e-12, s, 1.0), 2.0 / w)
    return v * scale


def axis_angle(axis: int, angle_rad: ArrayLike) -> FloatArray:
    """Quaternion for a rotation about body axis 0 (x), 1 (y) or 2 (z)."""
    a = np.asarray(angle_rad, dtype=np.float64)
    q = np.zeros((*a.shape, 4))
    q[..., 0] = np.cos(0.5 * a)
    q[..., 1 + axis] = np.sin(0.5 * a)
    return q


def from_posture(
    axial_deg: ArrayLike, flexion_deg: ArrayLike, lateral_deg: ArrayLike, fast: bool = False
) -> FloatArray:
    """Head orientation q = qz(axial) ⊗ qy(flexion) ⊗ qx(lateral), angles in degrees.

    `fast` evaluates the sines in single precision (about 1e-7 rad of error, then renormalised),
    which is several times quicker for the long arrays the renderer produces.
    """
    angles = np.broadcast_arrays(
        *(np.asarray(a, dtype=np.float64) for a in (axial_deg, flexion_deg, lateral_deg))
    )
    half = np.radians(np.stack(angles)) * 0.5
    if fast:
        half32 = half.astype(np.float32)
        cos = np.cos(half32).astype(np.float64)
        sin = np.sin(half32).astype(np.float64)
    else:
        cos = np.cos(half)
        sin = np.sin(half)
    cz, cy, cx = cos
    sz, sy, sx = sin
    czcy = cz * cy
    szsy = sz * sy
    czsy = cz * sy
    szcy = sz * cy
    q = np.empty((*czcy.shape, 4))
    q[..., 0] = czcy * cx + szsy * sx
    q[..., 1] = czcy * sx - szsy * cx
    q[..., 2] = czsy * cx + szcy * sx
    q[..., 3] = szcy * cx - czsy * sx
    if fast:
        q /= np.sqrt(np.einsum("...i,...i->...", q, q))[..., None]
    return q


def up_in_body(q: ArrayLike) -> FloatArray:
    """The world "up" direction expressed in the body frame (third row of R)."""
    arr = as_quat(q)
    w, x, y, z = arr[..., 0], arr[..., 1], arr[..., 2], arr[..., 3]
    return np.stack(
        (2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)), axis=-1
    )


def posture_from_up(up: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """(flexion, lateral) in degrees from "up" expressed in the neutral-aligned head frame."""
    u = np.asarray(up, dtype=np.float64)
    flexion = np.degrees(np.arctan2(-u[..., 0], np.hypot(u[..., 1], u[..., 2])))
    lateral = np.degrees(np.arctan2(u[..., 1], u[..., 2]))
    return flexion, lateral


def to_posture(q: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(axial, flexion, lateral) in degrees: the inverse of `from_posture`."""
    arr = as_quat(q)
    w, x, y, z = arr[..., 0], arr[..., 1], arr[..., 2], arr[..., 3]
    flexion, lateral = posture_from_up(up_in_body(arr))
    axial = np.degrees(np.arctan2(2 * (x * y + w * z), 1 - 2 * (y * y + z * z)))
    return axial, flexion, lateral


def slerp(a: ArrayLike, b: ArrayLike, weight: ArrayLike) -> FloatArray:
    """Spherical interpolation from a (weight 0) to b (weight 1), elementwise."""
    qa = as_quat(a)
    qb = as_quat(b)
    w = np.asarray(weight, dtype=np.float64)[..., None]
    dot = np.sum(qa * qb, axis=-1, keepdims=True)
    qb = np.where(dot < 0, -qb, qb)
    rel = multiply(conj(qa), qb)
    return normalize(multiply(qa, from_rotvec(to_rotvec(rel) * w)))


def make_continuous(q: ArrayLike, previous: ArrayLike | None = None) -> FloatArray:
    """Flip signs so consecutive quaternions lie in the same hemisphere (q and -q are equal)."""
    arr = np.array(as_quat(q), dtype=np.float64)
    if arr.shape[0] == 0:
        return arr
    ref = np.concatenate((arr[:1] if previous is None else np.asarray(previous)[None], arr[:-1]))
    negative = np.einsum("ij,ij->i", arr, ref) < 0
    if not negative.any():
        return arr
    flips = np.cumsum(negative)
    arr[flips % 2 == 1] *= -1.0
    return arr


@dataclass(frozen=True)
class NeutralFrame:
    """The neutral frame as the firmware builds it from one calibration.

    Rows are the neutral x (forward), y (left) and z (up) axes expressed in the sensor frame.
    `z` is the measured up direction at neutral; `x` is the sensor's nominal forward axis made
    orthogonal to it. Heading about "up" cannot be seen by an accelerometer, so a mounting
    error about that axis stays in the result as a small flexion/lateral cross-talk.
    """

    axes: FloatArray

    @classmethod
    def from_calibration(
        cls, up_sensor: ArrayLike, forward_sensor: ArrayLike = (0.0, 0.0, -1.0)
    ) -> NeutralFrame:
        z = np.asarray(up_sensor, dtype=np.float64)
        z = z / np.linalg.norm(z)
        f = np.asarray(forward_sensor, dtype=np.float64)
        x = f - np.dot(f, z) * z
        norm = np.linalg.norm(x)
        if norm < 1e-6:
            raise ValueError("the nominal forward axis is parallel to the calibrated up vector")
        x = x / norm
        y = np.cross(z, x)
        return cls(np.stack((x, y, z)))

    def up(self, up_sensor: ArrayLike) -> FloatArray:
        """Sensor-frame up vectors expressed in the neutral frame."""
        u = np.asarray(up_sensor, dtype=np.float64)
        return u @ self.axes.T

    def posture(self, up_sensor: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """(flexion, lateral) in degrees for sensor-frame up vectors."""
        return posture_from_up(self.up(up_sensor))
