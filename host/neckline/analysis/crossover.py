"""Time-stratified case-crossover: per lag window, the odds ratio of a headache onset per hour
of sustained strain, from conditional logistic regression over the case and its referents.

Each headache is a stratum: its own lag window (the case) and the same window before each
referent time (referents.py: the other working days, or weekend days, of its calendar month at
the same clock time). The model adjusts for the weekday of each member with indicators, because
a stratum mixes Mondays with Tuesdays (or Saturdays with Sundays). Windows without enough wear
are left out (windows.py); a stratum takes part when its case window and at least one referent
window are usable.

The windows' p-values are adjusted together with Holm's method. By default each window's test
is one-sided (H1: more strain before the onset means a higher risk), the question Neckline
asks; `alternative="two-sided"` tests both directions. The 0-2 h window before onset is not
part of that family: a prodrome can change posture before the pain starts, so strain there may
be an effect of the coming headache rather than its cause. It is analysed on its own, with a
two-sided test, because a prodrome could change posture either way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, tzinfo

import numpy as np
from numpy.typing import NDArray

from neckline.analysis.clr import ALTERNATIVES, NOT_ESTIMABLE, ClrFit, fit_clr, holm
from neckline.analysis.exposure import ExposureSeries
from neckline.analysis.referents import DEFAULT_EXCLUSION_DAYS, Strata, make_strata
from neckline.analysis.windows import (
    DEFAULT_WINDOWS,
    PRODROME_WINDOW,
    LagWindow,
    WindowAggregator,
)

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class CrossoverOptions:
    windows: tuple[LagWindow, ...] = DEFAULT_WINDOWS
    prodrome: LagWindow | None = PRODROME_WINDOW  # analysed apart; None: not at all
    tz: tzinfo = UTC
    min_coverage: float = 0.5
    min_usual_h: float = 1.0
    alpha: float = 0.05
    alternative: str = "greater"  # of the windows' tests; the prodrome window is two-sided
    exclusion_days: int = DEFAULT_EXCLUSION_DAYS  # referent days left out around each case

    def __post_init__(self) -> None:
        if not self.windows:
            raise ValueError("at least one lag window is needed")
        if self.prodrome is not None and self.prodrome in self.windows:
            raise ValueError(f"{self.prodrome.label} is both a window and the prodrome window")
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be between 0 and 1")
        if self.alternative not in ALTERNATIVES:
            raise ValueError(f"alternative must be one of {', '.join(ALTERNATIVES)}")
        if not 0 <= self.exclusion_days <= 10:
            raise ValueError("exclusion_days must be between 0 and 10")


@dataclass(frozen=True)
class WindowResult:
    window: LagWindow
    fit: ClrFit
    p_adjusted: float
    n_headaches: int  # headaches offered to the analysis
    case_excluded: int  # case window below the wear coverage (or the device is never on then)
    case_never_worn: int  # of those: the device is usually off at these hours
    no_referent: int  # case usable, but no referent window was
    referents_used: int
    referents_excluded: int
    x: FloatArray = field(repr=False)  # (strata, members) exposures of the strata analysed
    mask: BoolArray = field(repr=False)
    z: FloatArray = field(repr=False)  # (strata, members, q) weekday indicators

    @property
    def n_cases(self) -> int:
        return self.fit.n_strata

    @property
    def odds_ratio(self) -> float:
        return self.fit.odds_ratio

    @property
    def ci(self) -> tuple[float, float]:
        return self.fit.or_ci

    @property
    def mean_case_h(self) -> float:
        return float(self.x[:, 0].mean()) if self.x.size else math.nan

    @property
    def mean_referent_h(self) -> float:
        ref = self.mask[:, 1:]
        return float(self.x[:, 1:][ref].mean()) if ref.any() else math.nan


def weekday_design(weekday: NDArray[np.int64], mask: BoolArray
                   ) -> tuple[BoolArray, FloatArray]:
    """Weekday indicators (Monday is the reference) and the mask without never-case weekdays.

    A weekday on which no analysed headache started has a fitted effect of minus infinity: the
    likelihood then gives its members no weight at any odds ratio. Dropping those members is
    that limit, computed exactly instead of by a diverging fit.
    """
    mask = mask.copy()
    while mask.shape[0]:
        case_days = set(weekday[mask[:, 0], 0].tolist())
        drop = mask & ~np.isin(weekday, list(case_days))
        if not drop.any():
            break
        mask &= ~drop
        mask[:, 0] &= mask[:, 1:].any(axis=1)
    z = np.stack([(weekday == d).astype(np.float64) for d in range(1, 7)], axis=2)
    return mask, np.where(mask[:, :, None], z, 0.0)


def window_design(
    agg: WindowAggregator, strata: Strata, window: LagWindow
) -> tuple[FloatArray, BoolArray, FloatArray, dict[str, int]]:
    """Exposure matrix, usability mask and weekday indicators of the strata analysed in one
    window, with the exclusion counts."""
    minutes = strata.minutes
    if minutes.shape[0] == 0:
        k = minutes.shape[1]
        return np.zeros((0, k)), np.zeros((0, k), dtype=bool), np.zeros((0, k, 6)), {
            "case_excluded": 0, "case_never_worn": 0, "no_referent": 0,
            "referents_used": 0, "referents_excluded": 0,
        }
    values = agg.values(minutes.ravel(), window)
    exists = minutes >= 0
    usable = values.usable.reshape(minutes.shape) & exists
    never = values.never_worn.reshape(minutes.shape) & exists
    x = np.nan_to_num(values.exposure_h.reshape(minutes.shape), nan=0.0)
    case_ok = usable[:, 0]
    has_ref = usable[:, 1:].any(axis=1)
    take = case_ok & has_ref
    counts = {
        "case_excluded": int((~case_ok).sum()),
        "case_never_worn": int((~case_ok & never[:, 0]).sum()),
        "no_referent": int((case_ok & ~has_ref).sum()),
        "referents_used": int(usable[take, 1:].sum()),
        "referents_excluded": int((exists[take, 1:] & ~usable[take, 1:]).sum()),
    }
    mask, z = weekday_design(strata.weekday[take], usable[take])
    keep = mask[:, 0]
    # A stratum whose only usable referents fell on such weekdays has nothing left to compare.
    counts["no_referent"] += int((~keep).sum())
    return x[take][keep], mask[keep], z[keep], counts


def case_crossover(
    series: ExposureSeries,
    onset_epoch_s: NDArray[np.int64],
    options: CrossoverOptions = CrossoverOptions(),
    aggregator: WindowAggregator | None = None,
) -> tuple[list[WindowResult], WindowResult | None]:
    """Results for `options.windows` (Holm-adjusted together) and for the prodrome window."""
    agg = aggregator or WindowAggregator(series, options.tz, options.min_coverage,
                                         options.min_usual_h)
    onsets = np.asarray(onset_epoch_s, dtype=np.int64)
    strata = make_strata(onsets, options.tz, options.exclusion_days)

    def one(window: LagWindow, alternative: str) -> WindowResult:
        x, mask, z, counts = window_design(agg, strata, window)
        fit = fit_clr(x, mask, z, alternative) if x.shape[0] else NOT_ESTIMABLE
        return WindowResult(window, fit, math.nan, int(onsets.size), x=x, mask=mask, z=z,
                            **counts)

    main = [one(w, options.alternative) for w in options.windows]
    adjusted = holm([r.fit.p_value for r in main])
    results = [replace(r, p_adjusted=adj) for r, adj in zip(main, adjusted, strict=True)]
    prodrome = None
    if options.prodrome is not None:
        # A single, separately reported test: its adjusted p is its own p.
        alone = one(options.prodrome, "two-sided")
        prodrome = replace(alone, p_adjusted=alone.fit.p_value)
    return results, prodrome


def strongest(results: Sequence[WindowResult]) -> WindowResult | None:
    """The window with the smallest p-value (None when nothing could be estimated)."""
    tested = [r for r in results if not math.isnan(r.fit.p_value)]
    return min(tested, key=lambda r: r.fit.p_value) if tested else None
