"""Conditional logistic regression for matched sets with one case each (case-crossover).

The fit is statsmodels' `ConditionalLogit`. Tests and confidence intervals use the likelihood
ratio rather than the Wald statistic, because with a few dozen strata the Wald test is
conservative and its interval can be badly asymmetric; the likelihood-ratio p-value and the
profile-likelihood interval agree with each other (the interval excludes OR 1 exactly when
p < α). For one exposure the conditional log-likelihood is

    ℓ(β) = Σ_strata [ β·x_case − log Σ_members exp(β·x_j) ]

which `loglik` evaluates vectorised for the profile search; a test checks it against
statsmodels' own `loglike`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, stats

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
BETA_LIMIT = 20.0  # |log OR| beyond this is treated as infinite (separation)
SUP_BETA = 640.0  # where the likelihood of a separated fit is taken as its supremum


@dataclass(frozen=True)
class ClrFit:
    beta: float  # log odds ratio per unit of exposure (NaN: not estimable)
    ci_low: float  # on the log scale; ±inf when the likelihood does not bound it
    ci_high: float
    p_value: float
    se: float  # Wald standard error at the estimate (for information only)
    n_strata: int  # strata that took part (a case and at least one referent)
    note: str = ""

    @property
    def odds_ratio(self) -> float:
        return _exp(self.beta)

    @property
    def or_ci(self) -> tuple[float, float]:
        return _exp(self.ci_low), _exp(self.ci_high)


def _exp(value: float) -> float:
    if math.isnan(value):
        return math.nan
    if value > 700:
        return math.inf
    return math.exp(value)


NOT_ESTIMABLE = ClrFit(math.nan, math.nan, math.nan, math.nan, math.nan, 0, "no data")


def loglik(beta: float, x: FloatArray, mask: BoolArray) -> float:
    """Conditional log-likelihood; x is (strata, members) with the case in column 0."""
    eta = np.where(mask, beta * x, -np.inf)
    top = eta.max(axis=1)
    lse = top + np.log(np.exp(eta - top[:, None]).sum(axis=1))
    return float((beta * x[:, 0] - lse).sum())


def usable_strata(x: FloatArray, mask: BoolArray) -> tuple[FloatArray, BoolArray]:
    """Strata with a usable case and at least one usable referent."""
    keep = mask[:, 0] & (mask[:, 1:].sum(axis=1) >= 1)
    return x[keep], mask[keep]


def fit_clr(x: FloatArray, mask: BoolArray, level: float = 0.95) -> ClrFit:
    """Fit one exposure; x and mask are (strata, members), the case in column 0."""
    x, mask = usable_strata(np.asarray(x, dtype=np.float64), np.asarray(mask, dtype=bool))
    n = int(x.shape[0])
    if n == 0:
        return NOT_ESTIMABLE
    x = np.where(mask, x, 0.0)
    spread = np.where(mask, x, -np.inf).max(axis=1) - np.where(mask, x, np.inf).min(axis=1)
    if not (spread > 0).any():
        return ClrFit(math.nan, math.nan, math.nan, math.nan, math.nan, n,
                      "no exposure contrast within any stratum")
    beta, se, converged = _statsmodels_fit(x, mask)
    ll0 = loglik(0.0, x, mask)
    # A case that is the most (least) exposed member of every informative stratum pushes the
    # estimate to infinity; then only the interval's finite side and the LR test are meaningful.
    informative = spread > 0
    case = x[:, 0]
    top = np.where(mask, x, -np.inf).max(axis=1)
    bottom = np.where(mask, x, np.inf).min(axis=1)
    note = ""
    if (case[informative] >= top[informative]).all():
        beta, note = math.inf, "case always the most exposed: the odds ratio has no upper bound"
    elif (case[informative] <= bottom[informative]).all():
        beta, note = -math.inf, "case always the least exposed: the odds ratio has no lower bound"
    elif not converged or abs(beta) > BETA_LIMIT:
        beta = _newton(x, mask)
    if math.isfinite(beta):
        llmax = loglik(beta, x, mask)
    else:
        llmax = _sup_loglik(x, mask, math.copysign(1.0, beta))
    lr = max(0.0, 2.0 * (llmax - ll0))
    p = float(stats.chi2.sf(lr, 1))
    crit = float(stats.chi2.ppf(level, 1))
    lo, hi = _profile_interval(x, mask, beta, llmax, crit)
    return ClrFit(beta, lo, hi, p, se, n, note)


def _statsmodels_fit(x: FloatArray, mask: BoolArray) -> tuple[float, float, bool]:
    from statsmodels.discrete.conditional_models import ConditionalLogit

    rows, cols = np.nonzero(mask)
    endog = (cols == 0).astype(np.float64)
    exog = x[rows, cols].reshape(-1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ConditionalLogit(endog, exog, groups=rows)
        result = model.fit(method="bfgs", disp=False, maxiter=200)
        beta = float(np.asarray(result.params)[0])
        try:
            se = float(np.asarray(result.bse)[0])
        except (ValueError, np.linalg.LinAlgError):
            se = math.nan
    # The results object does not report convergence; a score near zero is the real test.
    converged = abs(_score_info(beta, x, mask)[0]) < 1e-4 * len(x)
    return beta, se, converged


def _score_info(beta: float, x: FloatArray, mask: BoolArray) -> tuple[float, float]:
    """First derivative and observed information of the log-likelihood at beta."""
    xz = np.where(mask, x, 0.0)
    eta = np.where(mask, beta * x, -np.inf)
    eta = eta - eta.max(axis=1, keepdims=True)
    w = np.exp(eta)
    w /= w.sum(axis=1, keepdims=True)
    mean = (w * xz).sum(axis=1)
    var = (w * xz * xz).sum(axis=1) - mean**2
    return float((x[:, 0] - mean).sum()), float(var.sum())


def _newton(x: FloatArray, mask: BoolArray) -> float:
    """Fallback maximiser for the rare case statsmodels' BFGS stops early."""
    beta = 0.0
    for _ in range(100):
        score, info = _score_info(beta, x, mask)
        if info <= 0:
            break
        step = float(np.clip(score / info, -2.0, 2.0))
        beta += step
        if abs(step) < 1e-10:
            break
    return beta


def _sup_loglik(x: FloatArray, mask: BoolArray, sign: float) -> float:
    """The likelihood's supremum as β → ±∞ (strata where the case ties for the extreme keep
    a share 1/ties; strata without contrast keep their β = 0 value)."""
    return loglik(sign * SUP_BETA, x, mask)


def _profile_interval(
    x: FloatArray, mask: BoolArray, beta: float, llmax: float, crit: float
) -> tuple[float, float]:
    def gap(b: float) -> float:
        return 2.0 * (llmax - loglik(b, x, mask)) - crit

    def bound(direction: float) -> float:
        if math.isinf(beta) and math.copysign(1.0, beta) == direction:
            return beta
        inner = beta
        if math.isinf(beta):
            # Start where the likelihood has (nearly) reached its supremum.
            inner = math.copysign(BETA_LIMIT, beta)
            while gap(inner) >= 0 and abs(inner) < SUP_BETA:
                inner *= 2.0
        if gap(inner) >= 0:
            return inner
        step = 0.25
        while True:
            outer = inner + direction * step
            if gap(outer) > 0:
                break
            step *= 2.0
            if step > 4 * BETA_LIMIT:
                return direction * math.inf
        lo, hi = sorted((inner, outer))
        return float(optimize.brentq(gap, lo, hi, xtol=1e-8))

    return bound(-1.0), bound(1.0)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment (controls the family-wise error rate); NaN stays NaN."""
    idx = [i for i, p in enumerate(p_values) if not math.isnan(p)]
    m = len(idx)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda j: p_values[j])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
