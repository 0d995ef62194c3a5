"""Lag windows before an onset, and the exposure and wear coverage of each window.

Exposure of a window is the **hours of sustained strain**, estimated over the hours the wearer
usually wears the device at those clock times:

    usual    = Σ over the window's minutes of the wearer's typical worn seconds at that local
               minute of day (weekdays and weekends separately, from days with ≥ 1 h of wear)
    coverage = worn seconds in the window / usual
    exposure = (strain seconds / worn seconds in the window) × usual / 3600     [hours]

So a window where the device was off for part of the usual wearing time is not read as a
window with less strain: the strain share of the worn part stands for the whole usual time.
A window is **excluded** (and counted) when the device is usually not worn at those hours
(usual < `min_usual_h`) or when it was worn for less than `min_coverage` of the usual time.
Hours the wearer never wears the device (sleep) are the same for a case and its referents,
which share the clock time, so they drop out of the comparison instead of counting as zero.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

import numpy as np
from numpy.typing import NDArray

from neckline.analysis.exposure import ExposureSeries, FloatArray, IntArray

MIN_DAY_WEAR_S = 3600.0
OFFSET_STEP_MIN = 15  # UTC offsets change on quarter hours at the finest


@dataclass(frozen=True)
class LagWindow:
    """[onset - end_h, onset - start_h): hours before the onset."""

    start_h: float
    end_h: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start_h) and math.isfinite(self.end_h)):
            raise ValueError("window bounds must be finite")
        if not 0 <= self.start_h < self.end_h <= 24 * 28:
            raise ValueError(
                f"a window needs 0 <= start < end <= 672 h, got {self.start_h:g}-{self.end_h:g}"
            )
        if (self.start_h * 60) % 1 or (self.end_h * 60) % 1:
            raise ValueError("window bounds must be whole minutes")

    @property
    def label(self) -> str:
        return f"{self.start_h:g}-{self.end_h:g}h"

    @property
    def lo_min(self) -> int:
        return round(self.start_h * 60)

    @property
    def hi_min(self) -> int:
        return round(self.end_h * 60)


DEFAULT_WINDOWS = (LagWindow(2, 6), LagWindow(6, 12), LagWindow(12, 24), LagWindow(24, 48))
PRODROME_WINDOW = LagWindow(0, 2)

_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)\s*h?\s*$")


def parse_windows(text: str) -> tuple[LagWindow, ...]:
    """"2-6,6-12,12-24" (hours before onset) as windows, in the order given."""
    windows: list[LagWindow] = []
    for part in text.split(","):
        match = _WINDOW.match(part)
        if match is None:
            raise ValueError(f"window {part.strip()!r} should look like 6-12 (hours before onset)")
        window = LagWindow(float(match.group(1)), float(match.group(2)))
        if window in windows:
            raise ValueError(f"window {window.label} is listed twice")
        windows.append(window)
    if not windows:
        raise ValueError("no windows given")
    return tuple(windows)


def local_offsets_min(start_min: int, n: int, tz: tzinfo) -> IntArray:
    """UTC offset in minutes of each minute [start_min, start_min + n) in `tz`."""
    if tz is UTC or n == 0:
        return np.zeros(n, dtype=np.int64)
    first = start_min - start_min % OFFSET_STEP_MIN
    steps = (start_min + n - first + OFFSET_STEP_MIN - 1) // OFFSET_STEP_MIN + 1
    offsets = np.empty(steps, dtype=np.int64)
    for i in range(steps):
        moment = datetime.fromtimestamp((first + i * OFFSET_STEP_MIN) * 60, UTC)
        delta = moment.astimezone(tz).utcoffset() or timedelta(0)
        offsets[i] = int(delta.total_seconds() // 60)
    idx = (np.arange(n, dtype=np.int64) + start_min - first) // OFFSET_STEP_MIN
    return offsets[idx]


@dataclass(frozen=True)
class WindowValues:
    exposure_h: FloatArray  # NaN where not usable
    coverage: FloatArray
    usual_h: FloatArray
    usable: NDArray[np.bool_]
    never_worn: NDArray[np.bool_]  # excluded because the device is usually off at those hours


class WindowAggregator:
    """Fast window sums over one exposure series, in one time zone (for the usual-wear
    profile's local clock)."""

    def __init__(
        self,
        series: ExposureSeries,
        tz: tzinfo = UTC,
        min_coverage: float = 0.5,
        min_usual_h: float = 1.0,
        pad_min: int = 49 * 60,
    ) -> None:
        if not 0 < min_coverage <= 1:
            raise ValueError("min_coverage must be in (0, 1]")
        self.min_coverage = min_coverage
        self.min_usual_s = min_usual_h * 3600.0
        self.tz = tz
        n = len(series)
        # Pad both ends so that windows reaching beyond the data simply find no wear there.
        self.origin = series.start_min - pad_min
        total = n + 2 * pad_min
        wear = np.zeros(total)
        strain = np.zeros(total)
        wear[pad_min:pad_min + n] = series.wear_s
        strain[pad_min:pad_min + n] = series.strain_s
        offsets = local_offsets_min(self.origin, total, tz)
        local = np.arange(total, dtype=np.int64) + self.origin + offsets
        minute_of_day = local % 1440
        local_day = local // 1440
        weekend = ((local_day + 3) % 7) >= 5  # 1970-01-01 was a Thursday
        usual = self._usual(wear, local_day, minute_of_day, weekend)
        self._wear = np.concatenate(([0.0], np.cumsum(wear)))
        self._strain = np.concatenate(([0.0], np.cumsum(strain)))
        self._usual_cum = np.concatenate(([0.0], np.cumsum(usual)))
        self.total = total
        self.days_worn = int(np.count_nonzero(self._day_wear >= MIN_DAY_WEAR_S))
        self.local_day = local_day
        self.wear = wear
        self.strain = strain

    def _usual(self, wear: FloatArray, day: IntArray, mod: IntArray,
               weekend: NDArray[np.bool_]) -> FloatArray:
        first_day = int(day[0]) if day.size else 0
        day_idx = day - first_day
        day_wear = np.bincount(day_idx, weights=wear) if day.size else np.zeros(0)
        self._day_wear = day_wear
        good_day = day_wear[day_idx] >= MIN_DAY_WEAR_S
        profile = np.zeros((2, 1440))
        for kind in (0, 1):
            sel = good_day & (weekend == bool(kind))
            n_days = np.unique(day_idx[sel]).size
            if n_days:
                profile[kind] = np.bincount(mod[sel], weights=wear[sel], minlength=1440) / n_days
        result: FloatArray = profile[weekend.astype(np.int64), mod]
        return result

    def values(self, onset_min: IntArray, window: LagWindow) -> WindowValues:
        """Exposure and coverage of `window` before each onset (epoch minutes; -1 = none)."""
        onset = np.asarray(onset_min, dtype=np.int64)
        a = onset - window.hi_min - self.origin
        b = onset - window.lo_min - self.origin
        inside = (onset >= 0) & (a >= 0) & (b <= self.total)
        a = np.clip(a, 0, self.total)
        b = np.clip(b, 0, self.total)
        wear = self._wear[b] - self._wear[a]
        strain = self._strain[b] - self._strain[a]
        usual = self._usual_cum[b] - self._usual_cum[a]
        with np.errstate(invalid="ignore", divide="ignore"):
            coverage = np.where(usual > 0, wear / usual, 0.0)
            share = np.where(wear > 0, strain / wear, np.nan)
        never = inside & (usual < self.min_usual_s)
        usable = inside & ~never & (coverage >= self.min_coverage) & (wear > 0)
        exposure = np.where(usable, share * usual / 3600.0, np.nan)
        return WindowValues(exposure, coverage, usual / 3600.0, usable, never)


def describe_windows(windows: Sequence[LagWindow]) -> str:
    return ", ".join(w.label for w in windows)
