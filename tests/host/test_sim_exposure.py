"""Per-minute exposure: exact schedule path, rendered-trace path and realism of the wearer."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from neckline.sim import (
    Activity,
    RenderConfig,
    Schedule,
    StrainParams,
    daily,
    generate_schedule,
    render,
    schedule_bouts,
    schedule_exposure,
    strain_window_hours,
    trace_exposure,
)

MONDAY = datetime(2026, 1, 5, tzinfo=UTC)
A = Activity


def _rows(*rows: tuple[float, bool, float, float]) -> Schedule:
    """Rows of (duration_s, worn, flexion, drift)."""
    return Schedule.from_rows(MONDAY, [(d, A.DESK, w, f, r, 0.0, 0.0) for d, w, f, r in rows])


def test_held_flexion_counts_whole_bout_and_load() -> None:
    e = schedule_exposure(_rows((120.0, True, 10.0, 0.0), (600.0, True, 30.0, 0.0),
                                (180.0, True, 10.0, 0.0)))
    assert len(e) == 15
    assert e.strain_s.sum() == pytest.approx(600.0)
    assert e.strain_load.sum() == pytest.approx(5.0 * 10.0)  # 5° above for 10 minutes
    assert list(e.strain_s[:2]) == [0.0, 0.0]
    assert list(e.strain_s[2:12]) == pytest.approx([60.0] * 10)
    assert e.wear_s.sum() == pytest.approx(900.0)
    assert e.flex_mean[3] == pytest.approx(30.0)
    assert e.flex_max[2] == pytest.approx(30.0)


def test_short_bouts_are_not_strain_and_gaps_merge() -> None:
    short = schedule_exposure(_rows((60.0, True, 0.0, 0.0), (50.0, True, 40.0, 0.0),
                                    (70.0, True, 0.0, 0.0)))
    assert short.strain_s.sum() == 0.0
    merged = schedule_exposure(_rows((60.0, True, 0.0, 0.0), (40.0, True, 40.0, 0.0),
                                     (3.0, True, 0.0, 0.0), (40.0, True, 40.0, 0.0),
                                     (97.0, True, 0.0, 0.0)))
    assert merged.strain_s.sum() == pytest.approx(80.0)  # the 3 s dip is not counted
    split = schedule_exposure(_rows((60.0, True, 0.0, 0.0), (40.0, True, 40.0, 0.0),
                                    (10.0, True, 0.0, 0.0), (40.0, True, 40.0, 0.0),
                                    (90.0, True, 0.0, 0.0)))
    assert split.strain_s.sum() == 0.0
    lenient = schedule_exposure(_rows((60.0, True, 0.0, 0.0), (40.0, True, 40.0, 0.0),
                                      (10.0, True, 0.0, 0.0), (40.0, True, 40.0, 0.0),
                                      (90.0, True, 0.0, 0.0)),
                                StrainParams(gap_s=15.0))
    assert lenient.strain_s.sum() == pytest.approx(80.0)


def test_drift_across_the_threshold_is_exact() -> None:
    # 20° rising 1°/min for 10 minutes: above 25° for the last 5 minutes.
    e = schedule_exposure(_rows((600.0, True, 20.0, 1.0 / 60.0)))
    assert e.strain_s.sum() == pytest.approx(300.0)
    assert e.strain_load.sum() == pytest.approx(0.5 * 5.0 * 5.0)  # triangle, degree-minutes
    assert e.flex_mean[0] == pytest.approx(20.5)
    assert e.flex_max[9] == pytest.approx(30.0)


def test_unworn_time_is_not_exposure_unless_asked() -> None:
    s = _rows((300.0, True, 30.0, 0.0), (300.0, False, 30.0, 0.0))
    seen = schedule_exposure(s)
    assert seen.wear_s.sum() == pytest.approx(300.0)
    assert seen.strain_s.sum() == pytest.approx(300.0)
    assert np.isnan(seen.flex_mean[7])
    true = schedule_exposure(s, worn_only=False)
    assert true.strain_s.sum() == pytest.approx(600.0)
    assert true.wear_s.sum() == pytest.approx(600.0)


def test_schedule_path_matches_brute_force() -> None:
    s = generate_schedule(4, MONDAY.replace(hour=7), 8 * 3600.0)
    prm = StrainParams()
    fast = schedule_exposure(s, prm)
    # Independent brute force on a 0.1 s grid.
    t = np.arange(0.0, s.duration_s, 0.1) + 0.05
    seg = s.segment_at(t)
    above = s.worn[seg] & (s.flexion_at(t) > prm.threshold_deg)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], above.astype(int), [0]))))
    runs = edges.reshape(-1, 2) * 0.1
    keep = np.zeros(t.size, dtype=bool)
    i = 0
    while i < len(runs):
        j = i
        while j + 1 < len(runs) and runs[j + 1, 0] - runs[j, 1] <= prm.gap_s:
            j += 1
        if runs[j, 1] - runs[i, 0] >= prm.hold_s:
            lo, hi = (runs[i, 0] / 0.1).astype(int), (runs[j, 1] / 0.1).astype(int)
            keep[lo:hi] = True
        i = j + 1
    strain = keep & above
    per_minute = np.bincount((t // 60).astype(int), weights=strain * 0.1, minlength=len(fast))
    assert fast.strain_s.sum() > 1800  # the window has real strain to compare
    assert np.abs(per_minute - fast.strain_s).max() < 0.25
    bout_start, bout_end = schedule_bouts(s, prm)
    assert np.all(bout_end - bout_start >= prm.hold_s)
    assert np.sum(bout_end - bout_start) >= fast.strain_s.sum() - 1e-6


def test_schedule_and_trace_paths_agree_on_a_day() -> None:
    s = generate_schedule(3, MONDAY.replace(hour=6), 14 * 3600.0)
    fast = schedule_exposure(s)
    slow = trace_exposure(render(s, 3, RenderConfig(rate_hz=25.0, chunk_s=3600.0)))
    assert len(slow) == len(fast)
    assert slow.start == fast.start
    assert slow.wear_s.sum() == pytest.approx(fast.wear_s.sum(), rel=0.01)
    assert fast.strain_s.sum() > 3600
    assert slow.strain_s.sum() == pytest.approx(fast.strain_s.sum(), rel=0.15)
    assert slow.strain_load.sum() == pytest.approx(fast.strain_load.sum(), rel=0.15)
    both = np.isfinite(fast.flex_mean) & np.isfinite(slow.flex_mean)
    assert np.mean(np.abs(fast.flex_mean[both] - slow.flex_mean[both])) < 1.5
    assert np.corrcoef(fast.strain_s, slow.strain_s)[0, 1] > 0.9
    assert np.all(slow.flex_max[both] >= slow.flex_mean[both])


def test_simulated_exposure_is_realistic_over_four_weeks() -> None:
    # The ranges stated in docs/simulation.md.
    weekday_minus_weekend = []
    for seed in range(5):
        s = generate_schedule(seed, MONDAY, 28 * 86400.0)
        e = schedule_exposure(s)
        share = e.strain_s.sum() / e.wear_s.sum()
        assert 0.15 <= share <= 0.35, (seed, share)
        start, end = schedule_bouts(s)
        minutes = (end - start) / 60.0
        assert 2.0 <= np.median(minutes) <= 20.0
        assert np.percentile(minutes, 90) < 60.0
        d = daily(e)
        frac = d.strain_fraction
        worn = np.isfinite(frac)
        assert np.nanstd(frac) > 0.05  # days differ
        weekday = np.arange(28) % 7 < 5
        weekday_minus_weekend.append(np.nanmean(frac[weekday & worn]) -
                                     np.nanmean(frac[~weekday & worn]))
        assert 9.0 < d.wear_s[worn].mean() / 3600 < 15.0
    assert np.mean(weekday_minus_weekend) > 0.03


def test_daily_totals_and_times() -> None:
    e = schedule_exposure(generate_schedule(0, MONDAY, 2 * 86400.0))
    d = daily(e)
    assert d.day.astype(str).tolist() == ["2026-01-05", "2026-01-06"]
    assert d.wear_s.sum() == pytest.approx(e.wear_s.sum())
    times = e.iso_times()
    assert times[0] == "2026-01-05T00:00:00Z"
    assert times[61] == "2026-01-05T01:01:00Z"


def test_strain_window_hours() -> None:
    strain = np.zeros(24 * 60)
    strain[60:120] = 60.0  # one hour of strain from 01:00
    hours, complete = strain_window_hours(strain, (6.0, 12.0))
    # A minute counts once its start lies 6 h or more before t.
    assert hours[7 * 60] == pytest.approx(0.0)
    assert hours[7 * 60 + 1] == pytest.approx(1.0 / 60)
    assert hours[8 * 60] == pytest.approx(1.0)
    assert hours[13 * 60] == pytest.approx(1.0)
    assert hours[13 * 60 + 1] == pytest.approx(59.0 / 60)
    assert not complete[12 * 60 - 1] and complete[12 * 60]
    with pytest.raises(ValueError):
        strain_window_hours(strain, (5.0, 2.0))
