"""A headache-prone person: onsets drawn minute by minute from a log-linear hazard.

log h(t) = log h0 + weekday[t] + A·cos(2π(hour(t) - peak)/24) + β·(S(t) - S̄)

where S(t) is the hours of sustained strain in the lag window [t - lag_end, t - lag_start).
h0 is set so that the expected number of headaches equals `rate_per_week`, whatever the
effects: the weekday and time-of-day terms average to one over a week, the strain term over the
simulated span, and a refractory period (no onset within `refractory_h` of the previous one)
is compensated for. β is the log odds ratio per hour of strain; β = 0 is the null.

With `prodrome`, onsets are drawn first and the schedule is then changed so that the wearer's
head hangs forward in the hours before each onset: reverse causation, for testing that an
analysis excludes the pre-onset window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from neckline.sim.activities import Activity
from neckline.sim.exposure import strain_window_hours
from neckline.sim.schedule import Schedule
from neckline.sim.timebase import epoch_s, iso_seconds, require_minute

FloatArray = NDArray[np.float64]

HEADACHE_TYPES = ("migraine", "tension", "other", "unknown")
MINUTES_PER_WEEK = 7 * 24 * 60


@dataclass(frozen=True)
class HeadacheConfig:
    rate_per_week: float = 2.5
    log_or_per_hour: float = 0.0  # β: log odds ratio per hour of strain in the lag window
    lag_h: tuple[float, float] = (6.0, 12.0)  # window start and end, hours before onset
    weekday_log_rr: tuple[float, float, float, float, float, float, float] = (
        0.10, 0.0, 0.0, 0.0, 0.05, 0.15, -0.10,  # Monday .. Sunday
    )
    tod_amplitude: float = 0.5  # log-hazard amplitude of the daily cycle
    tod_peak_h: float = 8.0  # UTC hour at which onsets are most likely
    refractory_h: float = 12.0
    prodrome: bool = False
    prodrome_h: float = 2.0
    prodrome_flexion_deg: float = 38.0
    type_weights: tuple[float, float, float, float] = (0.45, 0.35, 0.10, 0.10)
    severity_mean: float = 5.5
    severity_sd: float = 2.0

    def __post_init__(self) -> None:
        numbers = (self.rate_per_week, self.log_or_per_hour, *self.lag_h, *self.weekday_log_rr,
                   self.tod_amplitude, self.tod_peak_h, self.refractory_h, self.prodrome_h,
                   self.prodrome_flexion_deg, *self.type_weights, self.severity_mean,
                   self.severity_sd)
        if not all(math.isfinite(v) for v in numbers):
            raise ValueError("headache parameters must be finite numbers")
        if min(self.type_weights) < 0 or sum(self.type_weights) <= 0:
            raise ValueError("type_weights must be non-negative and not all zero")
        if not self.rate_per_week > 0:
            raise ValueError("rate_per_week must be positive")
        if self.refractory_h < 0:
            raise ValueError("refractory_h must not be negative")
        if self.rate_per_week / 168.0 * self.refractory_h >= 0.9:
            raise ValueError("the refractory period leaves no room for that many headaches")
        lo, hi = self.lag_h
        if not 0 <= lo < hi:
            raise ValueError("lag_h must satisfy 0 <= start < end")
        if len(self.weekday_log_rr) != 7:
            raise ValueError("weekday_log_rr needs seven values, Monday first")
        if self.prodrome_h <= 0:
            raise ValueError("prodrome_h must be positive")


@dataclass(frozen=True)
class Diary:
    """Headache onsets, at minute resolution."""

    onset_epoch_s: NDArray[np.int64]
    severity: NDArray[np.int8]  # 0-10
    kind: NDArray[np.str_]  # one of HEADACHE_TYPES

    def __len__(self) -> int:
        return int(self.onset_epoch_s.size)

    def iso_onsets(self) -> NDArray[np.str_]:
        return iso_seconds(self.onset_epoch_s)


def calendar_log_hazard(minute_epoch_s: NDArray[np.int64], config: HeadacheConfig) -> FloatArray:
    """Weekday plus time-of-day log multipliers, normalised to average one over a week."""

    def raw(ep: NDArray[np.int64]) -> FloatArray:
        days = ep // 86400
        weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
        hour = (ep % 86400) / 3600.0
        wd = np.asarray(config.weekday_log_rr, dtype=np.float64)[weekday]
        return wd + config.tod_amplitude * np.cos(2.0 * math.pi * (hour - config.tod_peak_h) / 24)

    week = 60 * np.arange(MINUTES_PER_WEEK, dtype=np.int64)
    norm = math.log(float(np.mean(np.exp(raw(week)))))
    return raw(minute_epoch_s) - norm


def hazard_multiplier(
    minute_epoch_s: NDArray[np.int64], strain_s: FloatArray | None, config: HeadacheConfig
) -> FloatArray:
    """exp(calendar + strain terms) per minute; the strain term averages one over the span."""
    log_m = calendar_log_hazard(minute_epoch_s, config)
    if strain_s is not None and config.log_or_per_hour != 0.0:
        hours, complete = strain_window_hours(strain_s, config.lag_h)
        mean = float(hours[complete].mean()) if complete.any() else 0.0
        # Minutes whose window reaches before the data get the average exposure: no effect.
        term = config.log_or_per_hour * (np.where(complete, hours, mean) - mean)
        term -= math.log(float(np.mean(np.exp(term))))
        log_m = log_m + term
    return np.exp(log_m)


def simulate_headaches(
    seed: int,
    start: datetime,
    n_minutes: int,
    config: HeadacheConfig | None = None,
    strain_s: FloatArray | None = None,
) -> Diary:
    """Onsets over `n_minutes` from `start`; `strain_s` is the per-minute strain driving β."""
    cfg = config or HeadacheConfig()
    begin = require_minute(start)
    if strain_s is not None and strain_s.size != n_minutes:
        raise ValueError("strain_s must have one value per minute")
    minutes = epoch_s(begin) + 60 * np.arange(n_minutes, dtype=np.int64)
    mult = hazard_multiplier(minutes, strain_s, cfg)
    per_hour = cfg.rate_per_week / 168.0
    # Time spent refractory cannot host an onset; raise the rate so the realised mean matches.
    per_hour /= 1.0 - per_hour * cfg.refractory_h
    p = -np.expm1(-per_hour / 60.0 * mult)
    rng = np.random.default_rng([seed, 20])
    candidates = np.flatnonzero(rng.random(n_minutes) < p)
    refractory_min = cfg.refractory_h * 60.0
    kept: list[int] = []
    for m in candidates.tolist():
        if not kept or m - kept[-1] >= refractory_min:
            kept.append(m)
    onsets = np.asarray(kept, dtype=np.int64)
    n = onsets.size
    severity = np.clip(np.rint(rng.normal(cfg.severity_mean, cfg.severity_sd, n)), 1, 10)
    weights = np.asarray(cfg.type_weights, dtype=np.float64)
    kinds = rng.choice(len(HEADACHE_TYPES), size=n, p=weights / weights.sum())
    return Diary(
        onset_epoch_s=minutes[onsets] if n else np.zeros(0, dtype=np.int64),
        severity=severity.astype(np.int8),
        kind=np.asarray(HEADACHE_TYPES)[kinds],
    )


def add_prodrome(schedule: Schedule, diary: Diary, config: HeadacheConfig) -> Schedule:
    """The schedule with the head hanging forward in the `prodrome_h` hours before each onset.

    Awake segments in those windows get at least `prodrome_flexion_deg` of flexion (held, not
    drifting); sleep is left alone. Worn or not, the posture changes; whether the device sees it
    depends on the wear flag.
    """
    offsets = (diary.onset_epoch_s - epoch_s(schedule.start)).astype(np.float64)
    ends = np.clip(offsets, 0.0, schedule.duration_s)
    starts = np.clip(offsets - config.prodrome_h * 3600.0, 0.0, schedule.duration_s)
    keep = ends > starts
    starts, ends = starts[keep], ends[keep]
    if starts.size == 0:
        return schedule
    # Union of the windows, so that a midpoint test by parity is valid even if they overlap.
    order = np.argsort(starts)
    starts, ends = starts[order], np.maximum.accumulate(ends[order])
    new = np.concatenate(([True], starts[1:] > ends[:-1]))
    run = np.cumsum(new) - 1
    u_start = starts[new]
    u_end = np.zeros(u_start.size)
    np.maximum.at(u_end, run, ends)
    bounds = np.column_stack((u_start, u_end)).ravel()

    cut = schedule.split(bounds)
    mid = 0.5 * (cut.t0 + cut.t1)
    inside = np.searchsorted(bounds, mid, side="right") % 2 == 1
    hit = inside & (cut.activity != Activity.SLEEP)
    raise_to = config.prodrome_flexion_deg
    lifted = hit & (cut.flexion < raise_to)
    return replace(
        cut,
        flexion=np.where(lifted, raise_to, cut.flexion),
        drift=np.where(lifted, 0.0, cut.drift),
    )
