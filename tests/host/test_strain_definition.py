"""The strain definition of docs/strain.md on hand-made traces, for the host and the firmware alike.

Every expected value here is worked out by hand from the definition (thresholds, hold, hysteresis,
clear hold, breaks); each test runs against both implementations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from neckline.strain_config import StrainConfig
from tests.firmware.strain_impls import IMPLEMENTATIONS, Outcome, Row

CAL = 0x11  # CALIBRATED | ROTATION_UNRELIABLE
MOTION = CAL | 0x04
NOT_WORN = 0x13
UNCAL = 0x10
NO_VALUE = -32768

# threshold 25°, release below 20°, hold 2 s (20 samples at 100 ms), clear hold 1 s (10 samples).
CFG = StrainConfig(hold_s=2, clear_hold_s=1)
FLEX, EXT, LAT = 0, 1, 2

Impl = Callable[[StrainConfig, Sequence[Row]], Outcome]


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def impl(request: pytest.FixtureRequest) -> Impl:
    return IMPLEMENTATIONS[request.param]


def trace(
    *parts: tuple[int, int] | tuple[int, int, int] | tuple[int, int, int, int],
    t0: int = 0,
    period: int = 100,
) -> list[Row]:
    """Rows from (count, flexion[, flags[, lateral]]) parts; a count < 0 is a pause of -count ms
    added before the next sample."""
    rows: list[Row] = []
    t = t0
    extra = 0
    for part in parts:
        count, flex = part[0], part[1]
        if count < 0:
            extra += -count
            continue
        flags = part[2] if len(part) > 2 else CAL
        lat = part[3] if len(part) > 3 else 0
        for _ in range(count):
            if rows:
                t += period + extra
                extra = 0
            f, la = (flex, lat) if flags & 0x01 else (NO_VALUE, NO_VALUE)
            rows.append((t, period, f, la, flags))
    return rows


def flex_episodes(out: Outcome) -> list[tuple[int, int, int]]:
    return [(s, e, p) for d, s, e, p in out.episodes if d == FLEX]


def test_a_bout_longer_than_the_hold_is_one_episode_from_where_it_began(impl: Impl) -> None:
    out = impl(CFG, trace((10, 1000), (30, 3000), (20, 1000)))
    # Above from t=1000 (sample 10) to 3900; released from t=4000, held 1 s by sample 49.
    assert flex_episodes(out) == [(1000, 4000, 3000)]
    assert out.starts == [(FLEX, 1000)]
    # IN_STRAIN from the sample that completes the hold (10 + 19) until the release completes.
    assert out.in_strain == [0] * 29 + [1] * 20 + [0] * 11
    # One minute: 60 worn samples = 6 s, 30 strain samples = 3 s, mean (10+20)*1000+30*3000 / 60.
    assert out.minutes == [(0, 6, 2000, 3000, 3, 1)]


@pytest.mark.parametrize(("above", "episodes"), [(19, 0), (20, 1)])
def test_the_hold_is_reached_exactly_at_hold_ms_of_covered_time(
    impl: Impl, above: int, episodes: int
) -> None:
    out = impl(CFG, trace((5, 0), (above, 2501), (20, 0)))
    assert len(flex_episodes(out)) == episodes
    assert out.minutes[0][4] == (above // 10 if episodes else 0)


def test_a_dip_into_the_hysteresis_band_stays_inside_the_episode(impl: Impl) -> None:
    # 2000..2500 is the band: not exceeding, not released.
    out = impl(CFG, trace((30, 3000), (5, 2200), (5, 2000), (30, 2600), (20, 0)))
    assert flex_episodes(out) == [(0, 7000, 3000)]
    assert out.minutes[0][4] == 7  # the band samples count as strain


def test_a_band_dip_before_the_hold_breaks_the_run(impl: Impl) -> None:
    out = impl(CFG, trace((10, 3000), (1, 2500), (19, 3000), (10, 0)))
    assert flex_episodes(out) == []
    assert out.minutes[0][4] == 0
    assert out.in_strain == [0] * 40


def test_a_release_shorter_than_the_clear_hold_does_not_end_the_episode(impl: Impl) -> None:
    out = impl(CFG, trace((30, 3000), (9, 1500), (30, 3000), (20, 1000)))
    assert flex_episodes(out) == [(0, 6900, 3000)]
    assert out.minutes[0][4] == 7  # 30 + 9 + 30 samples, rounded to seconds


def test_a_release_held_for_the_clear_hold_ends_the_episode_where_it_began(impl: Impl) -> None:
    out = impl(CFG, trace((30, 3000), (10, 1500), (30, 3200), (20, 1000)))
    assert flex_episodes(out) == [(0, 3000, 3000), (4000, 7000, 3200)]
    assert out.minutes[0][5] == 2


def test_clear_hold_zero_ends_at_the_first_released_sample(impl: Impl) -> None:
    cfg = StrainConfig(hold_s=2, clear_hold_s=0)
    out = impl(cfg, trace((30, 3000), (1, 1999), (30, 3000), (1, 2000), (5, 0)))
    # 2000 is in the band (not strictly below 20.00°), so the second episode ends at the 0s.
    assert flex_episodes(out) == [(0, 3000, 3000), (3100, 6200, 3000)]


def test_not_worn_breaks_the_episode_and_earns_no_credit(impl: Impl) -> None:
    out = impl(CFG, trace((30, 3000), (1, 3000, NOT_WORN), (30, 3000), (20, 0)))
    # The first episode lasts to the end of its last usable sample; the second starts afresh.
    assert flex_episodes(out) == [(0, 3000, 3000), (3100, 6100, 3000)]
    assert out.minutes == [(0, 8, 2250, 3000, 6, 2)]  # 80 usable samples, 60 in strain


def test_uncalibrated_samples_break_like_not_worn(impl: Impl) -> None:
    out = impl(CFG, trace((30, 3000), (3, 3000, UNCAL), (30, 3000), (20, 0)))
    assert flex_episodes(out) == [(0, 3000, 3000), (3300, 6300, 3000)]
    assert out.minutes[0][1] == 8


def test_a_run_broken_by_not_worn_before_the_hold_is_discarded(impl: Impl) -> None:
    out = impl(CFG, trace((15, 3000), (1, 3000, NOT_WORN), (15, 3000), (10, 0)))
    assert flex_episodes(out) == []
    assert out.minutes[0][4] == 0


def test_high_motion_samples_count_with_their_angle(impl: Impl) -> None:
    out = impl(CFG, trace((10, 3000), (10, 3000, MOTION), (10, 3000), (10, 0)))
    assert flex_episodes(out) == [(0, 3000, 3000)]


def test_one_missing_sample_is_no_gap_but_two_are(impl: Impl) -> None:
    one = impl(CFG, trace((30, 3000), (-100, 0), (30, 3000), (20, 0)))
    # Sample spacing 200 ms = two periods: tolerated. The hole earns no strain time.
    assert flex_episodes(one) == [(0, 6100, 3000)]
    assert one.minutes[0][4] == 6
    two = impl(CFG, trace((30, 3000), (-101, 0), (30, 3000), (20, 0)))
    # 201 ms: a gap. The first episode ends with its last sample, the second starts afresh.
    assert flex_episodes(two) == [(0, 3000, 3000), (3101, 6101, 3000)]


def test_extension_and_lateral_are_separate_directions(impl: Impl) -> None:
    # Extension threshold -15°: flexion -20° for 3 s; then a right bend of 22° (lateral 20°).
    out = impl(CFG, trace((30, -2000), (20, 0), (30, 0, CAL, -2200), (20, 0)))
    assert out.episodes == [(EXT, 0, 3000, 2000), (LAT, 5000, 8000, 2200)]
    # Neither is flexion strain: the summary's strain seconds stay 0.
    assert out.minutes[0][4:] == (0, 0)


def test_an_episode_belongs_to_the_minute_it_began_in(impl: Impl) -> None:
    # The run begins 1.5 s before the minute edge and is confirmed 0.5 s after it.
    out = impl(CFG, trace((10, 0), (40, 3000), (20, 0), t0=57_500))
    assert flex_episodes(out) == [(58_500, 62_500, 3000)]
    assert [m[0] for m in out.minutes] == [0, 60]
    # Minute 0 gets the episode and 1.5 s of strain (rounded to 2); minute 1 gets 2.5 s (3).
    assert [(m[4], m[5]) for m in out.minutes] == [(2, 1), (3, 0)]


def test_a_long_sample_is_split_across_minutes(impl: Impl) -> None:
    cfg = StrainConfig(hold_s=60, clear_hold_s=0)
    rows: list[Row] = [(30_000, 60_000, 3000, 0, CAL), (90_000, 60_000, 0, 0, CAL)]
    out = impl(cfg, rows)
    assert flex_episodes(out) == [(30_000, 90_000, 3000)]
    # Minute 0: 30 s worn, all strain; minute 1: 60 s worn, 30 in strain; minute 2: 30 s worn.
    assert [(m[0], m[1], m[4], m[5]) for m in out.minutes] == [
        (0, 30, 30, 1), (60, 60, 30, 0), (120, 30, 0, 0)
    ]


def test_no_samples_no_minutes(impl: Impl) -> None:
    out = impl(CFG, [])
    assert out == Outcome([], [], [], [])


def test_an_open_episode_is_closed_at_the_end_of_the_data(impl: Impl) -> None:
    out = impl(CFG, trace((5, 0), (40, 3000)))
    assert flex_episodes(out) == [(500, 4500, 3000)]
    pending = impl(CFG, trace((5, 0), (19, 3000)))
    assert flex_episodes(pending) == []
    assert pending.minutes[0][4] == 0
