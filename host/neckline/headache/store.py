"""The headache log in InfluxDB: measurement `headache`, one point per headache.

A point is identified by measurement, tag set and time, so an entry's point is (`source` tag,
onset). The entry's stable `id` is a field. That shapes the operations (docs/headaches.md):

- **add** refuses a second headache in the same onset minute, so two entries never share a point;
- **edit** writes the new point and deletes the old one when the onset or source changed. With
  the same onset and source, a plain overwrite would keep a field the edit removed (fields merge
  on overwrite), so then the old point is deleted first and the new one written;
- **delete** is InfluxQL `DELETE FROM "headache" WHERE "source" = ... AND time = ...`: InfluxDB 1.x
  deletes by tags and time only (not by field), which is exactly the point's identity;
- **import** writes all new entries in one request and checks that every one arrived; if not,
  it deletes the ones that did, so a file is imported completely or not at all.

Deleting needs InfluxQL DELETE, which InfluxDB 1.x (the local server) has; on 2.x/3.x edits that
move a point and deletes are refused with a clear message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from neckline import queries
from neckline.errors import NecklineError
from neckline.headache.influx import InfluxTarget, write_points
from neckline.headache.model import EntryError, HeadacheEntry, from_ms, to_ms
from neckline.queries import TimeRange
from neckline.store import Point
from neckline.store.schema import HEADACHE, quote_ident

log = logging.getLogger(__name__)


class HeadacheNotFound(NecklineError):
    exit_code = 3


def entry_point(entry: HeadacheEntry) -> Point:
    """The entry as a `headache` point. Every field is written, so that a rewrite replaces
    them all; only `severity` and `end` can be absent."""
    return Point(
        HEADACHE, entry.onset_ms, {"source": entry.source},
        {
            "severity": entry.severity,
            "type": entry.type,
            "end": entry.end_ms,
            "aura": int(entry.aura),
            "medication": entry.medication,
            "notes": entry.notes,
            "needs_details": int(entry.needs_details),
            "id": entry.id,
        },
    )


def row_entry(row: dict[str, Any]) -> HeadacheEntry:
    """A stored point back as an entry (raises EntryError for a point that is not one)."""
    try:
        onset = from_ms(int(row["time"]))
        end = row.get("end")
        severity = row.get("severity")
        return HeadacheEntry(
            id=str(row.get("id") or ""),
            onset=onset,
            severity=None if severity is None else int(severity),
            type=str(row.get("type") or "unknown"),
            end=None if end is None else from_ms(int(end)),
            aura=bool(row.get("aura") or 0),
            medication=str(row.get("medication") or ""),
            notes=str(row.get("notes") or ""),
            # Stored, the flag means "no severity yet": a re-sent device marker sets the field
            # again, but an entry the user has described stays described.
            needs_details=severity is None,
            source=str(row.get("source") or ""),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise EntryError(f"stored headache at {row.get('time')} is unreadable: {exc}") from exc


@dataclass
class ImportOutcome:
    added: list[HeadacheEntry] = field(default_factory=list)
    skipped: list[tuple[HeadacheEntry, str]] = field(default_factory=list)


class HeadacheStore:
    def __init__(self, target: InfluxTarget) -> None:
        self.target = target
        self.unreadable = 0  # points in the measurement that are not valid entries (last list)

    # -- reading ---------------------------------------------------------------------------------

    def list(self, since: datetime | None = None, until: datetime | None = None
             ) -> list[HeadacheEntry]:
        """Entries by onset; stored points that are not valid entries are counted and logged."""
        where = [f"time >= {to_ms(since) if since is not None else 0}ms"]
        if until is not None:
            where.append(f"time < {to_ms(until)}ms")
        rows = self.target.rows(queries.headaches(self.target.layout,
                                                  TimeRange(" AND ".join(where))))
        entries: list[HeadacheEntry] = []
        self.unreadable = 0
        for row in rows:
            try:
                entries.append(row_entry(row))
            except EntryError as exc:
                self.unreadable += 1
                log.warning("%s", exc)
        entries.sort(key=lambda e: (e.onset, e.source))
        return entries

    def find(self, ref: str, entries: Sequence[HeadacheEntry] | None = None) -> HeadacheEntry:
        """The entry whose id is `ref` or starts with it (a unique prefix is enough)."""
        pool = self.list() if entries is None else entries
        exact = [e for e in pool if e.id == ref]
        if exact:
            return exact[0]
        hits = [e for e in pool if ref and e.id.startswith(ref)]
        if len(hits) == 1:
            return hits[0]
        if not hits:
            raise HeadacheNotFound(f"no headache with id {ref!r} (`neckline headache list`)")
        ids = ", ".join(e.id for e in hits[:5])
        raise NecklineError(f"{ref!r} matches several headaches ({ids}); give more of the id")

    # -- writing ---------------------------------------------------------------------------------

    def add(self, entry: HeadacheEntry) -> None:
        existing = self.list()
        clash = _clash(entry, existing)
        if clash:
            raise NecklineError(clash)
        write_points(self.target, [entry_point(entry)])

    def import_entries(self, entries: Iterable[HeadacheEntry]) -> ImportOutcome:
        """Add the entries that are not in the log yet (same id or same onset minute means
        "already there"); all of them or none."""
        existing = self.list()
        ids = {e.id for e in existing}
        minutes = {e.onset_ms // 60_000 for e in existing}
        outcome = ImportOutcome()
        for entry in entries:
            if entry.id in ids:
                outcome.skipped.append((entry, "already in the log (same id)"))
            elif entry.onset_ms // 60_000 in minutes:
                outcome.skipped.append((entry, "already in the log (same onset minute)"))
            else:
                outcome.added.append(entry)
        if not outcome.added:
            return outcome
        try:
            write_points(self.target, [entry_point(e) for e in outcome.added])
            stored = {e.id for e in self.list()}
            missing = [e for e in outcome.added if e.id not in stored]
            if missing:
                raise NecklineError(f"{len(missing)} of {len(outcome.added)} entries did not "
                                    "arrive in InfluxDB")
        except NecklineError as exc:
            self._roll_back(outcome.added)
            raise NecklineError(f"import failed, nothing was imported: {exc}") from exc
        return outcome

    def _roll_back(self, entries: Sequence[HeadacheEntry]) -> None:
        for entry in entries:
            try:
                self._delete_point(entry)
            except NecklineError as exc:  # keep going: remove as many as possible
                log.error("could not roll back headache %s: %s", entry.id, exc)

    def replace(self, old: HeadacheEntry, new: HeadacheEntry) -> None:
        """Store `new` in place of `old` (same id)."""
        if new.id != old.id:
            raise NecklineError("an edit keeps the entry's id")
        others = [e for e in self.list() if e.id != old.id]
        clash = _clash(new, others)
        if clash:
            raise NecklineError(clash)
        same_point = (new.onset_ms, new.source) == (old.onset_ms, old.source)
        if same_point:
            # Fields merge on overwrite: delete first so a removed end or severity goes too.
            self._require_delete()
            self._delete_point(old)
            try:
                write_points(self.target, [entry_point(new)])
            except NecklineError:
                write_points(self.target, [entry_point(old)])  # put the old one back
                raise
        else:
            self._require_delete()
            write_points(self.target, [entry_point(new)])
            self._delete_point(old)

    def delete(self, entry: HeadacheEntry) -> None:
        self._require_delete()
        self._delete_point(entry)

    def _require_delete(self) -> None:
        if self.target.influx.dialect != "v1":
            raise NecklineError(
                "editing or deleting headaches needs InfluxQL DELETE (InfluxDB 1.x); the "
                "configured server speaks the v2 dialect"
            )

    def _delete_point(self, entry: HeadacheEntry) -> None:
        # The source tag is one of three fixed words (checked by the model), so quoting is safe.
        self.target.run(
            f"DELETE FROM {quote_ident(HEADACHE)} WHERE \"source\" = '{entry.source}' "
            f"AND time = {entry.onset_ms}ms"
        )


def _clash(entry: HeadacheEntry, existing: Iterable[HeadacheEntry]) -> str | None:
    minute = entry.onset_ms // 60_000
    for other in existing:
        if other.id == entry.id:
            return f"a headache with id {entry.id} is already in the log"
        if other.onset_ms // 60_000 == minute:
            return (f"a headache starting at {other.onset:%Y-%m-%d %H:%M} UTC is already in the "
                    f"log (id {other.id}); edit that one instead")
    return None
