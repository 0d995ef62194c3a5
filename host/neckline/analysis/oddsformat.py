"""Odds ratios as people read them, the same in the terminal, the summary and the HTML report.

An interval end the likelihood does not bound is infinite (clr.py turns ends beyond e^±20 into
±∞) and prints as "∞" or "0". A finite end beyond 1000 or below 0.001 says no more than that,
so it prints as ">1000" or "<0.001" instead of a ten-digit number. JSON keeps the finite
numbers and writes unbounded ends as null (correlation.py).
"""

from __future__ import annotations

import math

SHOWN_MAX = 1000.0


def odds_text(value: float, digits: int = 2) -> str:
    if math.isnan(value):
        return "–"
    if math.isinf(value):
        return "∞" if value > 0 else "0"
    if value == 0:
        return "0"
    if value > SHOWN_MAX:
        return f">{SHOWN_MAX:g}"
    if value < 1 / SHOWN_MAX:
        return f"<{1 / SHOWN_MAX:g}"
    return f"{value:.{digits}f}"


def interval_text(low: float, high: float, digits: int = 2) -> str:
    return f"{odds_text(low, digits)}–{odds_text(high, digits)}"
