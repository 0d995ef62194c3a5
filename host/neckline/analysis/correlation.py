"""`correlate`: the whole analysis of one person's exposure and headache log, in one result.

It runs the case-crossover per lag window (with the prodrome window apart), the dose-response
and day-level views, and the data-sufficiency verdict, after an optional headache-type filter.
`Correlation.to_json()` is what `neckline correlate --json` prints.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from neckline.analysis.crossover import (
    CrossoverOptions,
    WindowResult,
    case_crossover,
    strongest,
)
from neckline.analysis.daylevel import DayLevel, day_level
from neckline.analysis.doseresponse import DoseGroup, dose_response
from neckline.analysis.exposure import ExposureSeries
from neckline.analysis.sufficiency import Sufficiency, assess
from neckline.analysis.windows import WindowAggregator
from neckline.headache.model import HEADACHE_TYPES, HeadacheEntry
from neckline.headache.timeparse import zone_name

PRODROME_LABEL = "possibly reverse causation"


@dataclass(frozen=True)
class Headaches:
    """Onsets (epoch seconds, UTC) and their types, sorted by onset."""

    onset_epoch_s: NDArray[np.int64]
    types: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.onset_epoch_s.size != len(self.types):
            raise ValueError("one type per onset is needed")

    def __len__(self) -> int:
        return int(self.onset_epoch_s.size)

    @classmethod
    def from_entries(cls, entries: Iterable[HeadacheEntry]) -> Headaches:
        pairs = sorted((e.onset_ms // 1000, e.type) for e in entries)
        return cls(np.array([p[0] for p in pairs], dtype=np.int64), tuple(p[1] for p in pairs))

    def of_types(self, types: Sequence[str] | None) -> Headaches:
        if not types:
            return self
        unknown = sorted(set(types) - set(HEADACHE_TYPES))
        if unknown:
            raise ValueError(f"unknown headache type(s) {unknown}; use {', '.join(HEADACHE_TYPES)}")
        keep = np.array([t in types for t in self.types], dtype=bool)
        return Headaches(self.onset_epoch_s[keep], tuple(t for t in self.types if t in types))


@dataclass(frozen=True)
class DailyExposure:
    day_epoch_min: NDArray[np.int64]  # local midnight, as epoch minutes of local time
    wear_h: NDArray[np.float64]
    strain_h: NDArray[np.float64]


@dataclass(frozen=True)
class Correlation:
    windows: list[WindowResult]
    prodrome: WindowResult | None
    dose: dict[str, list[DoseGroup]]
    days: DayLevel
    sufficiency: Sufficiency
    options: CrossoverOptions
    types: tuple[str, ...]
    headaches_total: int  # before the type filter
    headaches: Headaches
    outside: int  # headaches outside the period with exposure data
    exposure_minutes: int
    exposure_rejected: int
    exposure_unscored: int  # minutes worn too little to score: missing data, not errors
    span: tuple[datetime, datetime] | None
    daily: DailyExposure
    analysed_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def strongest(self) -> WindowResult | None:
        return strongest(self.windows)

    def to_json(self) -> dict[str, Any]:
        from neckline.analysis.summary import summary_text

        return {
            "windows": [
                {
                    "window": r.window.label,
                    "odds_ratio": _num(r.odds_ratio),
                    "ci_low": _num(r.ci[0]),
                    "ci_high": _num(r.ci[1]),
                    "p_adjusted": _num(r.p_adjusted),
                    "n_cases": r.n_cases,
                }
                for r in self.windows
            ],
            "sufficient": self.sufficiency.sufficient,
            "verdict": self.sufficiency.verdict,
            "summary": summary_text(self),
            "headaches": len(self.headaches),
            "headaches_total": self.headaches_total,
            "headache_types": list(self.types),
            "days_of_wear": self.sufficiency.days_worn,
            "more_headaches_needed": self.sufficiency.more_needed,
            "headaches_outside_exposure": self.outside,
            "window_details": [_details(r) for r in self.windows],
            "prodrome": None if self.prodrome is None else {
                **_details(self.prodrome),
                "odds_ratio": _num(self.prodrome.odds_ratio),
                "ci_low": _num(self.prodrome.ci[0]),
                "ci_high": _num(self.prodrome.ci[1]),
                "n_cases": self.prodrome.n_cases,
                "label": PRODROME_LABEL,
            },
            "dose_response": {
                label: [
                    {"group": g.label, "low_h": _num(g.low_h), "high_h": _num(g.high_h),
                     "cases": g.cases, "referents": g.referents,
                     "odds_ratio": _num(g.odds_ratio), "ci_low": _num(g.ci_low),
                     "ci_high": _num(g.ci_high), "note": g.note}
                    for g in groups
                ]
                for label, groups in self.dose.items()
            },
            "day_level": {
                "min_wear_h": self.days.min_wear_h,
                "headache_days": _day(self.days.headache_days),
                "headache_free_days": _day(self.days.free_days),
                "p_value": _num(self.days.p_value),
            },
            "settings": {
                "time_zone": zone_name(self.options.tz),
                "min_coverage": self.options.min_coverage,
                "min_usual_wear_h": self.options.min_usual_h,
                "alpha": self.options.alpha,
                "adjustment": "holm",
                "alternative": self.options.alternative,
                "referents": "other working days (Mon-Fri) or weekend days of the same local "
                             "month at the same clock time; weekday adjusted in the model",
                "exclusion_days": self.options.exclusion_days,
            },
            "analysed_at": self.analysed_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def _num(value: float) -> float | None:
    """JSON has no NaN or infinity: they become null."""
    return float(value) if math.isfinite(value) else None


def _details(r: WindowResult) -> dict[str, Any]:
    return {
        "window": r.window.label,
        "p_value": _num(r.fit.p_value),
        "p_two_sided": _num(r.fit.p_two_sided),
        "case_windows_excluded": r.case_excluded,
        "case_windows_device_usually_off": r.case_never_worn,
        "cases_without_usable_referent": r.no_referent,
        "referents_used": r.referents_used,
        "referents_excluded": r.referents_excluded,
        "mean_case_strain_h": _num(r.mean_case_h),
        "mean_referent_strain_h": _num(r.mean_referent_h),
        "note": r.fit.note,
    }


def _day(group: Any) -> dict[str, Any]:
    return {"days": group.days, "strain_min_mean": _num(group.strain_min_mean),
            "strain_min_median": _num(group.strain_min_median),
            "strain_share_mean": _num(group.strain_share_mean)}


def _daily(agg: WindowAggregator) -> DailyExposure:
    day = agg.local_day
    if day.size == 0:
        empty = np.zeros(0)
        return DailyExposure(np.zeros(0, dtype=np.int64), empty, empty)
    first = int(day[0])
    idx = day - first
    wear = np.bincount(idx, weights=agg.wear) / 3600.0
    strain = np.bincount(idx, weights=agg.strain) / 3600.0
    has = np.flatnonzero(wear > 0)
    if has.size == 0:
        return DailyExposure(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0))
    sl = slice(int(has[0]), int(has[-1]) + 1)
    days = (np.arange(idx.max() + 1, dtype=np.int64) + first) * 1440
    return DailyExposure(days[sl], wear[sl], strain[sl])


def correlate(
    series: ExposureSeries,
    headaches: Headaches,
    options: CrossoverOptions | None = None,
    types: Sequence[str] | None = None,
    now: datetime | None = None,
) -> Correlation:
    options = options or CrossoverOptions()
    chosen = headaches.of_types(types)
    agg = WindowAggregator(series, options.tz, options.min_coverage, options.min_usual_h)
    windows, prodrome = case_crossover(series, chosen.onset_epoch_s, options, agg)
    dose = {r.window.label: dose_response(r.x, r.mask, r.z) for r in windows}
    onset_min = chosen.onset_epoch_s // 60
    if len(series):
        outside = int(((onset_min < series.start_min)
                       | (onset_min > series.end_min + max(w.hi_min for w in options.windows))
                       ).sum())
        span: tuple[datetime, datetime] | None = (
            datetime.fromtimestamp(series.start_min * 60, UTC),
            datetime.fromtimestamp(series.end_min * 60, UTC),
        )
    else:
        outside, span = len(chosen), None
    return Correlation(
        windows=windows,
        prodrome=prodrome,
        dose=dose,
        days=day_level(agg, chosen.onset_epoch_s, options.tz),
        sufficiency=assess(windows, len(chosen), agg.days_worn, options.alpha,
                           one_sided=options.alternative == "greater"),
        options=options,
        types=tuple(types or ()),
        headaches_total=len(headaches),
        headaches=chosen,
        outside=outside,
        exposure_minutes=series.rows,
        exposure_rejected=series.rejected,
        exposure_unscored=series.unscored,
        span=span,
        daily=_daily(agg),
        analysed_at=now or datetime.now(UTC),
    )
