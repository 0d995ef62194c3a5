"""Conditional logistic regression for matched sets with one case each (case-crossover).

One exposure x (the tested one) and optional nuisance covariates z (weekday indicators) per
member. The conditional log-likelihood is

    ℓ(β, γ) = Σ_strata [ η_case − log Σ_members exp(η_j) ],   η_j = β·x_j + γ·z_j

It is maximised here by Newton-Raphson (vectorised over strata, so that a year of data with
twenty-odd referents per headache fits in milliseconds); tests check the likelihood, estimates
and standard errors against statsmodels' `ConditionalLogit`.

Tests and confidence intervals use the likelihood ratio (with the covariates profiled out)
rather than the Wald statistic: with a few dozen strata the Wald test is conservative and its
interval can be badly asymmetric. The 95 % interval is the profile-likelihood interval, the set
of odds ratios the two-sided LR test does not reject. The test can be one-sided (H1: β > 0,
strain raises the risk): its p-value is Φ(−r) with the signed root r = sign(β̂)·√LR.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, stats

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
BETA_LIMIT = 20.0  # |log OR| beyond this is treated as infinite (separation, unbounded CI)
SUP_BETA = 640.0  # where the likelihood of a separated fit is taken as its supremum
MAX_STEP = 5.0  # largest Newton step on any coefficient (guards against overshooting)
ALTERNATIVES = ("greater", "two-sided")


@dataclass(frozen=True)
class ClrFit:
    beta: float  # log odds ratio per unit of exposure (NaN: not estimable; ±inf: separation)
    ci_low: float  # on the log scale; ±inf when the likelihood does not bound it
    ci_high: float
    p_value: float  # of the chosen alternative
    se: float  # Wald standard error at the estimate (for information only)
    n_strata: int  # strata that took part (a case and at least one referent)
    note: str = ""
    p_two_sided: float = math.nan
    alternative: str = "two-sided"

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
    """Conditional log-likelihood of one exposure; x is (strata, members), case in column 0."""
    return _loglik_eta(beta * x, mask)


def _loglik_eta(eta: FloatArray, mask: BoolArray) -> float:
    eta = np.where(mask, eta, -np.inf)
    top = eta.max(axis=1)
    lse = top + np.log(np.exp(eta - top[:, None]).sum(axis=1))
    return float((eta[:, 0] - lse).sum())


def conditional_loglik(params: FloatArray, design: FloatArray, mask: BoolArray) -> float:
    """ℓ for a (strata, members, p) design and p coefficients."""
    return _loglik_eta(design @ params, mask)


def _score_info(eta: FloatArray, design: FloatArray, mask: BoolArray
                ) -> tuple[FloatArray, FloatArray]:
    """Gradient and observed information (negative Hessian) of ℓ in the design's coefficients."""
    eta = np.where(mask, eta, -np.inf)
    eta = eta - eta.max(axis=1, keepdims=True)
    w = np.exp(eta)
    w /= w.sum(axis=1, keepdims=True)
    dz = np.where(mask[:, :, None], design, 0.0)
    mean = np.einsum("sk,skp->sp", w, dz)
    centred = dz - mean[:, None, :]
    score = (design[:, 0, :] - mean).sum(axis=0)
    info = np.einsum("sk,skp,skq->pq", w, centred, centred)
    return score, info


def maximise(design: FloatArray, mask: BoolArray, offset: FloatArray | None = None,
             start: FloatArray | None = None, iterations: int = 100
             ) -> tuple[FloatArray, float, FloatArray]:
    """Newton-Raphson with step halving: (coefficients, ℓ, information) of ℓ(offset + design·θ).

    Coefficients that the data push to infinity (a covariate level that is never a case) stop
    where ℓ no longer changes; ℓ is then its supremum to within about 1e-10.
    """
    base = np.zeros(mask.shape) if offset is None else offset
    p = design.shape[2]
    theta = np.zeros(p) if start is None else np.array(start, dtype=np.float64)
    ll = _loglik_eta(base + design @ theta, mask)
    info = np.zeros((p, p))
    if p == 0:
        return theta, ll, info
    for _ in range(iterations):
        score, info = _score_info(base + design @ theta, design, mask)
        step = np.linalg.lstsq(info, score, rcond=1e-12)[0]
        biggest = float(np.abs(step).max()) if step.size else 0.0
        if biggest > MAX_STEP:
            step *= MAX_STEP / biggest
        scale = 1.0
        while True:
            trial = theta + scale * step
            new = _loglik_eta(base + design @ trial, mask)
            if new >= ll - 1e-12 or scale < 1e-6:
                break
            scale /= 2.0
        if new < ll - 1e-12:
            break
        gain = new - ll
        theta, ll = trial, new
        if gain < 1e-11:
            # Converged, or only coefficients that run off to infinity are still moving.
            break
    _, info = _score_info(base + design @ theta, design, mask)
    return theta, ll, info


def usable_strata(x: FloatArray, mask: BoolArray, z: FloatArray | None = None
                  ) -> tuple[FloatArray, BoolArray, FloatArray]:
    """Strata with a usable case and at least one usable referent (z: covariates)."""
    keep = mask[:, 0] & (mask[:, 1:].sum(axis=1) >= 1)
    zz = np.zeros((*x.shape, 0)) if z is None else z
    return x[keep], mask[keep], zz[keep]


def informative_columns(z: FloatArray, mask: BoolArray) -> FloatArray:
    """The covariate columns that vary within at least one stratum (others cannot be fitted)."""
    if z.shape[2] == 0 or z.shape[0] == 0:
        return z
    hi = np.where(mask[:, :, None], z, -np.inf).max(axis=1)
    lo = np.where(mask[:, :, None], z, np.inf).min(axis=1)
    varies = (hi > lo).any(axis=0)
    result: FloatArray = z[:, :, varies]
    return result


def fit_clr(x: FloatArray, mask: BoolArray, z: FloatArray | None = None,
            alternative: str = "two-sided", level: float = 0.95) -> ClrFit:
    """Fit one exposure, adjusted for covariates z (strata, members, q); case in column 0."""
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}")
    x, mask, zz = usable_strata(np.asarray(x, dtype=np.float64), np.asarray(mask, dtype=bool),
                                None if z is None else np.asarray(z, dtype=np.float64))
    n = int(x.shape[0])
    if n == 0:
        return NOT_ESTIMABLE
    x = np.where(mask, x, 0.0)
    zz = informative_columns(np.where(mask[:, :, None], zz, 0.0), mask)
    top = np.where(mask, x, -np.inf).max(axis=1)
    bottom = np.where(mask, x, np.inf).min(axis=1)
    informative = top > bottom
    if not informative.any():
        return ClrFit(math.nan, math.nan, math.nan, math.nan, math.nan, n,
                      "no exposure contrast within any stratum", math.nan, alternative)
    profile = _Profile(x, zz, mask)
    ll0 = profile(0.0)
    # A case that is the most (least) exposed member of every informative stratum pushes the
    # estimate to infinity whatever the covariates do; then only the interval's finite side
    # and the LR test are meaningful.
    case = x[:, 0]
    note = ""
    se = math.nan
    if (case[informative] >= top[informative]).all():
        beta, note = math.inf, "case always the most exposed: the odds ratio has no upper bound"
    elif (case[informative] <= bottom[informative]).all():
        beta, note = -math.inf, "case always the least exposed: the odds ratio has no lower bound"
    else:
        design = np.concatenate([x[:, :, None], zz], axis=2)
        theta, _, info = maximise(design, mask)
        beta = float(theta[0])
        if abs(beta) > BETA_LIMIT:
            beta = math.copysign(math.inf, beta)
            note = f"the data do not bound the odds ratio from {'above' if beta > 0 else 'below'}"
        else:
            cov = np.linalg.pinv(info)
            se = math.sqrt(cov[0, 0]) if cov[0, 0] > 0 else math.nan
    llmax = profile(beta if math.isfinite(beta) else math.copysign(SUP_BETA, beta))
    lr = max(0.0, 2.0 * (llmax - ll0))
    p_two = float(stats.chi2.sf(lr, 1))
    signed = math.copysign(math.sqrt(lr), beta)
    p = float(stats.norm.sf(signed)) if alternative == "greater" else p_two
    crit = float(stats.chi2.ppf(level, 1))
    lo, hi = _profile_interval(profile, beta, llmax, crit)
    return ClrFit(beta, lo, hi, p, se, n, note, p_two, alternative)


class _Profile:
    """ℓ with β fixed and the covariates at their best for that β (warm-started)."""

    def __init__(self, x: FloatArray, z: FloatArray, mask: BoolArray) -> None:
        self.x, self.z, self.mask = x, z, mask
        self._start = np.zeros(z.shape[2])

    def __call__(self, beta: float) -> float:
        if self.z.shape[2] == 0:
            return loglik(beta, self.x, self.mask)
        theta, ll, _ = maximise(self.z, self.mask, beta * self.x, self._start)
        if np.isfinite(theta).all() and float(np.abs(theta).max()) < 50:
            self._start = theta
        return ll


def _profile_interval(
    profile: Callable[[float], float], beta: float, llmax: float, crit: float
) -> tuple[float, float]:
    def gap(b: float) -> float:
        return 2.0 * (llmax - profile(b)) - crit

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
            if abs(outer) > BETA_LIMIT:
                return direction * math.inf
        lo, hi = sorted((inner, outer))
        end = float(optimize.brentq(gap, lo, hi, xtol=1e-8))
        # An end beyond e^±20 says only that the data do not bound the odds ratio there.
        return end if abs(end) <= BETA_LIMIT else direction * math.inf

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
