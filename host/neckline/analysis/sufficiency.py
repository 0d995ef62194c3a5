"""Is there enough data for a verdict? And if not, about how many more headaches are needed?

The approximation is the usual sample-size formula for a likelihood (score) test, applied to
the conditional likelihood. At OR = 1 a stratum contributes Fisher information

    I_s = (1/k_s) Σ_j (x_j - x̄_s)²         (k_s members, exposures x_j in hours)

so n informative strata give about n·Ī. A two-sided test at level α' detects a log odds ratio
β₁ with power 1-γ when n·Ī ≥ (z_{1-α'/2} + z_{1-γ})² / β₁². Here β₁ = log 2 (OR 2 per hour of
sustained strain), 1-γ = 0.8 and α' = α/m for m windows (the first step of Holm's method, so
the figure holds for the adjusted p-values). Each window has its own Ī and its own share of
headaches that yield a usable stratum (u); the headaches needed are I_req / (Ī·u) per window,
and the verdict uses the median over the windows.

With fewer than `MIN_STRATA` usable strata Ī and u cannot be estimated from the user's data;
then the values measured on the simulated wearers of the validation study stand in for them
(docs/analysis.md). bench/validate_correlation.py checks the formula's predicted power against
the simulated power.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from neckline.analysis.crossover import WindowResult

TARGET_OR = 2.0
TARGET_POWER = 0.8
MIN_STRATA = 10
# Measured on the validation population (12 weeks, default windows): median over windows of
# the per-stratum information at OR 1 (h²) and of the share of headaches giving a stratum.
PRIOR_INFO_PER_STRATUM = 0.36
PRIOR_USABLE_SHARE = 0.72


@dataclass(frozen=True)
class Sufficiency:
    sufficient: bool
    headaches: int
    days_worn: int
    more_needed: int
    needed_total: int
    power_now: float  # predicted power to detect OR 2 per hour with the data so far
    info_per_stratum: float
    usable_share: float
    from_prior: bool
    verdict: str


def stratum_information(x: NDArray[np.float64], mask: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Per-stratum Fisher information at OR 1 (within-stratum variance of exposure)."""
    if x.shape[0] == 0:
        return np.zeros(0)
    k = mask.sum(axis=1)
    xz = np.where(mask, x, 0.0)
    mean = xz.sum(axis=1) / k
    result: NDArray[np.float64] = (np.where(mask, (x - mean[:, None]) ** 2, 0.0)).sum(axis=1) / k
    return result


def required_information(alpha: float, n_windows: int, target_or: float = TARGET_OR,
                         power: float = TARGET_POWER) -> float:
    z_a = float(stats.norm.isf(alpha / max(n_windows, 1) / 2))
    z_b = float(stats.norm.ppf(power))
    return (z_a + z_b) ** 2 / math.log(target_or) ** 2


def predicted_power(information: float, log_or: float, alpha: float, n_windows: int) -> float:
    z_a = float(stats.norm.isf(alpha / max(n_windows, 1) / 2))
    shift = abs(log_or) * math.sqrt(max(information, 0.0))
    return float(stats.norm.cdf(shift - z_a) + stats.norm.cdf(-shift - z_a))


def assess(
    results: Sequence[WindowResult], headaches: int, days_worn: int, alpha: float = 0.05
) -> Sufficiency:
    m = len(results)
    need = required_information(alpha, m)
    per_window: list[tuple[float, float]] = []  # (Ī, u)
    for r in results:
        if r.n_cases >= MIN_STRATA and headaches > 0:
            info = stratum_information(r.x, r.mask)
            per_window.append((float(info.mean()), r.n_cases / headaches))
    from_prior = len(per_window) < max(1, (m + 1) // 2)
    if from_prior:
        info_bar, usable = PRIOR_INFO_PER_STRATUM, PRIOR_USABLE_SHARE
    else:
        needed_each = [need / (i * u) if i > 0 and u > 0 else math.inf for i, u in per_window]
        order = int(np.argsort(needed_each)[len(needed_each) // 2])
        info_bar, usable = per_window[order]
    rate = info_bar * usable
    needed_total = math.ceil(need / rate) if rate > 0 else 10**6
    more = max(0, needed_total - headaches)
    power_now = predicted_power(rate * headaches, math.log(TARGET_OR), alpha, m)
    sufficient = more == 0 and not from_prior
    if sufficient:
        verdict = (f"enough data for a verdict: {headaches} headaches, {days_worn} days of wear "
                   f"(about {100 * power_now:.0f} % power to detect OR ≥ {TARGET_OR:g} per hour "
                   "of sustained strain)")
    elif more == 0:
        verdict = (f"not enough data yet: {headaches} headaches, {days_worn} days of wear; "
                   "too few of the headaches fall in periods with enough wear to compare "
                   "them; wear the device more of the day")
    else:
        verdict = (f"not enough data yet: {headaches} headaches, {days_worn} days of wear; "
                   f"about {more} more headaches are needed to detect OR ≥ {TARGET_OR:g}")
    return Sufficiency(sufficient, headaches, days_worn, more, needed_total, power_now,
                       info_bar, usable, from_prior, verdict)
