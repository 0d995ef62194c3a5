"""A simulated wearer's days, as a segment-level `Schedule`.

Each seed is one person: person-level habits are drawn once, then every calendar day gets its
own random effects (more slouching, more phone use, device left at home) from a generator keyed
on (seed, date). A window of a long simulation is therefore identical to a short simulation of
the same window, whatever the span asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from neckline.sim.activities import Activity
from neckline.sim.schedule import Schedule, concatenate
from neckline.sim.timebase import DEFAULT_START, require_minute

DAY_S = 86400.0
MIN_SEGMENT_S = 5.0
FLEXION_CAP_DEG = 55.0


@dataclass(frozen=True)
class WearerConfig:
    """Habits of the simulated population; every person draws their own values around these."""

    desk_flexion_deg: float = 17.0  # typical head flexion right after a self-correction
    desk_flexion_person_sd: float = 1.2
    drift_deg_per_min: float = 1.4  # median forward drift while working at a desk
    drift_person_sd: float = 0.12  # log scale
    correction_min: float = 7.0  # mean time between self-corrections at the desk
    phone_flexion_deg: float = 40.0
    phone_flexion_person_sd: float = 4.0
    day_flexion_sd: float = 2.5  # day-level random effect on all flexion targets
    day_drift_sd: float = 0.3  # day-level random effect on drift (log scale)
    day_phone_sd: float = 0.4  # day-level random effect on phone use (log scale)
    unworn_weekday_p: float = 0.05  # probability that a weekday is not worn at all
    unworn_weekend_p: float = 0.12
    wear_gaps_per_day: float = 0.6  # short off-neck breaks on a worn day (Poisson mean)


@dataclass(frozen=True)
class _Person:
    desk_flexion: float
    drift: float  # degrees per minute
    correction_min: float
    phone_flexion: float
    wake_weekday_h: float
    bed_h: float


@dataclass(frozen=True)
class _DayEffects:
    flexion: float
    drift: float
    phone: float


class _Draws:
    """Standard normal and uniform draws fetched from the generator in bulk.

    A day needs about a thousand scalar draws; one numpy call per scalar would dominate the
    cost of simulating the hundreds of 12-week datasets a validation study needs.
    """

    def __init__(self, rng: np.random.Generator, batch: int = 1024) -> None:
        self._rng = rng
        self._batch = batch
        self._normal: list[float] = []
        self._uniform: list[float] = []

    def normal(self, mean: float = 0.0, sd: float = 1.0) -> float:
        if not self._normal:
            self._normal = self._rng.standard_normal(self._batch).tolist()
        return mean + sd * self._normal.pop()

    def uniform(self, low: float = 0.0, high: float = 1.0) -> float:
        if not self._uniform:
            self._uniform = self._rng.random(self._batch).tolist()
        return low + (high - low) * self._uniform.pop()

    def lognormal_min(self, median: float, sigma: float, low: float, high: float) -> float:
        """A duration in minutes, lognormal around `median` and clipped to [low, high]."""
        return min(high, max(low, median * math.exp(sigma * self.normal())))

    def choice(self, weights: list[float]) -> int:
        u = self.uniform() * sum(weights)
        acc = 0.0
        for i, w in enumerate(weights):
            acc += w
            if u < acc:
                return i
        return len(weights) - 1

    def poisson(self, mean: float) -> int:
        # Inversion by sequential search; the means used here are below one.
        u = self.uniform()
        k = 0
        p = math.exp(-mean)
        cdf = p
        while u > cdf and k < 50:
            k += 1
            p *= mean / k
            cdf += p
        return k


# One menu entry: activity, weight, median minutes, shortest, longest.
_Menu = list[tuple[Activity, float, float, float, float]]

_WORK_BREAKS: _Menu = [
    (Activity.BREAK, 0.35, 7.0, 2.0, 20.0),
    (Activity.TALK, 0.25, 20.0, 5.0, 60.0),
    (Activity.PHONE, 0.25, 4.0, 1.0, 15.0),
    (Activity.WALK, 0.15, 4.0, 1.0, 10.0),
]
_HOME: _Menu = [
    (Activity.BREAK, 0.35, 20.0, 5.0, 60.0),
    (Activity.PHONE, 0.25, 10.0, 2.0, 45.0),
    (Activity.TALK, 0.20, 20.0, 5.0, 60.0),
    (Activity.WALK, 0.10, 15.0, 5.0, 40.0),
    (Activity.DESK, 0.10, 30.0, 10.0, 90.0),
]
_WEEKEND: _Menu = [
    (Activity.BREAK, 0.30, 20.0, 5.0, 60.0),
    (Activity.PHONE, 0.25, 12.0, 2.0, 60.0),
    (Activity.TALK, 0.20, 25.0, 5.0, 90.0),
    (Activity.WALK, 0.17, 30.0, 10.0, 120.0),
    (Activity.DESK, 0.08, 30.0, 10.0, 90.0),
]
_MORNING: _Menu = [
    (Activity.BREAK, 0.6, 10.0, 3.0, 25.0),
    (Activity.PHONE, 0.4, 6.0, 2.0, 20.0),
]


class _DayPlan:
    """Segments of one day in seconds after midnight, appended in time order."""

    def __init__(self, draws: _Draws, person: _Person, effects: _DayEffects) -> None:
        self.d = draws
        self.p = person
        self.e = effects
        self.t = 0.0
        self.starts: list[float] = []
        self.activity: list[int] = []
        self.flexion: list[float] = []
        self.drift: list[float] = []
        self.lateral: list[float] = []
        self.axial: list[float] = []

    def _add(self, end: float, act: Activity, flex: float, drift: float, lat: float,
             ax: float) -> None:
        if end <= self.t:
            return
        self.starts.append(self.t)
        self.activity.append(int(act))
        self.flexion.append(flex)
        self.drift.append(drift)
        self.lateral.append(lat)
        self.axial.append(ax)
        self.t = end

    def sleep_until(self, end: float) -> None:
        self._add(end, Activity.SLEEP, -80.0, 0.0, 0.0, 0.0)

    def activity_for(self, act: Activity, minutes: float, limit: float) -> None:
        """Fill `minutes` (cut at `limit`) with `act`, split where posture shifts naturally."""
        end = min(limit, self.t + 60.0 * minutes)
        d = self.d
        day_flex = self.e.flexion
        while self.t < end:
            if act is Activity.DESK:
                # One drift cycle: upright after a self-correction, creeping forward until the next.
                length = 60.0 * max(1.0, self.p.correction_min * d.uniform(0.3, 1.7))
                flex0 = self.p.desk_flexion + day_flex + d.normal(0.0, 2.0)
                rate = self.p.drift * self.e.drift * math.exp(d.normal(0.0, 0.4)) / 60.0
                rate = min(rate, max(0.0, (FLEXION_CAP_DEG - flex0) / length))
                self._add(min(end, self.t + length), act, flex0, rate, d.normal(0.0, 2.0),
                          d.normal(0.0, 6.0))
            elif act is Activity.PHONE:
                length = 60.0 * d.uniform(1.0, 5.0)
                if d.uniform() < 0.12:
                    flex = d.normal(10.0, 4.0)  # phone held up at eye level
                else:
                    flex = min(65.0, max(20.0, d.normal(self.p.phone_flexion + day_flex, 6.0)))
                self._add(min(end, self.t + length), act, flex, 0.0, d.normal(0.0, 3.0),
                          d.normal(0.0, 5.0))
            elif act is Activity.WALK:
                self._add(end, act, d.normal(8.0, 3.0), 0.0, d.normal(0.0, 1.5),
                          d.normal(0.0, 5.0))
            elif act is Activity.TALK:
                length = 60.0 * d.uniform(0.5, 3.0)
                self._add(min(end, self.t + length), act, d.normal(2.0 + 0.3 * day_flex, 4.0),
                          0.0, d.normal(0.0, 3.0), d.normal(0.0, 20.0))
            elif act is Activity.BREAK:
                length = 60.0 * d.uniform(1.0, 5.0)
                self._add(min(end, self.t + length), act, d.normal(5.0 + 0.3 * day_flex, 5.0),
                          0.0, d.normal(0.0, 3.0), d.normal(0.0, 10.0))
            else:
                self.sleep_until(end)

    def fill(self, menu: _Menu, limit: float) -> None:
        while self.t < limit:
            self.fill_once(menu, limit)

    def work(self, limit: float) -> None:
        """Desk bouts broken by breaks, meetings, phone checks and short walks."""
        while self.t < limit:
            self.activity_for(Activity.DESK, self.d.lognormal_min(45.0, 0.6, 10.0, 120.0), limit)
            self.fill_once(_WORK_BREAKS, limit)

    def fill_once(self, menu: _Menu, limit: float) -> None:
        weights = [w * (self.e.phone if a is Activity.PHONE else 1.0) for a, w, *_ in menu]
        act, _, median, low, high = menu[self.d.choice(weights)]
        self.activity_for(act, self.d.lognormal_min(median, 0.5, low, high), limit)

    def commute(self) -> None:
        d = self.d
        self.activity_for(Activity.WALK, d.uniform(6.0, 15.0), DAY_S)
        if d.uniform() < 0.7:
            self.activity_for(Activity.PHONE, d.uniform(10.0, 30.0), DAY_S)
        else:
            self.activity_for(Activity.WALK, d.uniform(10.0, 20.0), DAY_S)
        self.activity_for(Activity.WALK, d.uniform(3.0, 8.0), DAY_S)


def _draw_person(seed: int, config: WearerConfig) -> _Person:
    d = _Draws(np.random.default_rng([seed, 0]), batch=64)
    return _Person(
        desk_flexion=d.normal(config.desk_flexion_deg, config.desk_flexion_person_sd),
        drift=config.drift_deg_per_min * math.exp(d.normal(0.0, config.drift_person_sd)),
        correction_min=config.correction_min * math.exp(d.normal(0.0, 0.15)),
        phone_flexion=d.normal(config.phone_flexion_deg, config.phone_flexion_person_sd),
        wake_weekday_h=d.normal(6.9, 0.3),
        bed_h=min(23.5, d.normal(22.9, 0.3)),
    )


def _plan_day(seed: int, day: datetime, person: _Person, config: WearerConfig) -> Schedule:
    rng = np.random.default_rng([seed, 1, day.toordinal()])
    d = _Draws(rng)
    effects = _DayEffects(
        flexion=d.normal(0.0, config.day_flexion_sd),
        drift=math.exp(d.normal(0.0, config.day_drift_sd)),
        phone=math.exp(d.normal(0.0, config.day_phone_sd)),
    )
    weekend = day.weekday() >= 5
    h = 3600.0
    # Times of day and wear are drawn before the activities, so that changing how activities
    # are filled in leaves sleep, work hours and wear untouched for the same seed.
    if weekend:
        wake = h * d.normal(person.wake_weekday_h + 1.4, 0.6)
        bed = h * min(23.9, d.normal(person.bed_h + 0.4, 0.5))
    else:
        wake = h * d.normal(person.wake_weekday_h, 0.3)
        bed = h * min(23.9, d.normal(person.bed_h, 0.4))
    leave_home = wake + 60.0 * d.uniform(45.0, 75.0)
    lunch = h * d.normal(12.25, 0.25)
    work_hours = h * d.normal(8.75, 0.4)
    worn_spans = _wear_spans(d, config, weekend, wake, bed)

    plan = _DayPlan(_Draws(np.random.default_rng([seed, 2, day.toordinal()])), person, effects)
    plan.sleep_until(wake)
    if weekend:
        plan.fill(_WEEKEND, bed)
    else:
        plan.fill(_MORNING, leave_home)
        plan.commute()
        arrive = plan.t
        plan.work(lunch)
        plan.activity_for(Activity.WALK, plan.d.uniform(3.0, 8.0), DAY_S)
        plan.activity_for(Activity.TALK, plan.d.uniform(20.0, 40.0), DAY_S)
        plan.activity_for(Activity.PHONE, plan.d.uniform(3.0, 10.0) * effects.phone, DAY_S)
        plan.work(arrive + work_hours)
        plan.commute()
        plan.fill(_HOME, bed)
    plan.sleep_until(DAY_S)

    starts = np.array(plan.starts)
    # Drop slivers left where a block boundary cut an activity short: they merge into the
    # segment before them, which keeps rendering transitions well separated.
    keep = np.ones(starts.size, dtype=bool)
    keep[1:] = np.diff(np.append(starts, DAY_S))[1:] >= MIN_SEGMENT_S
    idx = np.flatnonzero(keep)
    edges = np.append(starts[idx], DAY_S)

    sched = Schedule(
        start=day,
        edges=edges,
        activity=np.asarray(plan.activity, dtype=np.int8)[idx],
        worn=np.zeros(idx.size, dtype=bool),
        flexion=np.asarray(plan.flexion)[idx],
        drift=np.asarray(plan.drift)[idx],
        lateral=np.asarray(plan.lateral)[idx],
        axial=np.asarray(plan.axial)[idx],
    )
    return _apply_wear(sched, worn_spans)


def _wear_spans(
    d: _Draws, config: WearerConfig, weekend: bool, wake: float, bed: float
) -> list[tuple[float, float]]:
    """When the device is on the neck: put on after the morning routine, taken off some time
    before bed, with a few short breaks; some days it is not worn at all."""
    h = 3600.0
    # Always the same number of draws, so a day's wear does not shift later draws.
    skip = d.uniform() < (config.unworn_weekend_p if weekend else config.unworn_weekday_p)
    on = wake + 60.0 * (d.uniform(30.0, 180.0) if weekend else d.uniform(15.0, 75.0))
    off = bed - h * (d.uniform(0.5, 5.0) if weekend else d.uniform(0.3, 3.5))
    n_gaps = d.poisson(config.wear_gaps_per_day)
    gaps = [(d.uniform(on, off), 60.0 * d.lognormal_min(20.0, 0.6, 5.0, 90.0))
            for _ in range(n_gaps)]
    if skip or off <= on:
        return []
    cuts = [on, off]
    for g0, length in gaps:
        cuts += [g0, g0 + length]
    # Overlapping gaps just toggle in sorted order; everything stays within [on, off].
    cuts = sorted(min(max(c, on), off) for c in cuts)
    return [(cuts[i], cuts[i + 1]) for i in range(0, len(cuts) - 1, 2)]


def _apply_wear(sched: Schedule, spans: list[tuple[float, float]]) -> Schedule:
    if not spans:
        return sched
    bounds = np.array(spans, dtype=np.float64).ravel()
    cut = sched.split(bounds)
    mid = 0.5 * (cut.t0 + cut.t1)
    # Even number of span edges at or before the midpoint means "outside every span".
    inside = np.searchsorted(bounds, mid, side="right") % 2 == 1
    worn = inside & (cut.activity != Activity.SLEEP)
    return Schedule(
        start=cut.start,
        edges=cut.edges,
        activity=cut.activity,
        worn=worn,
        flexion=cut.flexion,
        drift=cut.drift,
        lateral=cut.lateral,
        axial=cut.axial,
    )


def generate_schedule(
    seed: int,
    start: datetime = DEFAULT_START,
    duration_s: float = 7 * DAY_S,
    config: WearerConfig | None = None,
) -> Schedule:
    """The schedule of person `seed` from `start` (a whole UTC minute) for `duration_s` seconds."""
    cfg = config or WearerConfig()
    begin = require_minute(start)
    if duration_s <= 0:
        raise ValueError("duration must be positive")
    person = _draw_person(seed, cfg)
    midnight = begin.replace(hour=0, minute=0)
    offset = (begin - midnight).total_seconds()
    n_days = math.ceil((offset + duration_s) / DAY_S)
    days = [_plan_day(seed, midnight + timedelta(days=i), person, cfg) for i in range(n_days)]
    return concatenate(days).crop(offset, offset + duration_s)
