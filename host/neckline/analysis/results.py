"""The latest analysis as points of the `correlation` measurement, for Grafana.

One point per lag window (tag `window`), all at the analysis time; the prodrome window is
written too, with its label in `verdict`. `alternative` says which test the p-values are of
("greater": one-sided, more strain before headaches; "two-sided"). Grafana shows the latest
with `last()` per window.
"""

from __future__ import annotations

import math

from neckline.analysis.correlation import PRODROME_LABEL, Correlation
from neckline.analysis.crossover import WindowResult
from neckline.headache.influx import InfluxTarget, write_points
from neckline.headache.model import to_ms
from neckline.store import Point
from neckline.store.schema import CORRELATION

MAX_VERDICT = 250


def _clean(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _point(c: Correlation, r: WindowResult, verdict: str, adjusted: float,
           alternative: str) -> Point:
    lo, hi = r.ci
    return Point(
        CORRELATION, to_ms(c.analysed_at), {"window": r.window.label},
        {
            "odds_ratio": _clean(r.odds_ratio),
            "ci_low": _clean(lo),
            "ci_high": _clean(hi),
            "p_value": _clean(r.fit.p_value),
            "p_adjusted": _clean(adjusted),
            "n_cases": r.n_cases,
            "sufficient": int(c.sufficiency.sufficient),
            "verdict": verdict[:MAX_VERDICT],
            "alternative": alternative,
        },
    )


def correlation_points(c: Correlation) -> list[Point]:
    points = [_point(c, r, c.sufficiency.verdict, r.p_adjusted, c.options.alternative)
              for r in c.windows]
    if c.prodrome is not None:  # always tested two-sided (analysis/crossover.py)
        points.append(_point(c, c.prodrome, PRODROME_LABEL, c.prodrome.p_adjusted, "two-sided"))
    return points


def write_results(target: InfluxTarget, c: Correlation) -> int:
    return write_points(target, correlation_points(c))
