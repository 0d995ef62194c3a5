"""The day-level view: strain on headache days versus headache-free days.

Days are local calendar days with at least `min_wear_h` of wear (a day the device hardly saw
says nothing about its strain). A headache day has at least one onset. Strain is reported as
minutes and as a share of the worn time, because days are worn for different lengths. The
Mann-Whitney test here is descriptive: a headache day's strain includes the hours after the
onset, which the headache itself can change, so the case-crossover windows are the analysis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, tzinfo

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from neckline.analysis.windows import WindowAggregator, local_offsets_min


@dataclass(frozen=True)
class DayGroup:
    days: int
    strain_min_mean: float
    strain_min_median: float
    strain_share_mean: float  # 0-1 of worn time


@dataclass(frozen=True)
class DayLevel:
    headache_days: DayGroup
    free_days: DayGroup
    p_value: float  # Mann-Whitney on strain minutes (descriptive)
    min_wear_h: float


def _group(minutes: NDArray[np.float64], share: NDArray[np.float64]) -> DayGroup:
    if minutes.size == 0:
        return DayGroup(0, math.nan, math.nan, math.nan)
    return DayGroup(int(minutes.size), float(minutes.mean()), float(np.median(minutes)),
                    float(share.mean()))


def day_level(
    agg: WindowAggregator, onset_epoch_s: NDArray[np.int64], tz: tzinfo = UTC,
    min_wear_h: float = 6.0,
) -> DayLevel:
    day = agg.local_day
    first = int(day[0]) if day.size else 0
    idx = day - first
    n = int(idx.max()) + 1 if idx.size else 0
    wear = np.bincount(idx, weights=agg.wear, minlength=n)
    strain = np.bincount(idx, weights=agg.strain, minlength=n)
    onsets_min = np.asarray(onset_epoch_s, dtype=np.int64) // 60
    if onsets_min.size:
        offsets = np.array([int(local_offsets_min(int(m), 1, tz)[0]) for m in onsets_min])
        onset_day = (onsets_min + offsets) // 1440 - first
    else:
        onset_day = np.zeros(0, dtype=np.int64)
    headache = np.zeros(n, dtype=bool)
    inside = (onset_day >= 0) & (onset_day < n)
    headache[onset_day[inside]] = True
    worn = wear >= min_wear_h * 3600.0
    minutes = strain / 60.0
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(wear > 0, strain / wear, np.nan)
    hd = worn & headache
    fd = worn & ~headache
    p = math.nan
    if hd.sum() >= 1 and fd.sum() >= 1:
        p = float(stats.mannwhitneyu(minutes[hd], minutes[fd], alternative="two-sided").pvalue)
    return DayLevel(_group(minutes[hd], share[hd]), _group(minutes[fd], share[fd]), p,
                    min_wear_h)
