"""Time-stratified referents for a case-crossover analysis.

The calendar is cut into fixed strata: one local calendar month, split into its working days
(Monday-Friday) and its weekend days (Saturday-Sunday). A headache whose onset is at local
wall-clock time T is compared with the other days of its stratum at T (to the minute): a
Tuesday 09:37 onset in March with every other Monday-Friday of March at 09:37, a Sunday onset
with the other Saturdays and Sundays of the month. The days within `exclusion_days` of the
case day are left out.

Why this scheme (docs/analysis.md, "Design", and the validation study there):

- **Many referents.** A working-day onset has 15-20 referents (6-8 for a weekend onset; up to
  22 without the exclusion) instead of the 3 or 4 of a same-weekday scheme. The expected
  information per stratum grows with the number of members, but slowly (about a fifth more
  here than with 4-5 members): the gain is real, not large.
- **Day type matched, weekday adjusted.** Work days and weekends differ in both posture and
  headache risk, and that difference can change with the time of day (weekend lie-ins, work
  stress on weekday afternoons). Keeping them in separate strata matches it by design. The
  smaller differences between weekdays (Monday against Tuesday, Saturday against Sunday) are
  adjusted for with weekday indicators in the model (crossover.py).
- **Fixed strata.** The strata do not depend on when the headaches happen, which keeps the
  conditional likelihood unbiased (Janes, Sheppard & Lumley 2005, "overlap bias"). The
  exclusion around each case is the one exception: it makes the referent set depend slightly
  on the case day. The bias this can cause needs a trend in exposure within the month and is
  small (same paper); it buys protection against a larger one. A referent a day after an onset
  has lag windows that cover the headache itself, when posture is not the usual one (lying
  down, not working). With `exclusion_days` = 2 (the default of R's season::casecross) the
  closest referent is three days away.

Clock times are local (`tz`) because daily routines follow the local clock: across a
daylight-saving change a referent is the same wall-clock time, one hour apart in UTC. A
referent time that falls into a skipped hour is moved forward by the jump; one that falls into
a repeated hour takes the same occurrence (fold) as the case.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

import numpy as np
from numpy.typing import NDArray

MAX_MEMBERS = 23  # a month holds at most 23 working days
DEFAULT_EXCLUSION_DAYS = 2


@dataclass(frozen=True)
class Strata:
    """Column 0 is the case, then its referents in time order; -1 pads both arrays."""

    minutes: NDArray[np.int64]  # (cases, MAX_MEMBERS) epoch minutes
    weekday: NDArray[np.int64]  # local weekday of each member's day, Monday = 0

    def __len__(self) -> int:
        return int(self.minutes.shape[0])


def is_weekend(weekday: int) -> bool:
    return weekday >= 5


def make_strata(
    onset_epoch_s: NDArray[np.int64],
    tz: tzinfo = UTC,
    exclusion_days: int = DEFAULT_EXCLUSION_DAYS,
) -> Strata:
    """The case minute and referent minutes of every onset (onsets at minute resolution)."""
    if exclusion_days < 0:
        raise ValueError("exclusion_days must not be negative")
    onsets = np.asarray(onset_epoch_s, dtype=np.int64)
    minutes = np.full((onsets.size, MAX_MEMBERS), -1, dtype=np.int64)
    weekday = np.full((onsets.size, MAX_MEMBERS), -1, dtype=np.int64)
    for i, t in enumerate(onsets.tolist()):
        minute = t // 60
        local = datetime.fromtimestamp(minute * 60, UTC).astimezone(tz)
        naive = local.replace(tzinfo=None)
        weekend = is_weekend(naive.weekday())
        members: list[tuple[int, int]] = []
        for day in range(1, calendar.monthrange(naive.year, naive.month)[1] + 1):
            if abs(day - naive.day) <= exclusion_days:
                continue  # the case day itself, and its neighbours
            other = naive.replace(day=day)
            if is_weekend(other.weekday()) != weekend:
                continue
            utc = other.replace(tzinfo=tz, fold=local.fold).astimezone(UTC)
            members.append((int(utc.timestamp()) // 60, other.weekday()))
        minutes[i, 0], weekday[i, 0] = minute, naive.weekday()
        for j, (m, wd) in enumerate(members, start=1):
            minutes[i, j], weekday[i, j] = m, wd
    return Strata(minutes, weekday)
