"""UTC instants for the simulator: parsing, minute alignment and ISO 8601 text.

The simulated wearer lives at UTC+0, so "time of day" and "weekday" are UTC as well.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday


def parse_utc(text: str) -> datetime:
    """An ISO 8601 instant; a trailing Z or an offset is honoured, naive text is taken as UTC."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"not an ISO 8601 time: {text!r}") from exc
    return as_utc(parsed)


def as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def require_minute(moment: datetime) -> datetime:
    """The same instant in UTC; raises if it is not the start of a minute."""
    utc = as_utc(moment)
    if utc.second or utc.microsecond:
        raise ValueError(f"the start must be a whole UTC minute, got {utc.isoformat()}")
    return utc


def epoch_s(moment: datetime) -> int:
    return int((as_utc(moment) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(seconds=1))


def iso_seconds(epoch: NDArray[np.int64]) -> NDArray[np.str_]:
    """ISO 8601 UTC text ('2026-01-05T08:00:00Z') for integer epoch seconds."""
    stamps = np.datetime_as_string(np.asarray(epoch, dtype="datetime64[s]"), unit="s")
    return np.char.add(stamps, "Z")


def iso(moment: datetime) -> str:
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")
