"""Per-minute exposure for the analysis: wear seconds and seconds of sustained strain.

Sources: the exposure CSV (`time`, `wear_s`, `strain_s`, more columns allowed) or InfluxDB's
`exposure` measurement. Either way the result is a dense per-minute series from the first to the
last minute with data. A minute without a row has no wear, so it adds nothing to the wear
coverage of a window: missing data never reads as "no strain" (see `windows.py`).

Rows with impossible values (wear outside 0-60 s, strain outside 0-wear) are dropped, counted
and logged. Rows with wear but no strain figure are minutes the host did not score (worn too
little): they are missing data, dropped and counted apart (`unscored`), not errors. A file
that is not an exposure CSV, or unreadable rows, raise an error with line numbers.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from neckline import queries
from neckline.errors import NecklineError
from neckline.headache.influx import InfluxTarget
from neckline.headache.model import to_ms
from neckline.headache.timeparse import TimeParseError, parse_time
from neckline.queries import TimeRange
from neckline.store.schema import EXPOSURE

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
REQUIRED = ("time", "wear_s", "strain_s")
SLACK_S = 0.5  # rounding in upstream writers (whole or 2-decimal seconds)
MAX_ERRORS_SHOWN = 20


@dataclass(frozen=True)
class ExposureSeries:
    """Dense per-minute wear and strain seconds from `start_min` (epoch minutes, UTC)."""

    start_min: int
    wear_s: FloatArray
    strain_s: FloatArray
    rows: int  # minutes that had a row
    rejected: int = 0  # rows dropped for impossible values
    unscored: int = 0  # rows with wear but no strain figure (too little wear to score): no data

    def __len__(self) -> int:
        return int(self.wear_s.size)

    @property
    def end_min(self) -> int:
        return self.start_min + len(self)

    def total_wear_h(self) -> float:
        return float(self.wear_s.sum()) / 3600.0

    @classmethod
    def empty(cls) -> ExposureSeries:
        return cls(0, np.zeros(0), np.zeros(0), 0)


def from_minutes(
    minutes: IntArray, wear_s: FloatArray, strain_s: FloatArray, rejected: int = 0
) -> ExposureSeries:
    """A dense series from sparse rows (epoch minutes need not be sorted; no duplicates).

    A NaN strain marks a minute its writer did not score (the host leaves strain out of minutes
    worn too little): it is missing data, kept out of the series and counted in `unscored`.
    """
    minutes = np.asarray(minutes, dtype=np.int64)
    wear = np.asarray(wear_s, dtype=np.float64)
    strain = np.asarray(strain_s, dtype=np.float64)
    wear_ok = np.isfinite(wear) & (wear >= 0) & (wear <= 60 + SLACK_S)
    ok = wear_ok & np.isfinite(strain) & (strain >= 0) & (strain <= wear + SLACK_S)
    unscored = int((wear_ok & np.isnan(strain)).sum())
    bad = int((~ok).sum()) - unscored
    if bad:
        log.warning("exposure: dropped %d minute(s) with impossible wear/strain values", bad)
    minutes, wear, strain = minutes[ok], np.minimum(wear[ok], 60.0), strain[ok]
    strain = np.minimum(strain, wear)
    if minutes.size == 0:
        return ExposureSeries(0, np.zeros(0), np.zeros(0), 0, rejected + bad, unscored)
    start = int(minutes.min())
    n = int(minutes.max()) - start + 1
    dense_wear = np.zeros(n)
    dense_strain = np.zeros(n)
    dense_wear[minutes - start] = wear
    dense_strain[minutes - start] = strain
    return ExposureSeries(start, dense_wear, dense_strain, int(minutes.size), rejected + bad,
                          unscored)


def from_arrays(start: datetime, wear_s: FloatArray, strain_s: FloatArray) -> ExposureSeries:
    """Consecutive minutes from `start` (a whole UTC minute), e.g. a simulator's output."""
    start_min = to_ms(start) // 60_000
    minutes = start_min + np.arange(np.asarray(wear_s).size, dtype=np.int64)
    return from_minutes(minutes, wear_s, strain_s)


def read_exposure_csv(path: Path) -> ExposureSeries:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise NecklineError(f"cannot read {path}: {exc}") from None
    return read_exposure_text(text, str(path))


def read_exposure_text(text: str, source: str = "<text>") -> ExposureSeries:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise NecklineError(f"{source}: empty file (expected a header with "
                            f"{', '.join(REQUIRED)})")
    names = [h.strip().lower() for h in header]
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise NecklineError(f"{source}: not an exposure CSV: missing column(s) "
                            f"{', '.join(missing)} (found {', '.join(header)})")
    it, iw, istr = (names.index(c) for c in REQUIRED)
    rows = [row for row in reader if len(row) > 1 or (row and row[0].strip())]
    fast = _fast_columns(rows, it, iw, istr)
    if fast is not None:
        minutes, wear, strain = fast
    else:
        minutes, wear, strain = _slow_columns(rows, _line_numbers(text), it, iw, istr, source)
    order = np.argsort(minutes, kind="stable")
    dup = np.flatnonzero(np.diff(minutes[order]) == 0)
    if dup.size:
        lines = _line_numbers(text)
        a, b = sorted((lines[order[dup[0]]], lines[order[dup[0] + 1]]))
        raise NecklineError(f"{source}: line {b}: minute also on line {a}")
    has = ~np.isnan(wear)  # no wear figure: no data for this minute
    # Worn but strain unknown (not scored): from_minutes keeps it out and counts it.
    return from_minutes(minutes[has], wear[has], strain[has])


def _line_numbers(text: str) -> list[int]:
    """The line each data row starts on (only needed to explain a problem, so not fast)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader, None)
    lines: list[int] = []
    previous = reader.line_num
    for row in reader:
        if len(row) > 1 or (row and row[0].strip()):
            lines.append(previous + 1)
        previous = reader.line_num
    return lines


def _fast_columns(
    rows: list[list[str]], it: int, iw: int, istr: int
) -> tuple[IntArray, FloatArray, FloatArray] | None:
    """Vectorised reading of files in the simulator's exact format (UTC `Z` minute starts);
    None when anything differs, and the row-by-row reader then explains what."""
    try:
        width = max(it, iw, istr)
        if any(len(r) <= width for r in rows):
            return None
        times = [r[it] for r in rows]
        if not all(t.endswith("Z") and len(t) == 20 for t in times):
            return None
        stamps = np.array([t[:-1] for t in times], dtype="datetime64[s]").astype(np.int64)
        if np.any(stamps % 60):
            return None
        wear = np.array([r[iw].strip() or "nan" for r in rows], dtype=np.float64)
        strain = np.array([r[istr].strip() or "nan" for r in rows], dtype=np.float64)
    except ValueError:
        return None
    return stamps // 60, wear, strain


def _slow_columns(
    rows: list[list[str]], lines: list[int], it: int, iw: int, istr: int, source: str
) -> tuple[IntArray, FloatArray, FloatArray]:
    minutes: list[int] = []
    wear: list[float] = []
    strain: list[float] = []
    errors: list[str] = []
    for line, row in zip(lines, rows, strict=True):
        try:
            if len(row) <= max(it, iw, istr):
                raise ValueError(f"{len(row)} fields, fewer than the header's")
            ms = to_ms(parse_time(row[it]))
            if ms % 60_000:
                raise ValueError(f"time {row[it]!r} is not the start of a minute")
            w = float(row[iw]) if row[iw].strip() else float("nan")
            s = float(row[istr]) if row[istr].strip() else float("nan")
        except (ValueError, TimeParseError) as exc:
            errors.append(f"line {line}: {exc}")
            continue
        minutes.append(ms // 60_000)
        wear.append(w)
        strain.append(s)
    if errors:
        shown = "\n".join(f"  {e}" for e in errors[:MAX_ERRORS_SHOWN])
        more = f"\n  ... and {len(errors) - MAX_ERRORS_SHOWN} more" \
            if len(errors) > MAX_ERRORS_SHOWN else ""
        raise NecklineError(f"{source}: {len(errors)} unreadable row(s):\n{shown}{more}")
    return (np.array(minutes, dtype=np.int64), np.array(wear, dtype=np.float64),
            np.array(strain, dtype=np.float64))


def read_exposure_influx(
    target: InfluxTarget,
    since: datetime | None = None,
    until: datetime | None = None,
    device: str | None = None,
    chunk_days: int = 31,
) -> ExposureSeries:
    """The `exposure` measurement per minute. Several devices in one minute are combined with
    the largest wear and strain, since one person wears one device at a time."""
    start_ms, end_ms = _span(target, since, until, device)
    if start_ms is None or end_ms is None:
        return ExposureSeries.empty()
    chunk_ms = chunk_days * 86_400_000
    minutes: list[int] = []
    wear: list[float] = []
    strain: list[float] = []
    t = start_ms
    while t <= end_ms:
        stop = min(t + chunk_ms, end_ms + 1)
        span = TimeRange(f"time >= {t}ms AND time < {stop}ms")
        if device:
            statement = queries.exposure(target.layout, device, span)
        else:  # every device: queries.exposure is per device
            statement = (f'SELECT "wear_s", "strain_s" FROM {target.source(EXPOSURE)} '
                         f"WHERE {span.clause}")
        rows = target.rows(statement)
        for row in rows:
            if row.get("wear_s") is None:
                continue
            minutes.append(int(row["time"]) // 60_000)
            wear.append(float(row["wear_s"]))
            s = row.get("strain_s")
            strain.append(float("nan") if s is None else float(s))
        t = stop
    if not minutes:
        return ExposureSeries.empty()
    m = np.array(minutes, dtype=np.int64)
    w = np.array(wear)
    s = np.array(strain)
    # One person, one neck: overlapping devices in a minute count once, at their maximum.
    order = np.lexsort((-w, m))
    m, w, s = m[order], w[order], s[order]
    first = np.concatenate(([True], m[1:] != m[:-1]))
    if not first.all():
        # fmax: a device that scored the minute wins over one that did not (NaN).
        smax = np.fmax.reduceat(s, np.flatnonzero(first))
        m, w, s = m[first], w[first], smax
    return from_minutes(m, w, s)


def _span(
    target: InfluxTarget, since: datetime | None, until: datetime | None, device: str | None
) -> tuple[int | None, int | None]:
    lo = to_ms(since) if since else None
    hi = to_ms(until) - 1 if until else None
    if lo is None or hi is None:
        src = target.source(EXPOSURE)
        first = target.rows(f'SELECT first("wear_s") FROM {src}')
        last = target.rows(f'SELECT last("wear_s") FROM {src}')
        if not first or not last:
            return None, None
        lo = int(first[0]["time"]) if lo is None else lo
        hi = int(last[0]["time"]) if hi is None else hi
    return lo, hi


def utc_minute(moment: datetime) -> int:
    return to_ms(moment.astimezone(UTC)) // 60_000
