"""The referent scheme (month × day type, exclusion around the case, DST), the weekday-adjusted
conditional logistic regression against statsmodels, one-sided tests, and how unbounded
odds ratios are shown."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime

import numpy as np
import pytest
from statsmodels.discrete.conditional_models import ConditionalLogit

from neckline.analysis.clr import conditional_loglik, fit_clr, maximise
from neckline.analysis.correlation import Headaches, correlate
from neckline.analysis.crossover import CrossoverOptions, weekday_design
from neckline.analysis.exposure import from_arrays
from neckline.analysis.oddsformat import interval_text, odds_text
from neckline.analysis.referents import make_strata
from neckline.analysis.sufficiency import stratum_information, window_information
from neckline.commands.correlate import print_tables
from neckline.headache.timeparse import zone
from neckline.sim import HeadacheConfig, simulate_person


def _local(minutes: np.ndarray, tz: object = UTC) -> list[datetime]:
    return [datetime.fromtimestamp(int(m) * 60, UTC).astimezone(tz)  # type: ignore[arg-type]
            for m in minutes if m >= 0]


def test_working_day_referents_in_the_month_leave_out_the_neighbours() -> None:
    onset = int(datetime(2026, 1, 14, 9, 37, 20, tzinfo=UTC).timestamp())  # a Wednesday
    strata = make_strata(np.array([onset]))
    days = _local(strata.minutes[0])
    # Working days of January 2026 except the 12th-16th; the case first, then time order.
    assert [d.day for d in days] == [14, 1, 2, 5, 6, 7, 8, 9, 19, 20, 21, 22, 23, 26, 27, 28,
                                     29, 30]
    assert all((d.hour, d.minute) == (9, 37) and d.weekday() < 5 for d in days)
    assert strata.weekday[0, :len(days)].tolist() == [d.weekday() for d in days]
    assert (strata.weekday[0, len(days):] == -1).all()
    wide = make_strata(np.array([onset]), exclusion_days=0)
    assert (wide.minutes[0] >= 0).sum() == 22  # every working day of January


def test_weekend_referents_are_weekend_days() -> None:
    onset = int(datetime(2026, 1, 18, 20, 5, tzinfo=UTC).timestamp())  # a Sunday
    days = _local(make_strata(np.array([onset])).minutes[0])
    assert [d.day for d in days] == [18, 3, 4, 10, 11, 24, 25, 31]
    assert all(d.weekday() >= 5 and (d.hour, d.minute) == (20, 5) for d in days)
    with pytest.raises(ValueError):
        make_strata(np.array([onset]), exclusion_days=-1)


def test_referents_keep_the_local_clock_across_dst() -> None:
    berlin = zone("Europe/Berlin")
    # Sunday 2026-03-22 10:00 CET = 09:00 UTC; clocks go forward on Sunday the 29th.
    onset = int(datetime(2026, 3, 22, 9, 0, tzinfo=UTC).timestamp())
    row = make_strata(np.array([onset]), berlin).minutes[0]
    local = _local(row, berlin)
    assert [(d.day, d.hour) for d in local] == [(22, 10), (1, 10), (7, 10), (8, 10), (14, 10),
                                                (15, 10), (28, 10), (29, 10)]
    assert [d.hour for d in _local(row)] == [9, 9, 9, 9, 9, 9, 9, 8]
    # 02:30 does not exist on the 29th: that referent moves forward by the jump.
    night = int(datetime(2026, 3, 14, 1, 30, tzinfo=UTC).timestamp())  # Saturday 02:30 CET
    last = _local(make_strata(np.array([night]), berlin).minutes[0], berlin)[-1]
    assert (last.day, last.hour, last.minute) == (29, 3, 30)


def _weekday_data(seed: int, n: int = 60, k: int = 12) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    weekday = rng.integers(0, 7, size=(n, k))
    x = rng.gamma(2.0, 0.6, size=(n, k)) + 0.3 * (weekday >= 5)
    x[:, 0] += 0.6 * rng.random(n)
    mask = np.ones((n, k), dtype=bool)
    mask[::3, -3:] = False
    return x, weekday, mask


def _statsmodels(x: np.ndarray, z: np.ndarray, mask: np.ndarray) -> ConditionalLogit:
    rows, cols = np.nonzero(mask)
    exog = np.column_stack([x[rows, cols], z[rows, cols]])
    return ConditionalLogit((cols == 0).astype(float), exog, groups=rows)


def test_weekday_adjusted_fit_matches_statsmodels() -> None:
    x, weekday, mask = _weekday_data(4)
    mask, z = weekday_design(weekday, mask)
    model = _statsmodels(x, z, mask)
    design = np.concatenate([x[:, :, None], z], axis=2)
    for params in (np.zeros(7), np.linspace(-0.5, 0.7, 7)):
        assert conditional_loglik(params, design, mask) == pytest.approx(
            model.loglike(params), rel=1e-9)
    reference = model.fit(method="newton", disp=False, maxiter=100)
    theta, ll, info = maximise(design, mask)
    assert theta == pytest.approx(np.asarray(reference.params), abs=1e-5)
    assert ll == pytest.approx(reference.llf, rel=1e-9)
    se = np.sqrt(np.diag(np.linalg.inv(info)))
    assert se == pytest.approx(np.asarray(reference.bse), rel=1e-4)
    fit = fit_clr(x, mask, z)
    assert fit.beta == pytest.approx(float(reference.params[0]), abs=1e-5)
    assert fit.se == pytest.approx(float(reference.bse[0]), rel=1e-4)
    # The LR test profiles the weekday effects out: compare with the model without x.
    null = ConditionalLogit(model.endog, model.exog[:, 1:], groups=model.groups).fit(
        method="newton", disp=False, maxiter=100)
    lr = 2 * (reference.llf - null.llf)
    assert fit.p_two_sided == pytest.approx(math.erfc(math.sqrt(lr / 2)), rel=1e-4)


def test_weekdays_without_a_case_drop_out() -> None:
    weekday = np.array([[0, 1, 2, 6], [1, 0, 6, 2], [0, 2, 1, 6]])
    mask = np.ones((3, 4), dtype=bool)
    kept, z = weekday_design(weekday, mask)
    assert not kept[weekday == 6].any() and not kept[weekday == 2].any()
    assert kept[weekday <= 1].all()
    assert z.shape == (3, 4, 6) and z[kept][:, 0].sum() == 3  # Tuesdays (column 0) kept


def test_one_sided_p_follows_the_sign_of_the_estimate() -> None:
    x, weekday, mask = _weekday_data(5)
    mask, z = weekday_design(weekday, mask)
    up = fit_clr(x, mask, z, alternative="greater")
    both = fit_clr(x, mask, z, alternative="two-sided")
    assert up.beta > 0 and up.beta == both.beta
    assert up.p_value == pytest.approx(both.p_value / 2, rel=1e-9)
    assert up.p_two_sided == pytest.approx(both.p_value)
    flipped = x.copy()
    flipped[:, 0] = 2 * x.mean() - x[:, 0]  # the case now tends to be the least exposed
    down = fit_clr(flipped, mask, z, alternative="greater")
    assert down.beta < 0 and down.p_value > 0.5
    with pytest.raises(ValueError):
        fit_clr(x, mask, z, alternative="less-ish")


def test_information_with_weekday_adjustment() -> None:
    x, weekday, mask = _weekday_data(6)
    mask, z = weekday_design(weekday, mask)
    plain = float(stratum_information(x, mask).sum())
    assert window_information(x, mask) == pytest.approx(plain)
    adjusted = window_information(x, mask, z)
    assert 0 < adjusted < plain  # weekend exposure is higher: the weekday terms take a share
    # At β = 0 the expected information of the adjusted fit is that Schur complement.
    design = np.concatenate([x[:, :, None], z], axis=2)
    info = maximise(design, mask, start=np.zeros(7), iterations=0)[2]
    schur = info[0, 0] - info[0, 1:] @ np.linalg.pinv(info[1:, 1:]) @ info[1:, 0]
    assert adjusted == pytest.approx(schur, rel=1e-9)


def test_far_interval_ends_are_unbounded_and_shown_so() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((6, 5))
    x[:5, 0] = x[:5].max(axis=1) + 0.3
    x[5, 0] = x[5, 1:].max() - 0.05  # one stratum keeps the estimate finite, barely
    fit = fit_clr(x, np.ones_like(x, dtype=bool))
    assert math.isfinite(fit.beta) and fit.odds_ratio > 1000
    assert fit.ci_high == math.inf and 1 < fit.or_ci[0] < 1000
    assert odds_text(fit.odds_ratio) == ">1000"
    assert interval_text(*fit.or_ci) == f"{fit.or_ci[0]:.2f}–∞"
    assert odds_text(0.0) == "0" and odds_text(1e-5) == "<0.001" and odds_text(math.nan) == "–"
    assert odds_text(-math.inf) == "0" and odds_text(2.345) == "2.35"


def test_tables_and_json_never_show_huge_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    # Ten days and a handful of headaches: small strata, intervals without an end and
    # finite ends in the millions (this seed has both).
    person = simulate_person(5, days=10, headache=HeadacheConfig(rate_per_week=3.0))
    obs = person.observed
    c = correlate(from_arrays(obs.start, obs.wear_s, obs.strain_s),
                  Headaches(person.diary.onset_epoch_s, tuple(person.diary.kind.tolist())),
                  CrossoverOptions(alternative="two-sided"))
    ends = [e for r in c.windows for e in r.ci]
    assert any(e == math.inf for e in ends)
    assert any(math.isfinite(e) and e > 1e6 for e in ends)
    print_tables(c)
    out = capsys.readouterr().out
    table = out[out.index("Odds ratio per hour"):out.index("excluded:")]
    assert "∞" in table
    assert not re.search(r"\d{5,}", table)  # no ten-digit odds ratios
    data = json.loads(json.dumps(c.to_json(), allow_nan=False))
    for w, r in zip(data["windows"], c.windows, strict=True):
        assert (w["ci_high"] is None) == (not math.isfinite(r.ci[1]))
    assert data["settings"]["alternative"] == "two-sided"
    assert all("p_two_sided" in d for d in data["window_details"])
