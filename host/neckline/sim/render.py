"""Rendering a `Schedule` into smooth head orientation at a fixed sample rate, chunk by chunk.

Per sample: the schedule's target posture plus a slow random wander (an Ornstein-Uhlenbeck
process), both passed through a critically damped two-pole low-pass so that every change of
posture — a self-correction at the desk, picking up the phone — is smooth in angle and in rate.
Walking adds step-frequency bobbing (angle and linear acceleration), talking adds bursts of
nodding. Off the neck, the device lies still on a table; putting it on or taking it off is a
smooth rotation of a few seconds.

Every filter carries its state from one chunk to the next and random numbers are drawn in time
order, so the output does not depend on the chunk length.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray
from scipy.signal import lfilter, lfilter_zi

from neckline.sim import rotation
from neckline.sim.activities import motion_table
from neckline.sim.schedule import Schedule

FloatArray = NDArray[np.float64]

GOLDEN_ANGLE_RAD = math.pi * (3.0 - math.sqrt(5.0))
WANDER_HZ = 10.0


@dataclass(frozen=True)
class RenderConfig:
    rate_hz: float = 100.0
    chunk_s: float = 3600.0
    smoothing_s: float = 0.3  # time constant of posture changes (two poles)
    wear_transition_s: float = 1.0  # time constant of putting the device on or off (two poles)
    wiggle_tau_s: float = 2.0  # correlation time of the slow wander
    nod_gate_tau_s: float = 3.0  # how long bursts of nodding last
    step_hz: float = 1.85
    nod_hz: float = 1.6
    bob_flexion_deg: float = 1.0
    sway_lateral_deg: float = 0.8
    nod_deg: float = 4.0
    bob_vertical_ms2: float = 2.5
    bob_forward_ms2: float = 1.0
    sway_ms2: float = 0.5
    wiggle_scale: float = 1.0  # multiplies every activity's wander; 0 renders the bare targets

    def __post_init__(self) -> None:
        if not self.rate_hz > 0:
            raise ValueError("rate_hz must be positive")
        if not self.chunk_s > 0:
            raise ValueError("chunk_s must be positive")
        if not (self.smoothing_s > 0 and self.wear_transition_s > 0):
            raise ValueError("smoothing time constants must be positive")


@dataclass(frozen=True)
class TraceChunk:
    """Consecutive ground-truth samples; `t` is seconds after `start`."""

    start: datetime
    rate_hz: float
    index0: int  # index of the first sample since the start of the rendering
    t: FloatArray
    q: FloatArray  # (n, 4) head-to-neutral-frame quaternion (w, x, y, z)
    flexion: FloatArray  # degrees, NaN when not worn
    lateral: FloatArray
    axial: FloatArray
    worn: NDArray[np.bool_]
    activity: NDArray[np.int8]
    lin_acc: FloatArray  # (n, 3) m/s², neutral (world) frame, gravity excluded

    def __len__(self) -> int:
        return int(self.t.size)


def _two_pole(tau_s: float, rate_hz: float) -> tuple[FloatArray, FloatArray]:
    a = math.exp(-1.0 / (tau_s * rate_hz))
    return np.array([(1.0 - a) ** 2]), np.array([1.0, -2.0 * a, a * a])


def table_pose(table_id: NDArray[np.int64]) -> FloatArray:
    """Where the device lies when off the neck: face up, a different heading each time."""
    yaw = GOLDEN_ANGLE_RAD * table_id.astype(np.float64)
    return rotation.multiply(rotation.axis_angle(2, yaw), rotation.axis_angle(1, math.radians(88)))


class _Renderer:
    def __init__(self, schedule: Schedule, seed: int, config: RenderConfig) -> None:
        self.s = schedule
        self.c = config
        self.rng = np.random.default_rng([seed, 10])
        self.n_total = sample_count(schedule, config.rate_hz)
        table = motion_table()
        table[:, :3] *= config.wiggle_scale
        self.motion = [np.ascontiguousarray(col) for col in table.T]
        # The wander is drawn on a coarse grid and held: it is smoothed by the posture low-pass
        # anyway, and drawing it at the full rate would cost more than the rest of the model.
        self.decim = max(1, round(config.rate_hz / WANDER_HZ))
        coarse_dt = self.decim / config.rate_hz
        a_w = math.exp(-coarse_dt / config.wiggle_tau_s)
        a_g = math.exp(-coarse_dt / config.nod_gate_tau_s)
        self.ou_a = np.array([a_w, a_w, a_w, a_g])
        self.ou_gain = np.sqrt(1.0 - self.ou_a**2)
        self.ou_last = np.zeros(4)  # wander value at coarse step `k_last`
        self.k_last = -1
        self.lp_b, self.lp_a = _two_pole(config.smoothing_s, config.rate_hz)
        self.wear_b, self.wear_a = _two_pole(config.wear_transition_s, config.rate_hz)
        self.lp_zi: FloatArray | None = None
        self.wear_zi: FloatArray | None = None
        self.q_prev: FloatArray | None = None
        worn = schedule.worn
        starts_off = ~worn & np.concatenate(([True], worn[:-1]))
        # A worn segment keeps the id of the last off-neck period, which is where it came from.
        self.table_id = np.cumsum(starts_off).astype(np.int64)

    def _wander(self, i0: int, i1: int) -> FloatArray:
        """(4, n) unit-variance wander for samples i0..i1-1: flexion, lateral, axial, nod gate."""
        d = self.decim
        k0, k1 = i0 // d, (i1 - 1) // d
        first_new = max(k0, self.k_last + 1)
        m = k1 - first_new + 1
        parts = [self.ou_last[:, None]] if k0 == self.k_last else []
        if m > 0:
            # One row-major draw per block keeps the stream independent of block boundaries.
            eps = self.rng.standard_normal((m, 4)).T
            new = np.empty((4, m))
            for ch in range(4):
                a = self.ou_a[ch]
                new[ch], _ = lfilter([self.ou_gain[ch]], [1.0, -a], eps[ch],
                                     zi=[a * self.ou_last[ch]])
            self.ou_last = new[:, -1].copy()
            self.k_last = k1
            parts.append(new)
        coarse = np.concatenate(parts, axis=1)
        idx = np.arange(i0, i1) // d - k0
        return coarse[:, idx]

    def _lowpass(self, x: FloatArray) -> FloatArray:
        if self.lp_zi is None:
            self.lp_zi = lfilter_zi(self.lp_b, self.lp_a)[None, :] * x[:, :1]
        y, self.lp_zi = lfilter(self.lp_b, self.lp_a, x, axis=-1, zi=self.lp_zi)
        return np.asarray(y)

    def _wear(self, x: FloatArray) -> FloatArray:
        if self.wear_zi is None:
            self.wear_zi = lfilter_zi(self.wear_b, self.wear_a) * x[0]
        y, self.wear_zi = lfilter(self.wear_b, self.wear_a, x, zi=self.wear_zi)
        return np.asarray(y)

    def chunk(self, i0: int, i1: int) -> TraceChunk:
        """Samples i0..i1-1, computed in cache-sized blocks."""
        n = i1 - i0
        out = TraceChunk(
            start=self.s.start,
            rate_hz=self.c.rate_hz,
            index0=i0,
            t=np.arange(i0, i1, dtype=np.float64) / self.c.rate_hz,
            q=np.empty((n, 4)),
            flexion=np.full(n, np.nan),
            lateral=np.full(n, np.nan),
            axial=np.full(n, np.nan),
            worn=np.zeros(n, dtype=bool),
            activity=np.empty(n, dtype=np.int8),
            lin_acc=np.zeros((n, 3)),
        )
        # Blocks end on global multiples of BLOCK_SAMPLES whatever the chunk length, so that the
        # flushing of filter states below happens at the same samples for every chunking.
        edges = [i0, *range((i0 // BLOCK_SAMPLES + 1) * BLOCK_SAMPLES, i1, BLOCK_SAMPLES), i1]
        for g0, g1 in itertools.pairwise(edges):
            self._block(out, g0 - i0, g1 - i0)
            if g1 % BLOCK_SAMPLES == 0:
                self._flush()
        return out

    def _flush(self) -> None:
        """Zero filter states that have decayed to nothing.

        A decaying state (the walking envelope after a walk) would otherwise sink into
        subnormal floats, which make every filter step many times slower.
        """
        for zi in (self.lp_zi, self.wear_zi):
            if zi is not None:
                zi[np.abs(zi) < 1e-100] = 0.0

    def _block(self, out: TraceChunk, b0: int, b1: int) -> None:
        s = self.s
        n = b1 - b0
        t = out.t[b0:b1]
        seg = s.segment_at(t)
        worn_seg = s.worn[seg]
        wear_w = self._wear(worn_seg.astype(np.float64))
        wander = self._wander(out.index0 + b0, out.index0 + b1)
        # Once the device has settled on the table nothing moves: skip the head model there.
        # Which samples are skipped depends only on the schedule, so chunking cannot change it.
        active = worn_seg | (wear_w > 1e-12)
        ia = np.flatnonzero(active)

        q = out.q[b0:b1]
        if ia.size == n:  # all on the neck: plain slices are much cheaper than index arrays
            q[:], out.lin_acc[b0:b1] = self._head(t, seg, wear_w, wander)
        else:
            resting = np.flatnonzero(~active)
            ids, inverse = np.unique(self.table_id[seg[resting]], return_inverse=True)
            q[resting] = table_pose(ids)[inverse]
            if ia.size:
                q[ia], out.lin_acc[b0 + ia] = self._head(t[ia], seg[ia], wear_w[ia],
                                                         wander[:, ia])
        q[:] = rotation.make_continuous(q, self.q_prev)
        self.q_prev = q[-1].copy()

        worn = worn_seg & (wear_w > 0.999)
        out.worn[b0:b1] = worn
        out.activity[b0:b1] = s.activity[seg]
        iw = np.flatnonzero(worn)
        if iw.size == n:
            out.axial[b0:b1], out.flexion[b0:b1], out.lateral[b0:b1] = rotation.to_posture(q)
        elif iw.size:
            ax, fl, la = rotation.to_posture(q[iw])
            out.axial[b0 + iw] = ax
            out.flexion[b0 + iw] = fl
            out.lateral[b0 + iw] = la

    def _head(
        self, t: FloatArray, seg: NDArray[np.intp], wear_w: FloatArray, wander: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Head orientation and linear acceleration for samples near or on the neck."""
        s, c = self.s, self.c
        act = s.activity[seg]
        m = self.motion
        x = np.empty((6, t.size))
        x[0] = s.flexion[seg] + s.drift[seg] * (t - s.t0[seg]) + m[0][act] * wander[0]
        x[1] = s.lateral[seg] + m[1][act] * wander[1]
        x[2] = s.axial[seg] + m[2][act] * wander[2]
        x[3] = m[3][act]
        x[4] = m[4][act]
        x[5] = wander[3]
        y = self._lowpass(x)
        flexion, lateral, axial, bob = y[0], y[1], y[2], y[3]

        lin_acc = np.zeros((t.size, 3))
        walking = np.flatnonzero(bob > 1e-6)
        if walking.size:
            tw = t[walking]
            env = bob[walking]
            # Phases reduced to one turn first: sin of large arguments is slow and imprecise.
            step = _turns(c.step_hz * tw)
            half = _turns(0.5 * c.step_hz * tw)
            sin_step = _sin32(step)
            sin_half = _sin32(half)
            flexion[walking] += c.bob_flexion_deg * env * sin_step
            lateral[walking] += c.sway_lateral_deg * env * sin_half
            on = env * wear_w[walking]
            fwd = c.bob_forward_ms2 * on * _sin32(step + 0.5 * math.pi)
            side = c.sway_ms2 * on * sin_half
            heading = np.radians(axial[walking])
            cos_h = np.cos(heading)
            sin_h = np.sin(heading)
            lin_acc[walking, 0] = fwd * cos_h - side * sin_h
            lin_acc[walking, 1] = fwd * sin_h + side * cos_h
            lin_acc[walking, 2] = c.bob_vertical_ms2 * on * sin_step
        gate = y[4] * np.clip(y[5] - 0.3, 0.0, 1.0)
        nodding = np.flatnonzero(gate > 1e-6)
        if nodding.size:
            flexion[nodding] += c.nod_deg * gate[nodding] * _sin32(_turns(c.nod_hz * t[nodding]))

        q = rotation.from_posture(axial, flexion, lateral, fast=True)
        partial = np.flatnonzero(wear_w < 1.0 - 1e-12)
        if partial.size:
            q_table = table_pose(self.table_id[seg[partial]])
            q[partial] = rotation.slerp(q_table, q[partial], np.clip(wear_w[partial], 0.0, 1.0))
        return q, lin_acc


def _turns(cycles: FloatArray) -> FloatArray:
    """Phase in radians, reduced to [0, 2π)."""
    return 2.0 * math.pi * (cycles - np.floor(cycles))


def _sin32(phase: FloatArray) -> FloatArray:
    # Single precision is ample for these small motions and several times faster.
    return np.sin(phase.astype(np.float32)).astype(np.float64)


BLOCK_SAMPLES = 8192  # work in cache-sized blocks; long chunks are assembled from them


def render(
    schedule: Schedule, seed: int, config: RenderConfig | None = None
) -> Iterator[TraceChunk]:
    """Ground truth for `schedule` at `config.rate_hz`, in chunks of `config.chunk_s` seconds."""
    cfg = config or RenderConfig()
    r = _Renderer(schedule, seed, cfg)
    per_chunk = max(1, round(cfg.chunk_s * cfg.rate_hz))
    for i0 in range(0, r.n_total, per_chunk):
        yield r.chunk(i0, min(r.n_total, i0 + per_chunk))


def sample_count(schedule: Schedule, rate_hz: float) -> int:
    return math.floor(schedule.duration_s * rate_hz + 1e-9)
