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
        # Per segment: wander gains (flexion, lateral, axial), walking and talking envelopes.
        self.seg_motion = table[schedule.activity.astype(np.intp)].T.copy()
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
        self.wear_fixed: tuple[float, float] | None = None  # (input, output) at a fixed point
        self.q_prev: FloatArray | None = None
        worn = schedule.worn
        starts_off = ~worn & np.concatenate(([True], worn[:-1]))
        # A worn segment keeps the id of the last off-neck period, which is where it came from.
        self.table_id = np.cumsum(starts_off).astype(np.int64)
        self.q_block = np.empty((4, BLOCK_SAMPLES))

    def _wander(self, i0: int, n: int, ia: NDArray[np.intp] | None) -> FloatArray:
        """Unit-variance wander (flexion, lateral, axial, nod gate) for the active samples.

        The active samples are i0 + ia, or all of i0..i0+n-1 when `ia` is None. The wander is
        an Ornstein–Uhlenbeck process on a coarse grid, held between grid steps. It only steps
        on grid points that hold an active sample: off the neck nobody looks at it, so it
        waits. New steps are drawn in time order, one row-major draw per block, so the stream
        does not depend on block or chunk boundaries.
        """
        d = self.decim
        if ia is None:
            k0 = i0 // d
            steps = np.arange(k0, (i0 + n - 1) // d + 1)
        else:
            ks = (i0 + ia) // d
            change = np.flatnonzero(ks[1:] != ks[:-1]) + 1
            steps = ks[np.concatenate(([0], change))]
        old = steps[0] == self.k_last  # the first step may have started in the last block
        parts = [self.ou_last[:, None]] if old else []
        m = steps.size - int(old)
        if m > 0:
            eps = self.rng.standard_normal((m, 4)).T
            new = np.empty((4, m))
            for rows in (slice(0, 3), slice(3, 4)):  # the posture wander, then the nod gate
                a = float(self.ou_a[rows][0])
                new[rows], _ = lfilter([self.ou_gain[rows][0]], [1.0, -a], eps[rows], axis=-1,
                                       zi=a * self.ou_last[rows, None])
            self.ou_last = new[:, -1].copy()
            self.k_last = int(steps[-1])
            parts.append(new)
        coarse = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        if ia is None:
            skip = i0 - int(steps[0]) * d
            return np.repeat(coarse, d, axis=1)[:, skip : skip + n]
        return coarse[:, np.searchsorted(steps, ks)]

    def _lowpass(self, x: FloatArray, k: int) -> FloatArray:
        """Posture low-pass of the first k rows of x (6, n); the other rows' states are kept."""
        if self.lp_zi is None:
            self.lp_zi = lfilter_zi(self.lp_b, self.lp_a)[None, :] * x[:, :1]
        y, self.lp_zi[:k] = lfilter(self.lp_b, self.lp_a, x[:k], axis=-1, zi=self.lp_zi[:k])
        return np.asarray(y)

    def _wear(self, worn: NDArray[np.bool_]) -> FloatArray:
        """How far the device is on the neck (0 on the table, 1 on the neck), per sample."""
        x = worn.astype(np.float64)
        if self.wear_zi is None:
            self.wear_zi = lfilter_zi(self.wear_b, self.wear_a) * x[0]
        elif worn[0] == worn[-1] and (worn == worn[0]).all():
            # Settled at a constant input, the filter state is a fixed point: one step shows
            # it, and then every sample of the block gets that same output (and the state
            # stays, so the finding holds until the input changes).
            if self.wear_fixed is None or self.wear_fixed[0] != x[0]:
                y1, z1 = lfilter(self.wear_b, self.wear_a, x[:1], zi=self.wear_zi)
                self.wear_fixed = (float(x[0]), float(y1[0])) if np.array_equal(
                    z1, self.wear_zi) else None
            if self.wear_fixed is not None:
                return np.full(x.size, self.wear_fixed[1])
        self.wear_fixed = None
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
        subnormal floats, which make every filter step many times slower. Exact zeros also let
        the blocks skip filters that have nothing to do.
        """
        for zi in (self.lp_zi, self.wear_zi):
            if zi is not None:
                zi[np.abs(zi) < 1e-100] = 0.0

    def _segments(self, t: FloatArray) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """Segment index of every sample, and where runs of one segment start (with n last).

        Equal to `Schedule.segment_at` for increasing times, but it only searches the few
        segment edges inside the block instead of every sample.
        """
        s = self.s
        lo, hi = (int(v) for v in s.segment_at(t[[0, -1]]))
        cuts = np.searchsorted(t, s.edges[lo + 1 : hi + 1])
        starts = np.concatenate(([0], cuts, [t.size]))
        seg = np.repeat(np.arange(lo, hi + 1), np.diff(starts))
        return seg, starts

    def _block(self, out: TraceChunk, b0: int, b1: int) -> None:
        s = self.s
        n = b1 - b0
        t = out.t[b0:b1]
        seg, starts = self._segments(t)
        out.activity[b0:b1] = s.activity[seg]
        worn_seg = s.worn[seg]
        q_out = out.q[b0:b1]
        if (not worn_seg.any() and self.wear_zi is not None and not self.wear_zi.any()
                and self.q_prev is not None):
            # Settled on the table: the wear filter would return exact zeros and the head model
            # is skipped, so only the pose is left to fill in.
            self._resting(q_out, seg)
            return

        wear_w = self._wear(worn_seg)
        # Once the device has settled on the table nothing moves: skip the head model there.
        # Which samples are skipped depends only on the schedule, so chunking cannot change it.
        active = worn_seg | (wear_w > 1e-12)
        ia = np.flatnonzero(active)
        q = self.q_block[:, :n]
        if ia.size == n:  # all on the neck: plain slices are much cheaper than index arrays
            wander = self._wander(out.index0 + b0, n, None)
            q[:], out.lin_acc[b0:b1] = self._head(t, seg, starts, wear_w, wander)
        else:
            resting = np.flatnonzero(~active)
            ids, inverse = np.unique(self.table_id[seg[resting]], return_inverse=True)
            q[:, resting] = table_pose(ids)[inverse].T
            if ia.size:
                wander = self._wander(out.index0 + b0, n, ia)
                sub = seg[ia]
                sub_starts = np.concatenate(
                    ([0], np.flatnonzero(sub[1:] != sub[:-1]) + 1, [ia.size]))
                q[:, ia], out.lin_acc[b0 + ia] = self._head(t[ia], sub, sub_starts, wear_w[ia],
                                                            wander)
        _make_continuous_rows(q, self.q_prev)
        self.q_prev = q[:, -1].copy()
        q_out[:] = q.T

        worn = worn_seg & (wear_w > 0.999)
        out.worn[b0:b1] = worn
        iw = np.flatnonzero(worn)
        if iw.size == n:
            _posture_rows(q, out.axial[b0:b1], out.flexion[b0:b1], out.lateral[b0:b1])
        elif iw.size:
            angles = np.empty((3, iw.size))
            _posture_rows(q[:, iw], angles[0], angles[1], angles[2])
            out.axial[b0 + iw], out.flexion[b0 + iw], out.lateral[b0 + iw] = angles

    def _resting(self, q_out: FloatArray, seg: NDArray[np.intp]) -> None:
        """Fill a block in which the device lies on the table throughout."""
        ids = self.table_id[seg]
        if ids[0] != ids[-1]:  # a new spot on the table within the block (ids never decrease)
            u, inverse = np.unique(ids, return_inverse=True)
            q = table_pose(u)[inverse].T.copy()
            _make_continuous_rows(q, self.q_prev)
            q_out[:] = q.T
        else:
            pose = table_pose(ids[:1])[0]
            if np.dot(pose, self.q_prev) < 0:  # type: ignore[arg-type]
                pose = -pose
            q_out[:] = pose
        self.q_prev = q_out[-1].copy()

    def _head(
        self,
        t: FloatArray,
        seg: NDArray[np.intp],
        starts: NDArray[np.intp],
        wear_w: FloatArray,
        wander: FloatArray,
    ) -> tuple[FloatArray, FloatArray]:
        """Head orientation (4, n) and linear acceleration (n, 3) for samples near or on the neck.

        `starts` marks where runs of one segment begin in `seg` (and ends with n): the targets
        are constant or linear within a run, so they are filled run by run with scalars.
        """
        s, c = self.s, self.c
        motion = self.seg_motion
        # Rows: flexion, lateral, axial targets with their wander; the nod gate's wander; the
        # nodding and walking envelopes (last, so that the filter can leave them out).
        x = np.empty((6, t.size))
        for a, b in itertools.pairwise(starts.tolist()):
            i = int(seg[a])
            fl, lat, ax = float(s.flexion[i]), float(s.lateral[i]), float(s.axial[i])
            gf, gl, ga, nod, bob = (float(v) for v in motion[[0, 1, 2, 4, 3], i])
            np.subtract(t[a:b], s.t0[i], out=x[0, a:b])
            x[0, a:b] *= s.drift[i]
            x[0, a:b] += fl
            x[0, a:b] += gf * wander[0, a:b]
            np.multiply(wander[1, a:b], gl, out=x[1, a:b])
            x[1, a:b] += lat
            np.multiply(wander[2, a:b], ga, out=x[2, a:b])
            x[2, a:b] += ax
            x[4, a:b] = nod
            x[5, a:b] = bob
        x[3] = wander[3]
        # The nodding and walking envelopes are filtered only while they can be non-zero: with
        # a zero input and a zero state the filter returns exact zeros, so skipping it changes
        # nothing, whatever the block boundaries.
        zi = self.lp_zi
        k = 4
        if zi is None or zi[5].any() or x[5].any():
            k = 6
        elif zi[4].any() or x[4].any():
            k = 5
        y = self._lowpass(x, k)
        flexion, lateral, axial = y[0], y[1], y[2]

        lin_acc = np.zeros((t.size, 3))
        walking = np.flatnonzero(y[5] > 1e-6) if k == 6 else np.zeros(0, dtype=np.intp)
        if walking.size:
            tw = t[walking]
            env = y[5, walking]
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
        if k >= 5:
            gate = y[4] * np.clip(y[3] - 0.3, 0.0, 1.0)
            nodding = np.flatnonzero(gate > 1e-6)
            if nodding.size:
                flexion[nodding] += (c.nod_deg * gate[nodding]
                                     * _sin32(_turns(c.nod_hz * t[nodding])))

        q = _quat_rows(axial, flexion, lateral)
        partial = np.flatnonzero(wear_w < 1.0 - 1e-12)
        if partial.size:
            q_table = table_pose(self.table_id[seg[partial]])
            q[:, partial] = rotation.slerp(q_table, q[:, partial].T,
                                           np.clip(wear_w[partial], 0.0, 1.0)).T
        return q, lin_acc


def _quat_rows(axial: FloatArray, flexion: FloatArray, lateral: FloatArray) -> FloatArray:
    """q = qz(axial) ⊗ qy(flexion) ⊗ qx(lateral) as rows (4, n), angles in degrees.

    Single precision for the trigonometry and the products (about 1e-7 of error, i.e. well
    under a thousandth of a degree), then renormalised in double precision.
    """
    n = axial.size
    half = np.empty((3, n), dtype=np.float32)
    k = math.pi / 360.0
    for row, angle in enumerate((axial, flexion, lateral)):
        np.multiply(angle, k, out=half[row], casting="same_kind")
    cos = np.cos(half)
    sin = np.sin(half)
    cz, cy, cx = cos
    sz, sy, sx = sin
    czcy = cz * cy
    szsy = sz * sy
    czsy = cz * sy
    szcy = sz * cy
    q = np.empty((4, n))
    tmp = czcy * cx
    tmp += szsy * sx
    q[0] = tmp
    np.multiply(czcy, sx, out=tmp)
    tmp -= szsy * cx
    q[1] = tmp
    np.multiply(czsy, cx, out=tmp)
    tmp += szcy * sx
    q[2] = tmp
    np.multiply(szcy, cx, out=tmp)
    tmp -= czsy * sx
    q[3] = tmp
    # |q| is 1 within 1e-6, so one Newton step, q·(3 - |q|²)/2, makes it 1 within 1e-12.
    norm = q[0] * q[0]
    norm += q[1] * q[1]
    norm += q[2] * q[2]
    norm += q[3] * q[3]
    norm *= -0.5
    norm += 1.5
    q *= norm
    return q


def _make_continuous_rows(q: FloatArray, previous: FloatArray | None) -> None:
    """`rotation.make_continuous` for quaternions stored as rows (4, n), in place."""
    dots = np.empty(q.shape[1])
    ref = q[:, :1] if previous is None else previous[:, None]
    dots[0] = float(np.dot(q[:, 0], ref[:, 0]))
    w, x, y, z = q
    head = dots[1:]
    np.multiply(w[1:], w[:-1], out=head)
    head += x[1:] * x[:-1]
    head += y[1:] * y[:-1]
    head += z[1:] * z[:-1]
    negative = dots < 0
    if negative.any():
        flips = np.cumsum(negative) % 2 == 1
        q[:, flips] *= -1.0


def _posture_rows(q: FloatArray, axial: FloatArray, flexion: FloatArray,
                  lateral: FloatArray) -> None:
    """`rotation.to_posture` for quaternions stored as rows (4, n), written into the outputs."""
    w, x, y, z = q
    ux = x * z
    ux -= w * y
    ux *= 2.0
    uy = y * z
    uy += w * x
    uy *= 2.0
    uz = x * x
    uz += y * y
    uz *= -2.0
    uz += 1.0
    deg = 180.0 / math.pi
    np.arctan2(uy, uz, out=lateral)
    lateral *= deg
    uy *= uy
    uy += uz * uz
    np.sqrt(uy, out=uy)  # hypot(uy, uz) without its overflow guard, which |u| = 1 makes moot
    np.negative(ux, out=ux)
    np.arctan2(ux, uy, out=flexion)
    flexion *= deg
    num = x * y
    num += w * z
    num *= 2.0
    den = y * y
    den += z * z
    den *= -2.0
    den += 1.0
    np.arctan2(num, den, out=axial)
    axial *= deg


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
