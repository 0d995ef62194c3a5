"""Dose-response: odds ratios by exposure quartile within the case-crossover strata.

The cut points are the quartiles of every usable window in the analysed strata (cases and
referents pooled). Each window then falls into a group, and a conditional logistic regression
with indicators for groups 2-4 (and the weekday indicators of the main analysis) gives each
group's odds ratio against the lowest. When many windows have the same exposure (often zero),
equal cut points merge groups, so fewer than four may be reported. Intervals are Wald
intervals: this view is descriptive and is not adjusted for multiplicity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from neckline.analysis.clr import informative_columns, maximise

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
LIMIT = 20.0  # |log OR| beyond this means the group's estimate is unbounded


@dataclass(frozen=True)
class DoseGroup:
    label: str  # "Q1" ...
    low_h: float
    high_h: float
    cases: int
    referents: int
    odds_ratio: float  # 1 for the reference group; NaN when not estimable
    ci_low: float
    ci_high: float
    note: str = ""


def dose_response(x: FloatArray, mask: BoolArray, z: FloatArray | None = None,
                  groups: int = 4) -> list[DoseGroup]:
    """Odds ratio per exposure group; x, mask and covariates z as for `clr.fit_clr`."""
    if x.shape[0] < 2:
        return []
    values = x[mask]
    cuts = np.unique(np.quantile(values, np.linspace(0, 1, groups + 1)[1:-1]))
    group = np.searchsorted(cuts, x, side="right")  # 0 .. len(cuts)
    present = np.unique(group[mask])
    if present.size < 2:
        return []
    edges = np.concatenate(([values.min()], cuts, [values.max()]))
    note = ""
    if not ((group == present[0]) & mask)[:, 0].any():
        # Every odds ratio against an empty reference is infinite: say so instead.
        fitted = [(math.nan, math.nan, math.nan)] * (present.size - 1)
        note = "no headache fell in the lowest quarter, so the others cannot be compared with it"
    else:
        fitted = _fit(group, mask, present, z)
    out: list[DoseGroup] = []
    for k, g in enumerate(present.tolist()):
        in_g = (group == g) & mask
        if k == 0:
            or_, lo, hi = 1.0, 1.0, 1.0
        else:
            or_, lo, hi = fitted[k - 1]
        out.append(DoseGroup(
            label=f"Q{k + 1}",
            low_h=float(edges[g]), high_h=float(edges[g + 1]),
            cases=int(in_g[:, 0].sum()), referents=int(in_g[:, 1:].sum()),
            odds_ratio=or_, ci_low=lo, ci_high=hi,
            note=(note or _unbounded(or_)) if k else "",
        ))
    return out


def _unbounded(odds_ratio: float) -> str:
    if math.isnan(odds_ratio):
        return "not estimable: too few headaches for the likelihood to bound it"
    return ""


def _fit(group: NDArray[np.intp], mask: BoolArray, present: NDArray[np.intp],
         z: FloatArray | None, level: float = 0.95) -> list[tuple[float, float, float]]:
    nan3 = (math.nan, math.nan, math.nan)
    indicators = np.stack([(group == g).astype(np.float64) for g in present[1:]], axis=2)
    covariates = np.zeros((*mask.shape, 0)) if z is None else z
    covariates = informative_columns(np.where(mask[:, :, None], covariates, 0.0), mask)
    design = np.where(mask[:, :, None], np.concatenate([indicators, covariates], axis=2), 0.0)
    theta, _, info = maximise(design, mask)
    cov = np.linalg.pinv(info)
    crit = float(stats.norm.isf((1 - level) / 2))
    out: list[tuple[float, float, float]] = []
    for k in range(present.size - 1):
        b = float(theta[k])
        se = math.sqrt(cov[k, k]) if cov[k, k] > 0 else math.nan
        lo, hi = b - crit * se, b + crit * se
        if not (math.isfinite(se) and abs(b) < LIMIT and abs(lo) < 2 * LIMIT
                and abs(hi) < 2 * LIMIT):
            out.append(nan3)
        else:
            out.append((math.exp(b), math.exp(lo), math.exp(hi)))
    return out
