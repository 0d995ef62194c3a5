"""The segment-level schedule and the simulated wearer's days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from neckline.sim import Activity, Schedule, WearerConfig, generate_schedule
from neckline.sim.schedule import concatenate

MONDAY = datetime(2026, 1, 5, tzinfo=UTC)
DAY = 86400.0


def _same(a: Schedule, b: Schedule, exact: bool = True) -> bool:
    def eq(x: np.ndarray, y: np.ndarray) -> bool:
        if x.shape != y.shape:
            return False
        return bool(np.array_equal(x, y) if exact else np.allclose(x, y, rtol=0, atol=1e-6))

    return a.start == b.start and all(
        eq(getattr(a, f), getattr(b, f))
        for f in ("edges", "activity", "worn", "flexion", "drift", "lateral", "axial")
    )


def test_same_seed_same_schedule_and_seeds_differ() -> None:
    a = generate_schedule(7, MONDAY, 3 * DAY)
    b = generate_schedule(7, MONDAY, 3 * DAY)
    c = generate_schedule(8, MONDAY, 3 * DAY)
    assert _same(a, b)
    assert not np.array_equal(a.edges, c.edges)


def test_a_window_equals_the_same_window_of_a_longer_run() -> None:
    long = generate_schedule(3, MONDAY, 5 * DAY)
    start = MONDAY + timedelta(days=2, hours=8, minutes=30)
    short = generate_schedule(3, start, 6 * 3600.0)
    assert short.start == start
    assert short.duration_s == 6 * 3600.0
    offset = (start - MONDAY).total_seconds()
    # Edges are offsets from different midnights, so they agree to rounding, not bit for bit.
    assert _same(short, long.crop(offset, offset + 6 * 3600.0), exact=False)


def test_days_are_contiguous_and_plausible() -> None:
    s = generate_schedule(11, MONDAY, 14 * DAY)
    assert s.duration_s == 14 * DAY
    assert np.all(np.diff(s.edges) > 0)
    assert set(np.unique(s.activity)) <= {int(a) for a in Activity}
    assert not np.any(s.worn & (s.activity == Activity.SLEEP))
    awake = s.activity != Activity.SLEEP
    assert np.all(np.abs(s.flexion[awake]) < 70)
    assert np.all(s.flexion_end()[awake] < 70)
    dur = s.t1 - s.t0
    sleep_h_per_day = dur[s.activity == Activity.SLEEP].sum() / 3600 / 14
    assert 6.5 < sleep_h_per_day < 10.0
    # Desk work creeps forward; nothing else drifts.
    assert np.all(s.drift[s.activity != Activity.DESK] == 0)
    assert np.mean(s.drift[s.activity == Activity.DESK] > 0) > 0.9


def test_weekends_have_less_desk_work_than_weekdays() -> None:
    s = generate_schedule(2, MONDAY, 28 * DAY)
    dur = s.t1 - s.t0
    weekday_of = ((s.t0 // DAY).astype(int)) % 7  # MONDAY is day 0
    desk = s.activity == Activity.DESK
    weekday_desk = dur[desk & (weekday_of < 5)].sum() / 20
    weekend_desk = dur[desk & (weekday_of >= 5)].sum() / 8
    assert weekday_desk > 3 * weekend_desk
    assert weekday_desk > 4 * 3600


def test_some_days_are_not_worn() -> None:
    unworn = 0
    days = 0
    for seed in range(20):
        s = generate_schedule(seed, MONDAY, 28 * DAY)
        worn_s = np.bincount((s.t0 // DAY).astype(int), weights=(s.t1 - s.t0) * s.worn,
                             minlength=28)
        unworn += int(np.sum(worn_s == 0))
        days += 28
    assert 0.035 < unworn / days < 0.11


def test_never_worn_config() -> None:
    cfg = WearerConfig(unworn_weekday_p=1.0, unworn_weekend_p=1.0)
    s = generate_schedule(1, MONDAY, 7 * DAY, cfg)
    assert not s.worn.any()
    assert np.any(s.activity == Activity.DESK)  # the person still works, unobserved


def test_split_and_crop_keep_the_target_flexion() -> None:
    s = generate_schedule(5, MONDAY, DAY)
    t = np.linspace(0, DAY - 1, 5000)
    cut = s.split([1234.5, 40000.25, 70000.0])
    assert len(cut) == len(s) + 3
    assert np.allclose(cut.flexion_at(t), s.flexion_at(t))
    part = s.crop(3600.0, 7200.0)
    assert part.start == MONDAY + timedelta(hours=1)
    tt = np.linspace(0, 3599, 500)
    assert np.allclose(part.flexion_at(tt), s.flexion_at(tt + 3600.0))


def test_concatenate_places_schedules_back_to_back() -> None:
    a = Schedule.from_rows(MONDAY, [(60.0, Activity.DESK, True, 10.0, 0.1, 0.0, 0.0)])
    b = Schedule.from_rows(MONDAY, [(120.0, Activity.PHONE, False, 40.0, 0.0, 1.0, 2.0)])
    c = concatenate([a, b])
    assert list(c.edges) == [0.0, 60.0, 180.0]
    assert list(c.activity) == [Activity.DESK, Activity.PHONE]
    assert c.flexion_at(59.0) == pytest.approx(15.9)


def test_schedule_validation() -> None:
    with pytest.raises(ValueError, match="whole UTC minute"):
        Schedule.from_rows(MONDAY + timedelta(seconds=5), [(60.0, 1, True, 0, 0, 0, 0)])
    with pytest.raises(ValueError, match="increase"):
        Schedule(MONDAY, np.array([0.0, 10.0, 10.0]), np.zeros(2), np.zeros(2), np.zeros(2),
                 np.zeros(2), np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="shape"):
        Schedule(MONDAY, np.array([0.0, 10.0]), np.zeros(2), np.zeros(1), np.zeros(1),
                 np.zeros(1), np.zeros(1), np.zeros(1))
    with pytest.raises(ValueError):
        generate_schedule(1, MONDAY, 0.0)
