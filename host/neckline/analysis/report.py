"""The printable HTML report: one self-contained file (inline CSS and SVG, no scripts, no
links to anything outside it) that a user can open offline or print for a clinician."""

from __future__ import annotations

import math
from html import escape
from pathlib import Path

import numpy as np

from neckline.analysis.correlation import PRODROME_LABEL, Correlation
from neckline.analysis.crossover import WindowResult
from neckline.analysis.oddsformat import interval_text, odds_text
from neckline.analysis.summary import summary_text
from neckline.analysis.svgplot import dose_response, lag_profile, timeline
from neckline.analysis.windows import local_offsets_min
from neckline.errors import NecklineError
from neckline.headache.timeparse import zone_name

CSS = """
body{font-family:Helvetica,Arial,sans-serif;color:#222;max-width:960px;margin:2em auto;
padding:0 1em;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.6em;
border-bottom:1px solid #ccc;padding-bottom:.2em}
.meta{color:#666;font-size:.9em}.verdict{padding:.7em 1em;border-radius:4px;margin:1em 0;
background:#fff4e0;border:1px solid #e0b060}.verdict.ok{background:#e8f5e9;border-color:#7cb87f}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #ccc;
padding:.25em .6em;text-align:right}th:first-child,td:first-child{text-align:left}
th{background:#f3f3f3}svg{width:100%;height:auto;display:block;margin:.5em 0}
.note{color:#555;font-size:.85em}
@media print{body{margin:0;max-width:none}h2{break-after:avoid}
figure,table,svg{break-inside:avoid}.verdict{border-width:2px}}
@page{size:A4;margin:15mm}
"""


def _f(value: float, digits: int = 2) -> str:
    if math.isnan(value):
        return "–"
    if math.isinf(value):
        return "∞" if value > 0 else "0"
    return f"{value:.{digits}f}"


def _p(value: float) -> str:
    if math.isnan(value):
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _row(cells: list[str], head: bool = False) -> str:
    tag = "th" if head else "td"
    return "<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>"


def _window_rows(results: list[WindowResult], prodrome: bool = False) -> str:
    rows = []
    for r in results:
        lo, hi = r.ci
        name = escape(r.window.label) + (f" ({PRODROME_LABEL})" if prodrome else "")
        rows.append(_row([
            name, odds_text(r.odds_ratio), interval_text(lo, hi), _p(r.fit.p_value),
            "–" if prodrome else _p(r.p_adjusted), str(r.n_cases), _f(r.mean_case_h),
            _f(r.mean_referent_h), str(r.case_excluded), str(r.no_referent),
        ]))
    return "".join(rows)


def _prodrome_note(c: Correlation) -> str:
    """Why the prodrome window stands apart (nothing when the user put it in the family)."""
    if c.prodrome is None:
        return ""
    return (f" The {escape(c.prodrome.window.label)} window is reported apart, with a two-sided, "
            "unadjusted p: a headache that is starting can change posture itself.")


def render_html(c: Correlation) -> str:
    suff = c.sufficiency
    tz = c.options.tz
    onset_min = c.headaches.onset_epoch_s // 60
    local = np.array([int(m) + int(local_offsets_min(int(m), 1, tz)[0]) for m in onset_min],
                     dtype=np.int64)
    period = "no exposure data"
    if c.span is not None:
        period = f"{c.span[0]:%Y-%m-%d} to {c.span[1]:%Y-%m-%d} (UTC)"
    types = ", ".join(c.types) if c.types else "all types"
    head = _row(["window before onset", "odds ratio / h", "95 % CI", "p", "p (Holm)",
                 "headaches analysed", "mean strain h (case)", "mean strain h (referents)",
                 "case windows excluded (wear)", "no usable referent"], head=True)
    table = f"<table>{head}{_window_rows(c.windows)}"
    if c.prodrome is not None:
        table += _window_rows([c.prodrome], prodrome=True)
    table += "</table>"
    dose_rows = []
    for label, groups in c.dose.items():
        for g in groups:
            dose_rows.append(_row([
                escape(label), g.label, f"{_f(g.low_h)}–{_f(g.high_h)}", str(g.cases),
                str(g.referents), odds_text(g.odds_ratio), interval_text(g.ci_low, g.ci_high),
                escape(g.note),
            ]))
    dose_table = ("<table>" + _row(["window", "group", "strain h", "cases", "referents",
                                    "odds ratio", "95 % CI (Wald)", "note"], head=True)
                  + "".join(dose_rows) + "</table>") if dose_rows else \
        "<p class='note'>Too little data for a dose-response view.</p>"
    d = c.days
    day_table = (
        "<table>" + _row(["", "days", "strain min (mean)", "strain min (median)",
                          "strain share of wear"], head=True)
        + _row(["headache days", str(d.headache_days.days), _f(d.headache_days.strain_min_mean, 0),
                _f(d.headache_days.strain_min_median, 0),
                _f(100 * d.headache_days.strain_share_mean, 0) + " %"])
        + _row(["headache-free days", str(d.free_days.days), _f(d.free_days.strain_min_mean, 0),
                _f(d.free_days.strain_min_median, 0),
                _f(100 * d.free_days.strain_share_mean, 0) + " %"])
        + "</table>"
        + f"<p class='note'>Days with at least {d.min_wear_h:g} h of wear. Mann-Whitney "
        f"p = {_p(d.p_value)} (descriptive: a headache day's strain includes the hours after "
        "the onset).</p>"
    )
    ok = " ok" if suff.sufficient else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Neckline: neck strain and headaches</title><style>{CSS}</style></head>
<body>
<h1>Neck strain and headaches</h1>
<p class="meta">Analysed {c.analysed_at:%Y-%m-%d %H:%M} UTC · exposure {escape(period)} ·
{len(c.headaches)} headaches ({escape(types)}; {c.headaches_total} in the log) ·
clock times in {escape(zone_name(tz))}</p>
<div class="verdict{ok}"><strong>{escape(suff.verdict[0].upper() + suff.verdict[1:])}.</strong>
</div>
<h2>Summary</h2>
<p>{escape(summary_text(c))}</p>
<h2>Strain and headaches over time</h2>
{timeline(c.daily.day_epoch_min, c.daily.wear_h, c.daily.strain_h, local, c.headaches.types)}
<h2>Lag profile</h2>
{lag_profile(c.windows, c.prodrome)}
{table}
<p class="note">Odds ratio per hour of sustained strain in the window, from a time-stratified
case-crossover analysis (each headache compared with the other working days, or weekend days,
of the same month at the same clock time, leaving out the {c.options.exclusion_days} days on
either side; adjusted for the weekday) by conditional logistic regression. The p-values test
{"for more strain before headaches (one-sided)" if c.options.alternative == "greater"
 else "for a difference in either direction (two-sided)"}; those of the {len(c.windows)}
windows are adjusted together (Holm).{_prodrome_note(c)} Windows with less than
{100 * c.options.min_coverage:.0f} % of the usual wear are excluded, never counted as zero
strain.</p>
<h2>Dose-response</h2>
{dose_response(c.dose)}
{dose_table}
<h2>Headache days and headache-free days</h2>
{day_table}
<h2>How to read this</h2>
<p class="note">This report shows associations in one person's data. It cannot show that neck
strain causes headaches: other things (busy days, sleep, stress, screens) can go with both.
Exposure is what the device measured; hours it was not worn are left out, not treated as good
posture. Method and validation: docs/analysis.md in the Neckline source.</p>
</body></html>
"""


def write_html(path: Path, c: Correlation) -> None:
    try:
        path.write_text(render_html(c), encoding="utf-8")
    except OSError as exc:
        raise NecklineError(f"cannot write {path}: {exc.strerror or exc}") from None
