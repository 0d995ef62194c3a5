"""`neckline correlate`: does sustained neck strain come before headaches?"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import UTC, datetime
from pathlib import Path

from neckline.analysis.correlation import PRODROME_LABEL, Correlation, Headaches, correlate
from neckline.analysis.crossover import CrossoverOptions, WindowResult
from neckline.analysis.exposure import read_exposure_csv, read_exposure_influx
from neckline.analysis.oddsformat import odds_text
from neckline.analysis.report import write_html
from neckline.analysis.results import write_results
from neckline.analysis.summary import summary_text
from neckline.analysis.windows import (
    DEFAULT_WINDOWS,
    PRODROME_WINDOW,
    LagWindow,
    parse_windows,
)
from neckline.errors import NecklineError
from neckline.headache.csvio import read_headache_csv
from neckline.headache.influx import resolve_target
from neckline.headache.model import HEADACHE_TYPES
from neckline.headache.store import HeadacheStore
from neckline.headache.timeparse import (
    DATE_ORDERS,
    TimeOptions,
    TimeParseError,
    parse_cli_time,
    zone,
    zone_name,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "correlate",
        help="relate sustained neck strain to headache onsets (case-crossover)",
        description=(
            "Compare sustained neck strain in time windows before each headache with the same "
            "windows on comparable days (the other working days, or weekend days, of the same "
            "month at the same clock time), by conditional logistic regression adjusted for "
            "the weekday. Each window tests whether more strain goes with more headaches "
            "(one-sided; --two-sided tests both directions). Reads InfluxDB by default, or "
            "files with --exposure and --headaches. The 0-2 h window before onset is reported "
            "apart (possibly reverse causation). See docs/analysis.md."
        ),
    )
    parser.add_argument("--exposure", type=Path, metavar="CSV",
                        help="per-minute exposure CSV (time, wear_s, strain_s, ...)")
    parser.add_argument("--headaches", type=Path, metavar="CSV",
                        help="headache CSV (onset, severity, type, ...)")
    parser.add_argument("--type", action="append", choices=HEADACHE_TYPES,
                        help="only headaches of this type (repeat for several)")
    parser.add_argument("--windows", default=",".join(w.label.rstrip("h")
                                                      for w in DEFAULT_WINDOWS),
                        help="lag windows in hours before onset, e.g. 2-6,6-12,12-24,24-48 "
                        "(the default)")
    parser.add_argument("--min-coverage", type=float, default=0.5,
                        help="least share of the usual wear a window needs (default 0.5)")
    parser.add_argument("--two-sided", action="store_true",
                        help="test each window for an association in either direction, not "
                        "only for more strain before headaches")
    parser.add_argument("--tz", default="local",
                        help="time zone for clock times and calendar months (IANA name, UTC, "
                        "or 'local', the default); also for headache times without an offset")
    parser.add_argument("--date-order", choices=DATE_ORDERS,
                        help="day/month order of slashed dates in the headache CSV")
    parser.add_argument("--since", help="only data from this time (InfluxDB mode)")
    parser.add_argument("--until", help="only data before this time (InfluxDB mode)")
    parser.add_argument("--device", help="only this device's exposure (InfluxDB mode)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--html", type=Path, metavar="FILE",
                        help="also write a self-contained, printable HTML report with plots")
    parser.add_argument("--no-save", action="store_true",
                        help="do not write the results to InfluxDB (InfluxDB mode)")
    parser.set_defaults(func=_run)


def _options(args: argparse.Namespace) -> tuple[CrossoverOptions, list[str]]:
    notes: list[str] = []
    try:
        tz = zone(args.tz)
        windows = parse_windows(args.windows)
    except (TimeParseError, ValueError) as exc:
        raise NecklineError(str(exc)) from None
    prodrome: LagWindow | None = PRODROME_WINDOW
    if any(w.start_h < PRODROME_WINDOW.end_h for w in windows):
        notes.append(f"note: a window reaches into the last {PRODROME_WINDOW.end_h:g} h before "
                     f"onset, where strain may be an effect of the coming headache "
                     f"({PRODROME_LABEL})")
        if PRODROME_WINDOW in windows:
            prodrome = None
    if not 0 < args.min_coverage <= 1:
        raise NecklineError("--min-coverage must be above 0 and at most 1")
    try:
        return CrossoverOptions(windows=windows, prodrome=prodrome, tz=tz,
                                min_coverage=args.min_coverage,
                                alternative="two-sided" if args.two_sided else "greater"), notes
    except ValueError as exc:
        raise NecklineError(str(exc)) from None


def _run(args: argparse.Namespace) -> int:
    options, notes = _options(args)
    offline = args.exposure is not None or args.headaches is not None
    if offline and (args.exposure is None or args.headaches is None):
        raise NecklineError("offline mode needs both --exposure and --headaches")
    if offline:
        series = read_exposure_csv(args.exposure)
        parsed = read_headache_csv(args.headaches,
                                   TimeOptions(options.tz, args.date_order, "error"))
        headaches = Headaches.from_entries(parsed.entries)
        target = None
    else:
        target = resolve_target()
        now = datetime.now(UTC)
        topts = TimeOptions(options.tz)
        try:
            since = parse_cli_time(args.since, topts, now) if args.since else None
            until = parse_cli_time(args.until, topts, now) if args.until else None
        except TimeParseError as exc:
            raise NecklineError(str(exc)) from None
        series = read_exposure_influx(target, since, until, args.device)
        headaches = Headaches.from_entries(HeadacheStore(target).list(since, until))
    result = correlate(series, headaches, options, args.type)
    if args.html:
        write_html(args.html, result)
    saved = 0
    if target is not None and not args.no_save:
        saved = write_results(target, result)
    if args.json:
        print(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    else:
        for note in notes:
            print(note, file=sys.stderr)
        print_tables(result)
        if args.html:
            print(f"\nreport written to {args.html}")
        if saved:
            print(f"results stored in InfluxDB (measurement correlation, {saved} points)")
    return 0


def _num(value: float, digits: int = 2) -> str:
    if math.isnan(value):
        return "–"
    if math.isinf(value):
        return "∞" if value > 0 else "0"
    return f"{value:.{digits}f}"


def _p(value: float) -> str:
    return "–" if math.isnan(value) else ("<0.001" if value < 0.001 else f"{value:.3f}")


def _line(r: WindowResult, adjusted: str) -> str:
    lo, hi = r.ci
    return (f"{r.window.label:>8}  {odds_text(r.odds_ratio):>7}  {odds_text(lo):>7}–"
            f"{odds_text(hi):<7}  "
            f"{_p(r.fit.p_value):>7}  {adjusted:>7}  {r.n_cases:>5}  {r.case_excluded:>8}  "
            f"{r.no_referent:>6}")


def print_tables(c: Correlation) -> None:
    kinds = ", ".join(c.types) if c.types else "all types"
    period = "no exposure data"
    if c.span is not None:
        period = f"{c.span[0]:%Y-%m-%d} – {c.span[1]:%Y-%m-%d} UTC"
    print(f"Exposure: {period}, {c.exposure_minutes} minutes, "
          f"{c.sufficiency.days_worn} days of wear"
          + (f"; {c.exposure_unscored} minutes worn too little to score" if c.exposure_unscored
             else "")
          + (f" ({c.exposure_rejected} impossible rows dropped)" if c.exposure_rejected else ""))
    print(f"Headaches: {len(c.headaches)} analysed ({kinds}; {c.headaches_total} logged"
          + (f", {c.outside} outside the exposure period" if c.outside else "") + ")")
    print(f"Clock times in {zone_name(c.options.tz)}; windows need ≥ "
          f"{100 * c.options.min_coverage:.0f} % of the usual wear")
    print()
    print("Odds ratio per hour of sustained strain in each window before onset "
          "(time-stratified case-crossover)")
    print(f"{'window':>8}  {'OR':>7}  {'95 % CI':^15}  {'p':>7}  {'p Holm':>7}  {'cases':>5}  "
          f"{'excluded':>8}  {'no ref':>6}")
    sided = ("one-sided: more strain, more headaches" if c.options.alternative == "greater"
             else "two-sided")
    for r in c.windows:
        print(_line(r, _p(r.p_adjusted)))
    if c.prodrome is not None:
        print(_line(c.prodrome, "apart") + f"   ← {PRODROME_LABEL}")
    apart = (f"; the {c.prodrome.window.label} window's is two-sided and not adjusted"
             if c.prodrome is not None else "")
    print(f"p: likelihood-ratio test ({sided}){apart}")
    print("excluded: case windows with too little wear; no ref: no comparable window had "
          "enough wear")
    best = c.strongest
    if best is not None and c.dose.get(best.window.label):
        print()
        print(f"Dose-response, {best.window.label} window (odds ratio vs the lowest quarter)")
        for g in c.dose[best.window.label]:
            print(f"  {g.label}  {g.low_h:5.2f}–{g.high_h:5.2f} h  cases {g.cases:>3}  "
                  f"referents {g.referents:>4}  OR {odds_text(g.odds_ratio):>6}  "
                  f"({odds_text(g.ci_low)}–{odds_text(g.ci_high)})")
    d = c.days
    print()
    print(f"Days with ≥ {d.min_wear_h:g} h of wear: strain minutes per day")
    print(f"  headache days:      {d.headache_days.days:>4} days, mean "
          f"{_num(d.headache_days.strain_min_mean, 0)} min, median "
          f"{_num(d.headache_days.strain_min_median, 0)} min")
    print(f"  headache-free days: {d.free_days.days:>4} days, mean "
          f"{_num(d.free_days.strain_min_mean, 0)} min, median "
          f"{_num(d.free_days.strain_min_median, 0)} min   (Mann-Whitney p {_p(d.p_value)})")
    print()
    print("Verdict: " + c.sufficiency.verdict)
    print()
    print(summary_text(c))
