"""The case-crossover statistics: CLR against statsmodels, Holm, wear coverage, planted effects
found in the right window, the null not found, tiny data. Referents, weekday covariates,
one-sided tests and unbounded intervals: test_correlate_design.py."""

from __future__ import annotations

import itertools
import json
import math
from datetime import UTC, datetime

import numpy as np
import pytest
from scipy import stats
from statsmodels.discrete.conditional_models import ConditionalLogit

from neckline.analysis.clr import fit_clr, holm, loglik
from neckline.analysis.correlation import Headaches, correlate
from neckline.analysis.crossover import CrossoverOptions, case_crossover
from neckline.analysis.doseresponse import dose_response
from neckline.analysis.exposure import ExposureSeries, from_arrays, from_minutes
from neckline.analysis.sufficiency import assess, predicted_power, required_information
from neckline.analysis.windows import LagWindow, WindowAggregator, parse_windows
from neckline.sim import HeadacheConfig, simulate_person


def _matched(seed: int, n: int = 40, k: int = 5, shift: float = 0.7
             ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.gamma(2.0, 0.6, size=(n, k))
    x[:, 0] += shift * rng.random(n)
    mask = np.ones((n, k), dtype=bool)
    mask[::4, 4] = False  # strata of different sizes
    return x, mask


def _statsmodels(x: np.ndarray, mask: np.ndarray) -> ConditionalLogit:
    rows, cols = np.nonzero(mask)
    return ConditionalLogit((cols == 0).astype(float), x[rows, cols].reshape(-1, 1),
                            groups=rows)


def test_clr_matches_statsmodels_likelihood_and_estimate() -> None:
    x, mask = _matched(1)
    model = _statsmodels(x, mask)
    for beta in (-0.7, 0.0, 0.4, 1.3):
        assert loglik(beta, x, mask) == pytest.approx(model.loglike(np.array([beta])), rel=1e-9)
    reference = model.fit(method="newton", disp=False)
    fit = fit_clr(x, mask)
    assert fit.beta == pytest.approx(float(reference.params[0]), abs=1e-4)
    assert fit.se == pytest.approx(float(reference.bse[0]), rel=1e-3)
    lr = 2 * (reference.llf - model.loglike(np.array([0.0])))
    assert fit.p_value == pytest.approx(float(stats.chi2.sf(lr, 1)), rel=1e-4)
    # The profile interval's ends lie where the likelihood has dropped by chi2(0.95)/2.
    llmax = loglik(fit.beta, x, mask)
    for end in (fit.ci_low, fit.ci_high):
        assert 2 * (llmax - loglik(end, x, mask)) == pytest.approx(3.841459, abs=1e-5)
    assert fit.ci_low < fit.beta < fit.ci_high
    assert fit.n_strata == 40


def test_separation_and_degenerate_inputs() -> None:
    x, mask = _matched(2, n=12)
    x[:, 0] = x.max(axis=1) + 0.5
    fit = fit_clr(x, mask)
    assert fit.odds_ratio == math.inf and fit.ci_high == math.inf
    assert math.isfinite(fit.ci_low) and fit.p_value < 0.01 and "no upper bound" in fit.note
    flat = fit_clr(np.ones((5, 4)), np.ones((5, 4), dtype=bool))
    assert math.isnan(flat.beta) and "no exposure contrast" in flat.note
    alone = np.zeros((3, 4), dtype=bool)
    alone[:, 0] = True  # cases without any referent take no part
    assert fit_clr(np.ones((3, 4)), alone).n_strata == 0


def test_holm() -> None:
    adjusted = holm([0.01, 0.04, 0.03, 0.2, math.nan])
    assert adjusted[:4] == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert math.isnan(adjusted[4])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_non_wear_is_never_zero_strain() -> None:
    # Two worn days at 10-16 h with 3 h of strain, one day worn only 10-11 h with no strain.
    start = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp()) // 60
    minutes, wear, strain = [], [], []
    for day, hours in ((0, range(10, 16)), (1, range(10, 16)), (2, range(10, 11))):
        for h in hours:
            for m in range(60):
                minutes.append(start + day * 1440 + h * 60 + m)
                wear.append(60.0)
                strain.append(30.0 if day < 2 else 0.0)
    series = from_minutes(np.array(minutes), np.array(wear), np.array(strain))
    agg = WindowAggregator(series, min_coverage=0.5, min_usual_h=1.0)
    onsets = np.array([start + d * 1440 + 17 * 60 for d in range(3)])  # 17:00, window 11-17 h
    values = agg.values(onsets, LagWindow(0, 6))
    # The usual wear at 11-16 h is 2/3 of each minute (worn on two of three worn days).
    usual_h = 5 * 2 / 3
    assert values.usual_h == pytest.approx([usual_h] * 3)
    assert values.usable.tolist() == [True, True, False]  # day 3: not worn in the window
    # Half the worn time was strain, and that share stands for all the usual wearing time.
    assert values.exposure_h[:2] == pytest.approx([0.5 * usual_h] * 2)
    assert math.isnan(values.exposure_h[2])
    night = agg.values(onsets - 12 * 60, LagWindow(0, 4))  # 01:00-05:00: never worn
    assert not night.usable.any() and night.never_worn.all()


def test_parse_windows() -> None:
    assert [w.label for w in parse_windows("2-6, 6-12h,0.5-1")] == ["2-6h", "6-12h", "0.5-1h"]
    for bad in ("6-2", "x", "2-6,2-6", "1-2000"):
        with pytest.raises(ValueError):
            parse_windows(bad)


def _series(person: object) -> ExposureSeries:
    obs = person.observed  # type: ignore[attr-defined]
    return from_arrays(obs.start, obs.wear_s, obs.strain_s)


def test_planted_effect_is_found_in_its_window() -> None:
    cfg = HeadacheConfig(rate_per_week=3.0, log_or_per_hour=math.log(4.0), lag_h=(6.0, 12.0))
    person = simulate_person(11, days=168, headache=cfg)
    results, prodrome = case_crossover(_series(person), person.diary.onset_epoch_s)
    by = {r.window.label: r for r in results}
    best = min(results, key=lambda r: r.fit.p_value)
    assert best.window.label == "6-12h"
    assert by["6-12h"].p_adjusted < 0.01
    assert by["6-12h"].odds_ratio > 1.5 and by["6-12h"].ci[0] > 1.0
    assert by["24-48h"].p_adjusted > 0.05
    assert prodrome is not None and prodrome.window.label == "0-2h"


def test_null_datasets_are_mostly_quiet() -> None:
    flagged = 0
    for seed in range(30, 36):
        person = simulate_person(seed, days=84, headache=HeadacheConfig(rate_per_week=2.1))
        results, _ = case_crossover(_series(person), person.diary.onset_epoch_s)
        flagged += any(r.p_adjusted < 0.05 for r in results)
    assert flagged <= 1


def test_prodrome_shows_up_only_in_the_excluded_window() -> None:
    cfg = HeadacheConfig(rate_per_week=3.0, prodrome=True)
    person = simulate_person(5, days=112, headache=cfg)
    results, prodrome = case_crossover(_series(person), person.diary.onset_epoch_s)
    assert prodrome is not None and prodrome.fit.p_value < 0.001 and prodrome.odds_ratio > 1
    assert all(r.p_adjusted > 0.05 for r in results)


def test_tiny_and_empty_data_give_an_honest_verdict() -> None:
    person = simulate_person(2, days=21, headache=HeadacheConfig(rate_per_week=1.0))
    series = _series(person)
    for onsets in (np.zeros(0, dtype=np.int64), person.diary.onset_epoch_s[:2]):
        h = Headaches(onsets, ("migraine",) * onsets.size)
        c = correlate(series, h)
        assert not c.sufficiency.sufficient
        assert c.sufficiency.verdict.startswith(f"not enough data yet: {onsets.size} headaches, ")
        assert "more headaches are needed to detect OR ≥ 2" in c.sufficiency.verdict
        assert len(c.to_json()["windows"]) == 4
    nothing = correlate(ExposureSeries.empty(), Headaches(np.zeros(0, dtype=np.int64), ()))
    assert "No neck-strain data yet" in nothing.to_json()["summary"]
    assert nothing.to_json()["windows"][0]["odds_ratio"] is None


def test_type_filter() -> None:
    person = simulate_person(4, days=56, headache=HeadacheConfig(rate_per_week=3.0))
    h = Headaches(person.diary.onset_epoch_s, tuple(person.diary.kind.tolist()))
    only = correlate(_series(person), h, types=["migraine"])
    assert len(only.headaches) == person.diary.kind.tolist().count("migraine")
    assert only.headaches_total == len(h)
    with pytest.raises(ValueError, match="unknown headache type"):
        h.of_types(["cluster"])


def test_sufficiency_formula() -> None:
    need = required_information(0.05, 4)  # one-sided tests, the default
    assert need == pytest.approx((stats.norm.isf(0.05 / 4) + stats.norm.ppf(0.8)) ** 2
                                 / math.log(2) ** 2)
    assert predicted_power(need, math.log(2), 0.05, 4) == pytest.approx(0.8, abs=0.001)
    both = required_information(0.05, 4, one_sided=False)
    assert both == pytest.approx((stats.norm.isf(0.05 / 8) + stats.norm.ppf(0.8)) ** 2
                                 / math.log(2) ** 2)
    assert predicted_power(both, math.log(2), 0.05, 4, one_sided=False) == pytest.approx(
        0.8, abs=0.001)
    person = simulate_person(8, days=84, headache=HeadacheConfig(rate_per_week=2.5))
    results, _ = case_crossover(_series(person), person.diary.onset_epoch_s,
                                CrossoverOptions())
    verdict = assess(results, len(person.diary), 80)
    assert not verdict.from_prior and verdict.more_needed > 0
    assert verdict.needed_total == len(person.diary) + verdict.more_needed
    assert 0 < verdict.power_now < 0.8


def test_dose_response_by_quartile() -> None:
    x, mask = _matched(3, n=200, shift=2.0)
    groups = dose_response(x, mask)
    assert [g.label for g in groups] == ["Q1", "Q2", "Q3", "Q4"]
    assert groups[0].odds_ratio == 1.0
    assert sum(g.cases for g in groups) == 200
    assert sum(g.referents for g in groups) == int(mask[:, 1:].sum())
    assert groups[-1].odds_ratio > groups[1].odds_ratio and groups[-1].ci_low > 1
    assert all(a.high_h <= b.low_h + 1e-12 for a, b in itertools.pairwise(groups))
    x[:, 0] = x.max(axis=1) + 5  # no case in the lowest quarter
    empty = dose_response(x, mask)
    assert math.isnan(empty[1].odds_ratio) and "lowest quarter" in empty[1].note
    assert dose_response(x[:1], mask[:1]) == []


def test_json_is_strict_even_without_estimates() -> None:
    person = simulate_person(9, days=14, headache=HeadacheConfig(rate_per_week=1.5))
    c = correlate(_series(person), Headaches(person.diary.onset_epoch_s,
                                             tuple(person.diary.kind.tolist())))
    json.dumps(c.to_json(), allow_nan=False)
