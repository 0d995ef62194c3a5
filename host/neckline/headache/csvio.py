"""Headache CSV files: a tolerant, all-or-nothing reader and a writer for export.

Reading checks every row before anything is imported and collects every problem with its line
number, so a user fixes a file in one go. docs/headaches.md lists the columns, their aliases
and the accepted time formats.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TextIO

from neckline.errors import NecklineError
from neckline.headache.model import (
    HEADACHE_TYPES,
    SOURCES,
    EntryError,
    HeadacheEntry,
    onset_id,
)
from neckline.headache.timeparse import TimeOptions, TimeParseError, parse_time, slash_order_hint

COLUMNS = ("id", "onset", "end", "severity", "type", "aura", "medication", "notes",
           "needs_details", "source")
REQUIRED = ("onset", "severity", "type")
ALIASES = {
    "start": "onset", "onset_time": "onset", "began": "onset",
    "stop": "end", "end_time": "end", "ended": "end",
    "intensity": "severity", "pain": "severity",
    "kind": "type", "headache_type": "type",
    "meds": "medication", "medications": "medication",
    "note": "notes", "comment": "notes", "comments": "notes",
}
TYPE_ALIASES = {"tension-type": "tension", "tension_type": "tension", "tth": "tension",
                "": "unknown"}
TRUE = frozenset({"1", "yes", "y", "true", "t", "x", "ja"})
FALSE = frozenset({"", "0", "no", "n", "false", "f", "nein"})
MAX_ERRORS_SHOWN = 25


@dataclass(frozen=True)
class RowError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class HeadacheCsvError(NecklineError):
    """The file cannot be imported; `errors` holds every problem found, with line numbers."""

    def __init__(self, source: str, errors: Sequence[RowError]) -> None:
        self.errors = list(errors)
        shown = [f"  {e}" for e in self.errors[:MAX_ERRORS_SHOWN]]
        more = len(self.errors) - MAX_ERRORS_SHOWN
        if more > 0:
            shown.append(f"  ... and {more} more")
        noun = "problem" if len(self.errors) == 1 else "problems"
        super().__init__(
            f"{source}: {len(self.errors)} {noun}, nothing was imported:\n" + "\n".join(shown)
        )


@dataclass
class ParsedFile:
    entries: list[HeadacheEntry] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # the line each entry starts on
    ignored_columns: list[str] = field(default_factory=list)
    date_order: str | None = None


def _normalise(name: str) -> str:
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    return ALIASES.get(key, key)


def _delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise HeadacheCsvError(source, [RowError(line, "not UTF-8 text")]) from None


def _bool(value: str) -> bool:
    low = value.strip().lower()
    if low in TRUE:
        return True
    if low in FALSE:
        return False
    raise ValueError(f"expected yes/no (or 1/0), got {value!r}")


def _severity(value: str) -> int | None:
    text = value.strip()
    if not text:
        return None
    try:
        number = float(text.replace(",", "."))
    except ValueError:
        raise ValueError(f"severity must be a whole number 0-10, got {text!r}") from None
    if not number.is_integer() or not 0 <= number <= 10:
        raise ValueError(f"severity must be a whole number 0-10, got {text!r}")
    return int(number)


def _type(value: str) -> str:
    low = value.strip().lower()
    low = TYPE_ALIASES.get(low, low)
    if low not in HEADACHE_TYPES:
        raise ValueError(f"type must be one of {', '.join(HEADACHE_TYPES)}, got {value!r}")
    return low


def read_headache_text(text: str, options: TimeOptions, source: str = "<text>") -> ParsedFile:
    """Parse and validate a whole file; raise HeadacheCsvError listing every bad line."""
    text = text.removeprefix("\ufeff")
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise HeadacheCsvError(source, [RowError(1, "the file is empty (no header line)")])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(lines[first]))
    header: list[str] | None = None
    header_line = 0
    rows: list[tuple[int, list[str]]] = []
    errors: list[RowError] = []
    previous_end = 0
    try:
        for row in reader:
            start_line = previous_end + 1
            previous_end = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header, header_line = row, start_line
                continue
            rows.append((start_line, row))
    except csv.Error as exc:
        raise HeadacheCsvError(source, [RowError(reader.line_num, f"not valid CSV: {exc}")]) \
            from None
    assert header is not None
    names = [_normalise(h) for h in header]
    parsed = ParsedFile()
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen and name in COLUMNS:
            errors.append(RowError(header_line, f"column {header[i]!r} appears twice"))
        seen.setdefault(name, i)
    missing = [c for c in REQUIRED if c not in seen]
    if missing:
        errors.append(RowError(
            header_line,
            f"missing column(s) {', '.join(missing)}; the header must name at least "
            f"{', '.join(REQUIRED)} (found {', '.join(header)})",
        ))
    if errors:
        raise HeadacheCsvError(source, errors)
    parsed.ignored_columns = [header[i] for i, n in enumerate(names) if n not in COLUMNS]
    col = {name: idx for name, idx in seen.items() if name in COLUMNS}

    def cell(row: list[str], name: str) -> str:
        idx = col.get(name)
        return row[idx] if idx is not None and idx < len(row) else ""

    options = _with_date_order(rows, col, options, errors)
    by_minute: dict[int, int] = {}
    by_id: dict[str, int] = {}
    for line, row in rows:
        if len(row) > len(header):
            errors.append(RowError(line, f"{len(row)} fields but the header has {len(header)}"))
            continue
        try:
            entry = _entry(row, cell, options)
        except (ValueError, TimeParseError, EntryError) as exc:
            errors.append(RowError(line, str(exc)))
            continue
        minute = entry.onset_ms // 60_000
        if minute in by_minute:
            errors.append(RowError(
                line, f"another headache starts in the same minute (line {by_minute[minute]})"
            ))
            continue
        if entry.id in by_id:
            errors.append(RowError(line, f"id {entry.id} is also used on line {by_id[entry.id]}"))
            continue
        by_minute[minute] = line
        by_id[entry.id] = line
        parsed.entries.append(entry)
        parsed.lines.append(line)
    if errors:
        raise HeadacheCsvError(source, errors)
    parsed.date_order = options.date_order
    return parsed


def _with_date_order(
    rows: list[tuple[int, list[str]]], col: dict[str, int], options: TimeOptions,
    errors: list[RowError],
) -> TimeOptions:
    """Settle day/month order of slashed dates once for the whole file, from the dates that
    prove it (a first number above 12 is a day), so every row is read the same way."""
    if options.date_order is not None:
        return options
    proofs: dict[str, int] = {}
    for line, row in rows:
        for name in ("onset", "end"):
            idx = col.get(name)
            if idx is None or idx >= len(row):
                continue
            hint = slash_order_hint(row[idx])
            if hint:
                proofs.setdefault(hint, line)
    if len(proofs) == 2:
        errors.append(RowError(
            max(proofs.values()),
            f"slashed dates are day-first on line {proofs['dmy']} but month-first on line "
            f"{proofs['mdy']}; fix the file or choose with --date-order",
        ))
        return options
    if proofs:
        return TimeOptions(options.tz, next(iter(proofs)), options.ambiguous)
    return options


def _entry(
    row: list[str], get: Callable[[list[str], str], str], options: TimeOptions
) -> HeadacheEntry:
    onset_text = get(row, "onset").strip()
    if not onset_text:
        raise ValueError("onset is empty")
    onset = parse_time(onset_text, options)
    end_text = get(row, "end").strip()
    end = parse_time(end_text, options) if end_text else None
    needs = _bool(get(row, "needs_details"))
    severity = _severity(get(row, "severity"))
    source = get(row, "source").strip().lower() or "import"
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    entry_id = get(row, "id").strip() or onset_id(onset)
    return HeadacheEntry(
        id=entry_id,
        onset=onset,
        end=end,
        severity=severity,
        type=_type(get(row, "type")),
        aura=_bool(get(row, "aura")),
        medication=get(row, "medication"),
        notes=get(row, "notes"),
        needs_details=needs,
        source=source,
    )


def read_headache_csv(path: Path, options: TimeOptions) -> ParsedFile:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise NecklineError(f"cannot read {path}: {exc.strerror or exc}") from None
    return read_headache_text(_decode(data, str(path)), options, str(path))


def format_time(moment: datetime | None, tz: tzinfo = UTC) -> str:
    """ISO 8601: `Z` for UTC, otherwise the local time with its offset (re-importable)."""
    if moment is None:
        return ""
    if tz is UTC:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.astimezone(tz).isoformat(timespec="seconds")


def write_headache_csv(out: TextIO, entries: Iterable[HeadacheEntry], tz: tzinfo = UTC) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    n = 0
    for e in entries:
        writer.writerow([
            e.id, format_time(e.onset, tz), format_time(e.end, tz),
            "" if e.severity is None else str(e.severity), e.type, int(e.aura),
            e.medication, e.notes, int(e.needs_details), e.source,
        ])
        n += 1
    return n
