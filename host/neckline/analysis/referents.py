"""Time-stratified referents for a case-crossover analysis.

For a headache whose onset is at local wall-clock time T on a given weekday, the stratum is
every day of the same local calendar month that has the same weekday; the referent times are
those days at the same wall-clock time T (to the minute). The case day is in its own stratum,
so a stratum has 4 or 5 members (the case and 3 or 4 referents), before and after the case.
Strata are fixed by the calendar, not centred on the case, which avoids the "overlap bias" of
designs that pick referents symmetrically around each event (Janes, Sheppard & Lumley 2005).

Clock times are local (`tz`) because daily routines follow the local clock: across a
daylight-saving change the referent a week later is the same wall-clock time, one hour apart
in UTC. A referent time that falls into a skipped hour is moved forward by the jump; one that
falls into a repeated hour takes the same occurrence (fold) as the case.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

import numpy as np
from numpy.typing import NDArray

MAX_MEMBERS = 5  # a month holds at most five of any weekday


def stratum_minutes(onset_epoch_s: NDArray[np.int64], tz: tzinfo = UTC) -> NDArray[np.int64]:
    """(n_cases, 5) epoch minutes: column 0 the case, then its referents in time order; -1 pads.

    The case's minute is its onset minute (onsets are analysed at minute resolution).
    """
    onsets = np.asarray(onset_epoch_s, dtype=np.int64)
    out = np.full((onsets.size, MAX_MEMBERS), -1, dtype=np.int64)
    for i, t in enumerate(onsets.tolist()):
        minute = t // 60
        local = datetime.fromtimestamp(minute * 60, UTC).astimezone(tz)
        naive = local.replace(tzinfo=None)
        fold = local.fold
        members = [minute]
        for k in range(-4, 5):
            if k == 0:
                continue
            other = naive + timedelta(days=7 * k)
            if (other.year, other.month) != (naive.year, naive.month):
                continue
            utc = other.replace(tzinfo=tz, fold=fold).astimezone(UTC)
            members.append(int(utc.timestamp()) // 60)
        out[i, 0] = members[0]
        out[i, 1:len(members)] = sorted(members[1:])
    return out
