"""Times as people write them in a diary, turned into UTC instants.

Accepted (see docs/headaches.md): ISO 8601 with `T` or a space, with or without seconds, with
`Z`, `UTC` or an offset; year-first dates with `-`, `/` or `.`; day-first dotted dates
(`29.03.2026`); slashed dates with the year last (`29/03/2026`, `03/29/2026`) once the day/month
order is known; 24-hour or `am`/`pm` clock times. A date without a time of day is refused: an
onset at an invented midnight would put the exposure windows in the wrong place.

Times without an offset are local wall-clock times in the chosen zone. A wall-clock time that a
daylight-saving change skips does not exist and is refused; one that happens twice (clocks go
back) is refused too unless the caller chose which of the two is meant, because guessing would
move the onset by an hour without anyone noticing.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

AMBIGUOUS_CHOICES = ("error", "earlier", "later")
DATE_ORDERS = ("dmy", "mdy")


class TimeParseError(ValueError):
    """Text that is not a time this module accepts; the message says why."""


def local_zone() -> tzinfo:
    """This machine's IANA time zone (DST-aware), or UTC when none can be found."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        target = str(Path("/etc/localtime").resolve())
    except OSError:
        target = ""
    marker = "/zoneinfo/"
    if marker in target:
        try:
            return ZoneInfo(target.split(marker, 1)[1])
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        return ZoneInfo(Path("/etc/timezone").read_text().strip())
    except (OSError, ZoneInfoNotFoundError, ValueError):
        return UTC


def zone(name: str | None) -> tzinfo:
    """The zone called `name` ("local" or None: this machine's; "UTC"; or an IANA name)."""
    if name is None or name == "local":
        return local_zone()
    if name.upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimeParseError(
            f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin, or UTC"
        ) from None


def zone_name(tz: tzinfo) -> str:
    return str(getattr(tz, "key", None) or tz.tzname(None) or tz)


@dataclass(frozen=True)
class TimeOptions:
    tz: tzinfo = UTC
    date_order: str | None = None  # for slashed dates with the year last: "dmy" or "mdy"
    ambiguous: str = "error"  # a wall-clock time that occurs twice: "error", "earlier", "later"

    def __post_init__(self) -> None:
        if self.date_order not in (None, *DATE_ORDERS):
            raise TimeParseError(f"date order must be one of {DATE_ORDERS}")
        if self.ambiguous not in AMBIGUOUS_CHOICES:
            raise TimeParseError(f"ambiguous must be one of {AMBIGUOUS_CHOICES}")


_DATE = (
    r"(?:(?P<y>\d{4})(?P<ysep>[-/.])(?P<m>\d{1,2})(?P=ysep)(?P<d>\d{1,2})"
    r"|(?P<a>\d{1,2})(?P<sep>[/.])(?P<b>\d{1,2})(?P=sep)(?P<y2>\d{4}))"
)
_TIME = (
    r"(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:[.,](?P<f>\d{1,9}))?)?"
    r"(?:\s*(?P<ampm>[AaPp]\.?[Mm]\.?))?"
)
_ZONE = r"(?P<zone>Z|z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)"
_FULL = re.compile(rf"^\s*{_DATE}(?:[Tt]|\s*,?\s+)(?:{_TIME})\s*{_ZONE}?\s*$")
_DATE_ONLY = re.compile(rf"^\s*{_DATE}\s*$")
_TIME_ONLY = re.compile(rf"^\s*{_TIME}\s*$")


def slash_order_hint(text: str) -> str | None:
    """For a slashed year-last date, the order it proves ("dmy"/"mdy"), "" if it proves none."""
    match = _FULL.match(text) or _DATE_ONLY.match(text)
    if match is None or match.group("sep") != "/":
        return None
    a, b = int(match.group("a")), int(match.group("b"))
    if a > 12 >= b:
        return "dmy"
    if b > 12 >= a:
        return "mdy"
    return ""


def _clock(match: re.Match[str]) -> tuple[int, int, int, int]:
    hour, minute = int(match.group("H")), int(match.group("M"))
    second = int(match.group("S") or 0)
    frac = (match.group("f") or "0")[:6].ljust(6, "0")
    ampm = match.group("ampm")
    if ampm:
        if not 1 <= hour <= 12:
            raise TimeParseError("an am/pm hour must be 1-12")
        pm = ampm[0].lower() == "p"
        hour = hour % 12 + (12 if pm else 0)
    return hour, minute, second, int(frac)


def _offset(text: str) -> tzinfo:
    if text.upper() in ("Z", "UTC", "GMT"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    if hours > 23 or minutes > 59:
        raise TimeParseError(f"offset {text} is out of range")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def localize(naive: datetime, tz: tzinfo, ambiguous: str = "error") -> datetime:
    """The UTC instant of a wall-clock time in `tz`, refusing skipped and (by default) doubled
    times around daylight-saving changes."""
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first == second:
        return first
    if first.astimezone(tz).replace(tzinfo=None) != naive:
        raise TimeParseError(
            f"{naive:%Y-%m-%d %H:%M} does not exist in {zone_name(tz)} "
            "(the clocks jumped forward over it)"
        )
    if ambiguous == "earlier":
        return min(first, second)
    if ambiguous == "later":
        return max(first, second)
    raise TimeParseError(
        f"{naive:%Y-%m-%d %H:%M} happens twice in {zone_name(tz)} (the clocks went back); "
        "add an offset such as +01:00, or choose with --ambiguous earlier|later"
    )


def parse_time(text: str, options: TimeOptions = TimeOptions()) -> datetime:
    """One diary time as an aware UTC datetime."""
    match = _FULL.match(text)
    if match is None:
        if _DATE_ONLY.match(text):
            raise TimeParseError(f"{text.strip()!r} has no time of day")
        raise TimeParseError(
            f"{text.strip()!r} is not a date and time (for example 2026-03-29 14:30)"
        )
    if match.group("y"):
        year, month, day = int(match.group("y")), int(match.group("m")), int(match.group("d"))
    else:
        a, b, year = int(match.group("a")), int(match.group("b")), int(match.group("y2"))
        if match.group("sep") == ".":
            order = "dmy"  # dotted dates with the year last are day-first everywhere
        else:
            order = options.date_order or slash_order_hint(text) or ""
            if not order:
                raise TimeParseError(
                    f"{text.strip()!r} could be day/month or month/day; "
                    "choose with --date-order dmy|mdy"
                )
        day, month = (a, b) if order == "dmy" else (b, a)
    hour, minute, second, micro = _clock(match)
    try:
        naive = datetime(year, month, day, hour, minute, second, micro)
    except ValueError as exc:
        raise TimeParseError(f"{text.strip()!r}: {exc}") from None
    zone_text = match.group("zone")
    if zone_text:
        return naive.replace(tzinfo=_offset(zone_text)).astimezone(UTC)
    return localize(naive, options.tz, options.ambiguous)


_RELATIVE = re.compile(r"^\s*-?\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<u>m|min|h|d)\s*(?:ago)?\s*$")
_DAY_WORD = re.compile(r"^\s*(?P<word>today|yesterday)\s+(?P<rest>.+)$", re.IGNORECASE)


def parse_cli_time(text: str, options: TimeOptions, now: datetime) -> datetime:
    """A time typed on the command line: everything `parse_time` takes, plus `now`, `-2h`,
    `90m ago`, a bare clock time (today), and `yesterday 22:30`."""
    value = text.strip()
    if value.lower() == "now":
        return now.astimezone(UTC)
    rel = _RELATIVE.match(value)
    if rel and (value.startswith("-") or value.endswith("ago")):
        unit = {"m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}[rel.group("u")]
        return (now - timedelta(seconds=float(rel.group("n")) * unit)).astimezone(UTC)
    day_offset = 0
    word = _DAY_WORD.match(value)
    if word:
        day_offset = -1 if word.group("word").lower() == "yesterday" else 0
        value = word.group("rest")
    clock = _TIME_ONLY.match(value)
    if clock:
        hour, minute, second, micro = _clock(clock)
        local_day = (now.astimezone(options.tz) + timedelta(days=day_offset)).date()
        try:
            naive = datetime(local_day.year, local_day.month, local_day.day, hour, minute,
                             second, micro)
        except ValueError as exc:
            raise TimeParseError(f"{text.strip()!r}: {exc}") from None
        return localize(naive, options.tz, options.ambiguous)
    if word:
        raise TimeParseError(f"{text.strip()!r}: expected a clock time after {word.group('word')}")
    return parse_time(value, options)
