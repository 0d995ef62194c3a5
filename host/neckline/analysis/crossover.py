"""Time-stratified case-crossover: per lag window, the odds ratio of a headache onset per hour
of sustained strain, from conditional logistic regression over the case and its referents.

Each headache is a stratum: its own lag window (the case) and the same window before each
referent time (referents.py). Windows without enough wear are left out (windows.py); a stratum
takes part when its case window and at least one referent window are usable. The windows'
p-values are adjusted together with Holm's method. The 0-2 h window before onset is not part of
that family: a prodrome can change posture before the pain starts, so strain there may be an
effect of the coming headache rather than its cause. It is analysed and reported on its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, tzinfo

import numpy as np
from numpy.typing import NDArray

from neckline.analysis.clr import NOT_ESTIMABLE, ClrFit, fit_clr, holm
from neckline.analysis.exposure import ExposureSeries
from neckline.analysis.referents import stratum_minutes
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

    def __post_init__(self) -> None:
        if not self.windows:
            raise ValueError("at least one lag window is needed")
        if self.prodrome is not None and self.prodrome in self.windows:
            raise ValueError(f"{self.prodrome.label} is both a window and the prodrome window")
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be between 0 and 1")


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


def window_design(
    agg: WindowAggregator, strata: NDArray[np.int64], window: LagWindow
) -> tuple[FloatArray, BoolArray, dict[str, int]]:
    """Exposure matrix and usability mask of every stratum for one window, with counts."""
    if strata.size == 0:
        empty = np.zeros((0, strata.shape[1] if strata.ndim == 2 else 1))
        return empty, empty.astype(bool), {
            "case_excluded": 0, "case_never_worn": 0, "no_referent": 0,
            "referents_used": 0, "referents_excluded": 0,
        }
    values = agg.values(strata.ravel(), window)
    exists = (strata >= 0)
    usable = values.usable.reshape(strata.shape) & exists
    never = values.never_worn.reshape(strata.shape) & exists
    x = np.nan_to_num(values.exposure_h.reshape(strata.shape), nan=0.0)
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
    return x[take], usable[take], counts


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
    strata = stratum_minutes(onsets, options.tz)

    def one(window: LagWindow) -> tuple[LagWindow, ClrFit, FloatArray, BoolArray, dict[str, int]]:
        x, mask, counts = window_design(agg, strata, window)
        fit = fit_clr(x, mask) if x.shape[0] else NOT_ESTIMABLE
        return window, fit, x, mask, counts

    main = [one(w) for w in options.windows]
    adjusted = holm([fit.p_value for _, fit, *_ in main])
    results = [
        WindowResult(w, fit, adj, int(onsets.size), x=x, mask=mask, **counts)
        for (w, fit, x, mask, counts), adj in zip(main, adjusted, strict=True)
    ]
    prodrome = None
    if options.prodrome is not None:
        w, fit, x, mask, counts = one(options.prodrome)
        # A single, separately reported test: its adjusted p is its own p.
        prodrome = WindowResult(w, fit, fit.p_value, int(onsets.size), x=x, mask=mask, **counts)
    return results, prodrome


def strongest(results: Sequence[WindowResult]) -> WindowResult | None:
    """The window with the smallest p-value (None when nothing could be estimated)."""
    tested = [r for r in results if not math.isnan(r.fit.p_value)]
    return min(tested, key=lambda r: r.fit.p_value) if tested else None
