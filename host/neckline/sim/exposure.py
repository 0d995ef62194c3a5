"""Per-minute neck-strain exposure, from a schedule (fast, exact) or a rendered trace (slow).

Definitions (both paths):
- strain: flexion above `threshold_deg` while worn;
- a bout is a run of strain in which no gap below the threshold (or off the neck) is longer
  than `gap_s`; bouts shorter than `hold_s` from first to last strain moment are discarded;
- strain_s: seconds of strain inside kept bouts (gaps excluded), per minute;
- strain_load: the integral of (flexion - threshold) over those seconds, in degree-minutes
  (one minute held 10° above the threshold is 10);
- flex_mean / flex_max: mean and maximum flexion over the worn part of the minute (NaN if none).

The schedule path is exact for the schedule's piecewise-linear target flexion (no wander, no
transitions). The trace path works on 1-second means of the rendered flexion, so wander around
a target near the threshold makes the two differ a little.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from neckline.sim.render import TraceChunk
from neckline.sim.schedule import Schedule
from neckline.sim.timebase import epoch_s, iso_seconds

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class StrainParams:
    threshold_deg: float = 25.0
    hold_s: float = 60.0
    gap_s: float = 5.0

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (self.threshold_deg, self.hold_s, self.gap_s)):
            raise ValueError("strain parameters must be finite numbers")
        if self.hold_s < 0 or self.gap_s < 0:
            raise ValueError("hold_s and gap_s must not be negative")


@dataclass(frozen=True)
class MinuteExposure:
    """One row per UTC minute from `start`."""

    start: datetime
    wear_s: FloatArray
    strain_s: FloatArray
    strain_load: FloatArray  # degree-minutes
    flex_mean: FloatArray  # degrees, NaN without wear
    flex_max: FloatArray

    def __len__(self) -> int:
        return int(self.wear_s.size)

    @property
    def minute_epoch_s(self) -> NDArray[np.int64]:
        return epoch_s(self.start) + 60 * np.arange(len(self), dtype=np.int64)

    def iso_times(self) -> NDArray[np.str_]:
        return iso_seconds(self.minute_epoch_s)


@dataclass(frozen=True)
class DailyExposure:
    day: NDArray[np.datetime64]  # UTC dates
    wear_s: FloatArray
    strain_s: FloatArray

    @property
    def strain_fraction(self) -> FloatArray:
        """Strain as a share of wear time (NaN for days without wear)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.wear_s > 0, self.strain_s / self.wear_s, np.nan)


def daily(exposure: MinuteExposure) -> DailyExposure:
    """Per-UTC-day totals of wear and strain."""
    minutes = exposure.minute_epoch_s.astype("datetime64[s]")
    days = minutes.astype("datetime64[D]")
    uniq, idx = np.unique(days, return_inverse=True)
    n = uniq.size
    return DailyExposure(
        day=uniq,
        wear_s=_sum_by(idx, weights=exposure.wear_s, minlength=n),
        strain_s=_sum_by(idx, weights=exposure.strain_s, minlength=n),
    )


def _sum_by(
    index: NDArray[np.intp], weights: NDArray[np.float64] | NDArray[np.bool_] | None = None,
    minlength: int = 0,
) -> FloatArray:
    """Sum of weights (or counts) per index, as floats."""
    return np.bincount(index, weights=weights, minlength=minlength).astype(np.float64)


def kept_runs(
    starts: FloatArray, ends: FloatArray, params: StrainParams
) -> tuple[NDArray[np.bool_], FloatArray, FloatArray]:
    """Which time-ordered strain intervals belong to a kept bout, and the kept bouts' spans."""
    if starts.size == 0:
        empty = np.zeros(0)
        return np.zeros(0, dtype=bool), empty, empty
    new_run = np.empty(starts.size, dtype=bool)
    new_run[0] = True
    new_run[1:] = starts[1:] - ends[:-1] > params.gap_s
    run = np.cumsum(new_run) - 1
    first = np.flatnonzero(new_run)
    last = np.append(first[1:], starts.size) - 1
    run_start = starts[first]
    run_end = ends[last]
    keep_run = run_end - run_start >= params.hold_s
    return keep_run[run], run_start[keep_run], run_end[keep_run]


@dataclass(frozen=True)
class _Pieces:
    """The schedule cut at every segment edge and minute boundary: flexion is linear in each."""

    a: FloatArray
    b: FloatArray
    fa: FloatArray
    fb: FloatArray
    valid: NDArray[np.bool_]
    minute: NDArray[np.intp]
    n_minutes: int


def _pieces(schedule: Schedule, worn_only: bool) -> _Pieces:
    total = schedule.duration_s
    n_minutes = math.ceil(total / 60.0)
    grid = 60.0 * np.arange(n_minutes, dtype=np.float64)
    edges = np.union1d(schedule.edges, grid)
    a = edges[:-1]
    b = edges[1:]
    seg = schedule.segment_at(a)
    base = schedule.flexion[seg] - schedule.drift[seg] * schedule.t0[seg]
    fa = base + schedule.drift[seg] * a
    fb = base + schedule.drift[seg] * b
    valid = schedule.worn[seg] if worn_only else np.ones(a.size, dtype=bool)
    minute = np.minimum((a // 60.0).astype(np.intp), n_minutes - 1)
    return _Pieces(a, b, fa, fb, valid, minute, n_minutes)


def _above(p: _Pieces, threshold: float) -> tuple[NDArray[np.intp], FloatArray, FloatArray]:
    """Pieces with flexion above the threshold, and the [u, v) part of each that is above."""
    above_a = p.fa > threshold
    above_b = p.fb > threshold
    idx = np.flatnonzero(p.valid & (above_a | above_b))
    a, b, fa, fb = p.a[idx], p.b[idx], p.fa[idx], p.fb[idx]
    with np.errstate(invalid="ignore", divide="ignore"):
        cross = a + (threshold - fa) / (fb - fa) * (b - a)
    u = np.where(above_a[idx], a, cross)
    v = np.where(above_b[idx], b, cross)
    ok = v > u
    return idx[ok], u[ok], v[ok]


def schedule_bouts(
    schedule: Schedule, params: StrainParams | None = None, worn_only: bool = True
) -> tuple[FloatArray, FloatArray]:
    """(start_s, end_s) of every kept strain bout, seconds after the schedule start."""
    prm = params or StrainParams()
    _, u, v = _above(_pieces(schedule, worn_only), prm.threshold_deg)
    _, start, end = kept_runs(u, v, prm)
    return start, end


def schedule_exposure(
    schedule: Schedule, params: StrainParams | None = None, worn_only: bool = True
) -> MinuteExposure:
    """Exact per-minute exposure of the schedule's target posture.

    With `worn_only=False` every moment counts as worn: that is the wearer's true exposure,
    including the hours the device did not see (what a headache model should react to).
    """
    prm = params or StrainParams()
    p = _pieces(schedule, worn_only)
    thr = prm.threshold_deg
    dur = p.b - p.a
    n = p.n_minutes
    worn_dur = np.where(p.valid, dur, 0.0)
    wear_s = _sum_by(p.minute, weights=worn_dur, minlength=n)
    flex_sum = _sum_by(p.minute, weights=0.5 * (p.fa + p.fb) * worn_dur, minlength=n)
    flex_max = np.full(n, -np.inf)
    np.maximum.at(flex_max, p.minute[p.valid], np.maximum(p.fa, p.fb)[p.valid])

    idx, u, v = _above(p, thr)
    keep, _, _ = kept_runs(u, v, prm)
    idx, u, v = idx[keep], u[keep], v[keep]
    slope = (p.fb[idx] - p.fa[idx]) / (p.b[idx] - p.a[idx])
    excess_u = p.fa[idx] + slope * (u - p.a[idx]) - thr
    excess_v = p.fa[idx] + slope * (v - p.a[idx]) - thr
    minute = p.minute[idx]
    strain_s = _sum_by(minute, weights=v - u, minlength=n)
    load = _sum_by(minute, weights=0.5 * (excess_u + excess_v) * (v - u), minlength=n) / 60.0
    return _finish(schedule.start, wear_s, strain_s, load, flex_sum, flex_max)


def _finish(
    start: datetime,
    wear_s: FloatArray,
    strain_s: FloatArray,
    load: FloatArray,
    flex_sum: FloatArray,
    flex_max: FloatArray,
) -> MinuteExposure:
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(wear_s > 0, flex_sum / wear_s, np.nan)
    return MinuteExposure(
        start=start,
        wear_s=wear_s,
        strain_s=strain_s,
        strain_load=load,
        flex_mean=mean,
        flex_max=np.where(np.isfinite(flex_max) & (wear_s > 0), flex_max, np.nan),
    )


def trace_exposure(
    chunks: Iterable[TraceChunk], params: StrainParams | None = None
) -> MinuteExposure:
    """Per-minute exposure measured on rendered samples (1-second flexion means)."""
    prm = params or StrainParams()
    parts: list[tuple[int, FloatArray, FloatArray, FloatArray, FloatArray]] = []
    start: datetime | None = None
    rate = 1.0
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        start = chunk.start if start is None else start
        rate = chunk.rate_hz
        sec = np.floor(chunk.t).astype(np.int64)
        first = int(sec[0])
        local = sec - first
        n_sec = int(local[-1]) + 1
        worn = chunk.worn
        flex = np.where(worn, chunk.flexion, 0.0)
        count = _sum_by(local, minlength=n_sec)
        worn_count = _sum_by(local, weights=worn, minlength=n_sec)
        flex_sum = _sum_by(local, weights=flex, minlength=n_sec)
        bounds = np.flatnonzero(np.diff(local)) + 1
        starts = np.concatenate(([0], bounds))
        peak = np.full(n_sec, -np.inf)
        peak[local[starts]] = np.maximum.reduceat(np.where(worn, chunk.flexion, -np.inf), starts)
        parts.append((first, count, worn_count, flex_sum, peak))
    if start is None:
        raise ValueError("the trace has no samples")

    total = max(f + c.size for f, c, *_ in parts)
    count = np.zeros(total)
    worn_count = np.zeros(total)
    flex_sum = np.zeros(total)
    peak = np.full(total, -np.inf)
    for first, c, w, f, pk in parts:
        sl = slice(first, first + c.size)
        count[sl] += c
        worn_count[sl] += w
        flex_sum[sl] += f
        peak[sl] = np.maximum(peak[sl], pk)

    with np.errstate(invalid="ignore", divide="ignore"):
        flex_sec = np.where(worn_count > 0, flex_sum / worn_count, np.nan)
        worn_frac = np.where(count > 0, worn_count / count, 0.0)
    above = np.flatnonzero((worn_frac >= 0.5) & (flex_sec > prm.threshold_deg))
    seconds = above.astype(np.float64)
    keep, _, _ = kept_runs(seconds, seconds + 1.0, prm)
    kept = above[keep]

    n_minutes = math.ceil(total / 60.0)
    minute_of = np.arange(total) // 60
    wear_s = _sum_by(minute_of, weights=worn_count / rate, minlength=n_minutes)
    strain_s = _sum_by(minute_of[kept], weights=worn_frac[kept], minlength=n_minutes)
    load = _sum_by(
        minute_of[kept],
        weights=(flex_sec[kept] - prm.threshold_deg) * worn_frac[kept],
        minlength=n_minutes,
    ) / 60.0
    flex_total = _sum_by(minute_of, weights=flex_sum / rate, minlength=n_minutes)
    flex_max = np.full(n_minutes, -np.inf)
    np.maximum.at(flex_max, minute_of, peak)
    return _finish(start, wear_s, strain_s, load, flex_total, flex_max)


def strain_window_hours(
    strain_s: FloatArray, lag_h: tuple[float, float]
) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Hours of strain in the window [t - lag_h[1], t - lag_h[0]) for every minute t.

    Also returns which minutes have the whole window inside the data.
    """
    lo, hi = lag_h
    if not 0 <= lo < hi:
        raise ValueError("the lag window must satisfy 0 <= start < end")
    lo_m = round(lo * 60)
    hi_m = round(hi * 60)
    cum = np.concatenate(([0.0], np.cumsum(strain_s)))
    t = np.arange(strain_s.size)
    end = np.clip(t - lo_m, 0, strain_s.size)
    begin = np.clip(t - hi_m, 0, strain_s.size)
    return (cum[end] - cum[begin]) / 3600.0, t - hi_m >= 0
