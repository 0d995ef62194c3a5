"""Hand-written SVG charts for the report: no plotting library, nothing fetched from anywhere.

Each function returns one `<svg>` element (inline SVG in HTML5 needs no namespace URL) with an
`id`, a `<title>` and an `aria-label`, drawn in a fixed coordinate box that scales to the page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

import numpy as np
from numpy.typing import NDArray

from neckline.analysis.crossover import WindowResult
from neckline.analysis.doseresponse import DoseGroup

INK = "#222"
GRID = "#ddd"
STRAIN = "#c0392b"
WEAR = "#d6e4f0"
MARK = "#6c3483"
MUTED = "#888"
OR_MIN, OR_MAX = 1 / 64, 64.0


class Canvas:
    def __init__(self, width: int, height: int, ident: str, title: str) -> None:
        self.width, self.height = width, height
        self.ident, self.title = ident, title
        self.parts: list[str] = []

    def add(self, element: str) -> None:
        self.parts.append(element)

    def line(self, x1: float, y1: float, x2: float, y2: float, color: str = INK,
             width: float = 1.0, dash: str = "") -> None:
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                 f'stroke="{color}" stroke-width="{width}"{extra}/>')

    def rect(self, x: float, y: float, w: float, h: float, color: str) -> None:
        self.add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" '
                 f'height="{max(h, 0):.1f}" fill="{color}"/>')

    def circle(self, x: float, y: float, r: float, color: str) -> None:
        self.add(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{color}"/>')

    def polygon(self, points: Sequence[tuple[float, float]], color: str, label: str = "") -> None:
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        tip = f"<title>{escape(label)}</title>" if label else ""
        self.add(f'<polygon points="{pts}" fill="{color}">{tip}</polygon>')

    def text(self, x: float, y: float, text: str, size: int = 11, anchor: str = "start",
             color: str = INK, rotate: float = 0.0) -> None:
        turn = f' transform="rotate({rotate:g} {x:.1f} {y:.1f})"' if rotate else ""
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
                 f'fill="{color}"{turn}>{escape(text)}</text>')

    def render(self) -> str:
        body = "".join(self.parts)
        return (f'<svg id="{self.ident}" viewBox="0 0 {self.width} {self.height}" '
                f'role="img" aria-label="{escape(self.title)}" '
                f'font-family="Helvetica, Arial, sans-serif">'
                f"<title>{escape(self.title)}</title>{body}</svg>")


def timeline(
    day_epoch_min: NDArray[np.int64], wear_h: NDArray[np.float64],
    strain_h: NDArray[np.float64], onset_local_min: NDArray[np.int64], kinds: Sequence[str],
) -> str:
    """Daily worn hours (pale) and strain hours (red) with a marker at each headache onset."""
    c = Canvas(900, 260, "plot-timeline", "Sustained neck strain per day, with headache onsets")
    left, right, top, bottom = 50, 885, 30, 215
    n = int(day_epoch_min.size)
    if n == 0:
        c.text(450, 130, "no wear recorded", 14, "middle", MUTED)
        return c.render()
    ymax = max(4.0, float(np.nanmax(wear_h)) if wear_h.size else 4.0)
    ymax = math.ceil(ymax / 2) * 2
    width = (right - left) / n

    def y(h: float) -> float:
        return bottom - (bottom - top) * h / ymax

    for tick in range(0, int(ymax) + 1, 2 if ymax <= 16 else 4):
        c.line(left, y(tick), right, y(tick), GRID)
        c.text(left - 6, y(tick) + 4, f"{tick}", 10, "end")
    c.text(14, (top + bottom) / 2, "hours per day", 11, "middle", rotate=-90)
    for i in range(n):
        x = left + i * width
        c.rect(x + 0.1 * width, y(float(wear_h[i])), 0.8 * width, bottom - y(float(wear_h[i])),
               WEAR)
        c.rect(x + 0.1 * width, y(float(strain_h[i])), 0.8 * width,
               bottom - y(float(strain_h[i])), STRAIN)
    first_day = int(day_epoch_min[0])
    last_month = None
    for i in range(n):
        day = datetime.fromtimestamp(int(day_epoch_min[i]) * 60, UTC)
        if day.month != last_month:
            last_month = day.month
            x = left + i * width
            c.line(x, bottom, x, bottom + 5, INK)
            c.text(x + 2, bottom + 17, day.strftime("%b %Y"), 10)
    c.line(left, bottom, right, bottom, INK)
    for minute, kind in zip(onset_local_min.tolist(), kinds, strict=True):
        pos = (minute - first_day) / 1440.0
        if not 0 <= pos <= n:
            continue
        x = left + pos * width
        when = datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%d %H:%M")
        c.polygon([(x - 5, top - 12), (x + 5, top - 12), (x, top - 2)], MARK,
                  f"headache ({kind}) {when} local time")
    c.rect(left, 240, 12, 10, WEAR)
    c.text(left + 16, 249, "worn", 10)
    c.rect(left + 60, 240, 12, 10, STRAIN)
    c.text(left + 76, 249, "sustained strain", 10)
    c.polygon([(left + 180, 240), (left + 190, 240), (left + 185, 250)], MARK)
    c.text(left + 196, 249, "headache onset", 10)
    return c.render()


def _or_axis(c: Canvas, values: Sequence[float], top: float, bottom: float, left: float,
             right: float) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v) and v > 0]
    lo = min([0.5, *finite])
    hi = max([2.0, *finite])
    lo = max(OR_MIN, 2.0 ** math.floor(math.log2(lo)))
    hi = min(OR_MAX, 2.0 ** math.ceil(math.log2(hi)))
    for k in range(int(math.log2(lo)), int(math.log2(hi)) + 1):
        value = 2.0**k
        yy = _y_or(value, lo, hi, top, bottom)
        c.line(left, yy, right, yy, INK if value == 1 else GRID, 1.2 if value == 1 else 1.0,
               "" if value == 1 else "3,3")
        c.text(left - 6, yy + 4, f"{value:g}", 10, "end")
    return lo, hi


def _y_or(value: float, lo: float, hi: float, top: float, bottom: float) -> float:
    v = min(max(value, lo), hi) if value > 0 else lo
    return bottom - (bottom - top) * (math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo))


def _interval(c: Canvas, x: float, est: float, ci: tuple[float, float], lo: float, hi: float,
              top: float, bottom: float, color: str) -> None:
    a, b = ci
    if math.isnan(a) or math.isnan(b):
        c.text(x, bottom - 6, "n/a", 10, "middle", MUTED)
        return
    ya, yb = _y_or(a, lo, hi, top, bottom), _y_or(b, lo, hi, top, bottom)
    c.line(x, ya, x, yb, color, 2)
    for value, yy in ((a, ya), (b, yb)):
        if value <= lo or value >= hi or math.isinf(value):
            sign = -1 if yy < (top + bottom) / 2 else 1
            c.polygon([(x - 5, yy), (x + 5, yy), (x, yy + sign * 8)], color)
        else:
            c.line(x - 5, yy, x + 5, yy, color, 2)
    if math.isfinite(est) and est > 0:
        c.circle(x, _y_or(est, lo, hi, top, bottom), 5, color)


def lag_profile(windows: Sequence[WindowResult], prodrome: WindowResult | None) -> str:
    """Odds ratio per hour of strain with its 95 % CI for each lag window (log scale)."""
    c = Canvas(900, 300, "plot-lag-profile",
               "Lag profile: odds ratio per hour of sustained strain, by window before onset")
    left, right, top, bottom = 60, 885, 20, 230
    items = ([prodrome] if prodrome is not None else []) + list(windows)
    values = [v for r in items for v in (r.odds_ratio, *r.ci)]
    lo, hi = _or_axis(c, values, top, bottom, left, right)
    c.text(16, (top + bottom) / 2, "odds ratio per hour (log scale)", 11, "middle", rotate=-90)
    step = (right - left) / max(len(items), 1)
    for i, r in enumerate(items):
        x = left + step * (i + 0.5)
        is_prodrome = prodrome is not None and r is prodrome
        color = MUTED if is_prodrome else STRAIN
        _interval(c, x, r.odds_ratio, r.ci, lo, hi, top, bottom, color)
        c.text(x, bottom + 18, f"{r.window.label} before onset", 11, "middle")
        sub = "possibly reverse causation" if is_prodrome else (
            f"n = {r.n_cases}, adj. p = {r.p_adjusted:.2g}" if not math.isnan(r.p_adjusted)
            else f"n = {r.n_cases}")
        c.text(x, bottom + 33, sub, 10, "middle", MUTED if is_prodrome else INK)
    c.text(right, bottom + 58, "dots: estimates; bars: 95 % confidence intervals; "
           "line at 1: no association", 10, "end", MUTED)
    return c.render()


def dose_response(dose: dict[str, list[DoseGroup]]) -> str:
    """Odds ratio by exposure quartile (Q1 is the reference), one panel per window."""
    labels = list(dose)
    c = Canvas(900, 300, "plot-dose-response",
               "Dose-response: odds ratio by quartile of strain in each window")
    if not labels:
        c.text(450, 150, "not enough data for a dose-response view", 14, "middle", MUTED)
        return c.render()
    top, bottom = 30, 220
    values = [v for groups in dose.values() for g in groups
              for v in (g.odds_ratio, g.ci_low, g.ci_high)]
    panel = (900 - 70) / len(labels)
    lo = hi = 1.0
    for p, label in enumerate(labels):
        x0 = 60 + p * panel
        if p == 0:
            lo, hi = _or_axis(c, values, top, bottom, x0, 60 + len(labels) * panel - 10)
        c.text(x0 + panel / 2, 16, f"{label} before onset", 11, "middle")
        groups = dose[label]
        if not groups:
            c.text(x0 + panel / 2, (top + bottom) / 2, "too little data", 10, "middle", MUTED)
            continue
        if groups[-1].note:
            c.text(x0 + panel / 2, top + 14, "no headache in Q1:", 9, "middle", MUTED)
            c.text(x0 + panel / 2, top + 26, "no comparison possible", 9, "middle", MUTED)
        step = (panel - 20) / len(groups)
        for k, g in enumerate(groups):
            x = x0 + 10 + step * (k + 0.5)
            _interval(c, x, g.odds_ratio, (g.ci_low, g.ci_high), lo, hi, top, bottom, STRAIN)
            c.text(x, bottom + 16, g.label, 10, "middle")
            c.text(x, bottom + 29, f"{g.low_h:.1f}–{g.high_h:.1f} h", 9, "middle", MUTED)
    c.text(16, (top + bottom) / 2, "odds ratio vs Q1 (log scale)", 11, "middle", rotate=-90)
    c.text(880, 290, "Q1 = lowest quarter of strain hours in the window (reference)", 10, "end",
           MUTED)
    return c.render()
