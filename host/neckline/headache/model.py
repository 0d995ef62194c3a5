"""A headache diary entry: what the user (or the device's marker button) records.

Entries are immutable; an edit makes a new entry with the same `id`. Text fields never contain
line breaks (InfluxDB's line protocol cannot carry them), so `clean_text` turns them into " / "
when an entry is made, rather than refusing the user's note.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

HEADACHE_TYPES = ("migraine", "tension", "other", "unknown")
SOURCES = ("cli", "device", "import")
MAX_TEXT = 2000

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_BREAKS = re.compile(r"\s*(?:\r\n|\r|\n)\s*")


class EntryError(ValueError):
    """An entry with an impossible value; the message says which and why."""


def clean_text(text: str | None) -> str:
    """Free text with line breaks replaced and surrounding blanks removed."""
    if text is None:
        return ""
    return _BREAKS.sub(" / ", text).strip()


def to_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise EntryError("times must carry a time zone")
    return round(moment.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def make_id(*parts: object) -> str:
    """A short id that depends only on `parts`: the same content always gives the same id."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()
    return "h" + digest[:11]


def onset_id(onset: datetime) -> str:
    """The id of an entry created from its onset (CLI and import): one id per onset minute."""
    minute = to_ms(onset) // 60_000
    return make_id("onset", minute)


@dataclass(frozen=True)
class HeadacheEntry:
    id: str
    onset: datetime  # UTC
    severity: int | None = None  # 0-10; None only while the entry needs details
    type: str = "unknown"
    end: datetime | None = None
    aura: bool = False
    medication: str = ""
    notes: str = ""
    needs_details: bool = False
    source: str = "cli"

    def __post_init__(self) -> None:
        if not _ID.match(self.id):
            raise EntryError(f"id {self.id!r} must be 1-64 letters, digits, '-' or '_'")
        if self.onset.tzinfo is None or (self.end is not None and self.end.tzinfo is None):
            raise EntryError("onset and end must carry a time zone")
        object.__setattr__(self, "onset", self.onset.astimezone(UTC))
        if self.end is not None:
            object.__setattr__(self, "end", self.end.astimezone(UTC))
            if self.end < self.onset:
                raise EntryError("the end lies before the onset")
        if self.severity is None:
            if not self.needs_details:
                raise EntryError("a severity (0-10) is needed")
        elif isinstance(self.severity, bool) or not 0 <= self.severity <= 10:
            raise EntryError(f"severity must be a whole number from 0 to 10, got {self.severity}")
        if self.type not in HEADACHE_TYPES:
            raise EntryError(
                f"type must be one of {', '.join(HEADACHE_TYPES)}, got {self.type!r}"
            )
        if self.source not in SOURCES:
            raise EntryError(f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        for name in ("medication", "notes"):
            value = clean_text(getattr(self, name))
            if len(value) > MAX_TEXT:
                raise EntryError(f"{name} is longer than {MAX_TEXT} characters")
            object.__setattr__(self, name, value)

    @property
    def onset_ms(self) -> int:
        return to_ms(self.onset)

    @property
    def end_ms(self) -> int | None:
        return None if self.end is None else to_ms(self.end)

    def with_changes(self, **changes: Any) -> HeadacheEntry:
        return replace(self, **changes)

