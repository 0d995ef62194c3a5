"""The plain-language summary. It describes associations in the user's own data and never
says that strain causes (or triggers) headaches: a case-crossover study of one person can show
that headaches tended to follow more strain, not why."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from neckline.analysis.oddsformat import interval_text, odds_text

if TYPE_CHECKING:
    from neckline.analysis.correlation import Correlation
    from neckline.analysis.crossover import WindowResult


def _or_text(r: WindowResult) -> str:
    lo, hi = r.ci
    if math.isinf(r.odds_ratio) or r.odds_ratio == 0:
        return "an odds ratio that the data cannot bound"
    return (f"odds ratio {odds_text(r.odds_ratio)} per hour of strain "
            f"(95 % CI {interval_text(lo, hi)})")


def _when(r: WindowResult) -> str:
    return f"{r.window.start_h:g} to {r.window.end_h:g} hours before"


def summary_text(c: Correlation) -> str:
    n = len(c.headaches)
    kinds = f" ({', '.join(c.types)} only)" if c.types else ""
    parts: list[str] = []
    if c.exposure_minutes == 0:
        return ("No neck-strain data yet, so there is nothing to compare the headache log "
                "with. Wear the device for a few weeks first.")
    if n == 0:
        return (f"No headaches{kinds} are logged in the analysed period, so there is nothing "
                "to compare yet. Log each headache's onset as it happens.")
    alpha = c.options.alpha
    tested = [r for r in c.windows if not math.isnan(r.p_adjusted)]
    flagged = [r for r in tested if r.p_adjusted < alpha]
    if not c.sufficiency.sufficient:
        parts.append(c.sufficiency.verdict[0].upper() + c.sufficiency.verdict[1:] + ".")
    if not tested:
        parts.append(f"None of the {n} headaches{kinds} had enough wear before it and on "
                     "comparable days to be analysed.")
    elif not flagged:
        # A one-sided test can only flag more strain: say "higher", not "different".
        compared = "higher than" if c.options.alternative == "greater" else "different from"
        parts.append(
            f"Across the {len(c.windows)} time windows checked, sustained neck strain before "
            f"the {n} headaches{kinds} was not clearly {compared} strain at the same time "
            f"of day on comparable days (no window below p = {alpha:g} after adjustment for "
            "checking several windows)."
        )
        if not c.sufficiency.sufficient:
            parts.append("With this much data only large associations could have shown up, "
                         "so this is not evidence that strain and headaches are unrelated.")
    else:
        for r in flagged:
            direction = "more" if r.odds_ratio > 1 else "less"
            parts.append(
                f"Headaches{kinds} tended to start after {direction} sustained neck strain than "
                f"usual {_when(r)} the onset: {_or_text(r)}, adjusted p = {r.p_adjusted:.3g}, "
                f"from {r.n_cases} headaches."
            )
        parts.append(
            "This is an association in your own data, not proof of cause and effect: busy "
            "days, sleep, stress or screen time can go with both neck strain and headaches."
        )
    p = c.prodrome
    if p is not None and not math.isnan(p.fit.p_value) and p.fit.p_value < alpha:
        direction = "more" if p.odds_ratio > 1 else "less"
        parts.append(
            f"There was {direction} strain in the {p.window.start_h:g}–{p.window.end_h:g} hours "
            "right before onsets. That window is reported apart because a headache that is "
            "already starting can change posture itself (possibly reverse causation)."
        )
    return " ".join(parts)
