"""Is there enough data for a verdict? And if not, about how many more headaches are needed?

The approximation is the usual sample-size formula for a likelihood (score) test, applied to
the conditional likelihood. At OR = 1 a stratum contributes Fisher information

    I_s = (1/k_s) Σ_j (x_j - x̄_s)²         (k_s members, exposures x_j in hours)

and the weekday indicators take away what they explain: the information for the exposure is
the Schur complement I_xx − I_xz I_zz⁻¹ I_zx of the summed matrices. n informative strata
give about n·Ī. A test at level α' detects a log odds ratio β₁ with power 1-γ when
n·Ī ≥ (z_{1-α'} + z_{1-γ})² / β₁², with z_{1-α'} one-sided (or z_{1-α'/2} for two-sided
tests). Here β₁ = log 2 (OR 2 per hour of sustained strain), 1-γ = 0.8 and α' = α/m for m
windows (the first step of Holm's method, so the figure holds for the adjusted p-values). Each
window has its own Ī and its own share of headaches that yield a usable stratum (u); the
headaches needed are I_req / (Ī·u) per window, and the verdict uses the median over the
windows.

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
# Measured on the validation population (bench/validate_correlation.py, seed 0: 12 weeks,
# default windows, month × day-type referents): median over windows of
# the per-stratum information at OR 1 (h²) and of the share of headaches giving a stratum.
PRIOR_INFO_PER_STRATUM = 0.45
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


def window_information(x: NDArray[np.float64], mask: NDArray[np.bool_],
                       z: NDArray[np.float64] | None = None) -> float:
    """Information for the exposure at OR 1, after the covariates z (weekday) took their share."""
    if x.shape[0] == 0:
        return 0.0
    design = x[:, :, None] if z is None else np.concatenate([x[:, :, None], z], axis=2)
    k = mask.sum(axis=1)
    d = np.where(mask[:, :, None], design, 0.0)
    centred = np.where(mask[:, :, None], d - (d.sum(axis=1) / k[:, None])[:, None, :], 0.0)
    info = np.einsum("skp,skq->pq", centred, centred / k[:, None, None])
    if info.shape[0] == 1:
        return float(info[0, 0])
    rest = info[1:, 1:]
    return float(info[0, 0] - info[0, 1:] @ np.linalg.pinv(rest) @ info[1:, 0])


def _z_alpha(alpha: float, n_windows: int, one_sided: bool) -> float:
    level = alpha / max(n_windows, 1)
    return float(stats.norm.isf(level if one_sided else level / 2))


def required_information(alpha: float, n_windows: int, target_or: float = TARGET_OR,
                         power: float = TARGET_POWER, one_sided: bool = True) -> float:
    z_a = _z_alpha(alpha, n_windows, one_sided)
    z_b = float(stats.norm.ppf(power))
    return (z_a + z_b) ** 2 / math.log(target_or) ** 2


def predicted_power(information: float, log_or: float, alpha: float, n_windows: int,
                    one_sided: bool = True) -> float:
    z_a = _z_alpha(alpha, n_windows, one_sided)
    shift = log_or * math.sqrt(max(information, 0.0))
    if one_sided:
        return float(stats.norm.cdf(shift - z_a))
    return float(stats.norm.cdf(shift - z_a) + stats.norm.cdf(-shift - z_a))


def assess(
    results: Sequence[WindowResult], headaches: int, days_worn: int, alpha: float = 0.05,
    one_sided: bool = True,
) -> Sufficiency:
    m = len(results)
    need = required_information(alpha, m, one_sided=one_sided)
    per_window: list[tuple[float, float]] = []  # (Ī, u)
    for r in results:
        if r.n_cases >= MIN_STRATA and headaches > 0:
            info = window_information(r.x, r.mask, r.z)
            per_window.append((info / r.n_cases, r.n_cases / headaches))
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
    power_now = predicted_power(rate * headaches, math.log(TARGET_OR), alpha, m, one_sided)
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
