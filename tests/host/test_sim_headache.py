"""The headache-prone person: baseline rate, strain effect, calendar effects, prodrome."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from neckline.sim import (
    HEADACHE_TYPES,
    HeadacheConfig,
    simulate_headaches,
    simulate_person,
    strain_window_hours,
)
from neckline.sim.headache import calendar_log_hazard
from neckline.sim.timebase import epoch_s

MONDAY = datetime(2026, 1, 5, tzinfo=UTC)
WEEK_MIN = 7 * 24 * 60


def _flat(**overrides: float | tuple[float, float]) -> HeadacheConfig:
    """No weekday or time-of-day effects, so lagged strain is not confounded by the clock."""
    return HeadacheConfig(weekday_log_rr=(0.0,) * 7, tod_amplitude=0.0, **overrides)  # type: ignore[arg-type]


def _onset_minutes(person_start: datetime, onsets: np.ndarray) -> np.ndarray:
    return ((onsets - epoch_s(person_start)) // 60).astype(int)


def test_null_rate_matches_the_baseline() -> None:
    weeks = 0
    count = 0
    for seed in range(3):
        diary = simulate_headaches(seed, MONDAY, 104 * WEEK_MIN, HeadacheConfig(rate_per_week=2.5))
        weeks += 104
        count += len(diary)
        gaps_h = np.diff(diary.onset_epoch_s) / 3600.0
        assert gaps_h.min() >= 12.0  # refractory period
    # About 780 expected: ±0.25/week is about three standard errors.
    assert count / weeks == pytest.approx(2.5, abs=0.25)


def test_diary_fields() -> None:
    diary = simulate_headaches(1, MONDAY, 12 * WEEK_MIN)
    assert len(diary) > 10
    assert set(diary.kind.tolist()) <= set(HEADACHE_TYPES)
    assert diary.severity.min() >= 0 and diary.severity.max() <= 10
    assert np.all(diary.onset_epoch_s % 60 == 0)
    assert diary.iso_onsets()[0].endswith("Z")
    again = simulate_headaches(1, MONDAY, 12 * WEEK_MIN)
    assert np.array_equal(diary.onset_epoch_s, again.onset_epoch_s)
    assert np.array_equal(diary.kind, again.kind)


def _exposure_shift(log_or: float, seed: int) -> float:
    """Mean lagged strain at onsets minus its overall mean, in standard errors."""
    cfg = _flat(log_or_per_hour=log_or, lag_h=(6.0, 12.0))
    person = simulate_person(seed, MONDAY, days=2 * 364, headache=cfg)
    hours, complete = strain_window_hours(person.true.strain_s, cfg.lag_h)
    idx = _onset_minutes(person.true.start, person.diary.onset_epoch_s)
    idx = idx[complete[idx]]
    assert idx.size > 150
    base = hours[complete]
    return float((hours[idx].mean() - base.mean()) / (base.std() / np.sqrt(idx.size)))


def test_strain_effect_raises_headaches_after_high_strain_windows() -> None:
    # log OR 0.7 per hour: an hour of strain doubles the odds. Fixed seed, two years of data.
    assert _exposure_shift(0.7, seed=5) > 5.0


def test_null_shows_no_strain_effect() -> None:
    assert abs(_exposure_shift(0.0, seed=5)) < 3.0


def test_time_of_day_and_weekday_effects() -> None:
    cfg = HeadacheConfig(
        rate_per_week=3.0,
        tod_amplitude=1.0,
        tod_peak_h=8.0,
        weekday_log_rr=(0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0),
        refractory_h=0.0,
    )
    diary = simulate_headaches(2, MONDAY, 260 * WEEK_MIN, cfg)
    hour = (diary.onset_epoch_s % 86400) // 3600
    morning = np.sum((hour >= 6) & (hour < 10))
    evening = np.sum((hour >= 18) & (hour < 22))
    assert morning > 3 * evening
    weekday = ((diary.onset_epoch_s // 86400) + 3) % 7
    per_day = np.bincount(weekday, minlength=7)
    assert per_day[5] > 2 * np.mean(np.delete(per_day, 5))
    # Normalised: the calendar terms average to one over a week.
    week = epoch_s(MONDAY) + 60 * np.arange(WEEK_MIN, dtype=np.int64)
    assert np.mean(np.exp(calendar_log_hazard(week, cfg))) == pytest.approx(1.0)
    assert len(diary) / 260 == pytest.approx(3.0, abs=0.3)


def test_flat_calendar_has_no_time_of_day_pattern() -> None:
    cfg = _flat(rate_per_week=3.0, refractory_h=0.0)
    diary = simulate_headaches(2, MONDAY, 260 * WEEK_MIN, cfg)
    hour = (diary.onset_epoch_s % 86400) // 3600
    morning = np.sum((hour >= 6) & (hour < 10))
    evening = np.sum((hour >= 18) & (hour < 22))
    assert 0.7 < morning / evening < 1.4


def test_prodrome_raises_strain_just_before_onsets() -> None:
    def pre_onset_hours(prodrome: bool) -> float:
        cfg = HeadacheConfig(prodrome=prodrome)
        person = simulate_person(6, MONDAY, days=364, headache=cfg)
        hours, complete = strain_window_hours(person.observed.strain_s, (0.0, 2.0))
        idx = _onset_minutes(person.observed.start, person.diary.onset_epoch_s)
        return float(hours[idx[complete[idx]]].mean())

    without = pre_onset_hours(False)
    with_prodrome = pre_onset_hours(True)
    assert with_prodrome > without + 0.3
    # Onsets themselves do not depend on posture in prodrome mode.
    a = simulate_person(6, MONDAY, days=56, headache=HeadacheConfig(prodrome=True))
    b = simulate_person(6, MONDAY, days=56, headache=HeadacheConfig(prodrome=False))
    assert np.array_equal(a.diary.onset_epoch_s, b.diary.onset_epoch_s)
    assert a.true.strain_s.sum() > b.true.strain_s.sum()


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        HeadacheConfig(rate_per_week=0.0)
    with pytest.raises(ValueError):
        HeadacheConfig(lag_h=(12.0, 6.0))
    with pytest.raises(ValueError):
        HeadacheConfig(rate_per_week=20.0, refractory_h=12.0)
    with pytest.raises(ValueError):
        simulate_headaches(1, MONDAY, 100, strain_s=np.zeros(99))
