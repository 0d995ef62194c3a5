"""The wearer's headache-marker button: a HEADACHE_MARKER event becomes a log entry that
"needs details" (the button says *when*, the user later says how bad and what kind).

The pipeline calls `marker_point(device, event, utc_ms)` for every decoded event, with the
event's time already aligned to UTC, and stores the point with the others. The point carries
only the entry's `id` and the `needs_details` flag. A marker that arrives twice (a re-sent
backlog after a reconnection) lands on the same point (same tag and time) and cannot overwrite
the severity, type or notes the user has added since; an entry counts as needing details only
while it has no severity (see `store.row_entry`).
"""

from __future__ import annotations

from neckline.headache.model import HeadacheEntry, from_ms, make_id
from neckline.protocol import Event, EventCode
from neckline.store import Point
from neckline.store.schema import HEADACHE


def marker_id(device: str, event: Event, utc_ms: int) -> str:
    """Stable for the same press: device, boot, the device's event counter and the time."""
    return make_id("device", device, event.boot_id, event.event_seq, utc_ms)


def marker_entry(device: str, event: Event, utc_ms: int) -> HeadacheEntry:
    if event.code is not EventCode.HEADACHE_MARKER:
        raise ValueError(f"not a headache marker: {event.code.name}")
    return HeadacheEntry(
        id=marker_id(device, event, utc_ms),
        onset=from_ms(utc_ms),
        severity=None,
        type="unknown",
        needs_details=True,
        source="device",
    )


def marker_point(device: str, event: Event, utc_ms: int) -> Point | None:
    """The `headache` point for a marker event, or None for any other event."""
    if event.code is not EventCode.HEADACHE_MARKER:
        return None
    entry = marker_entry(device, event, utc_ms)
    return Point(HEADACHE, entry.onset_ms, {"source": entry.source},
                 {"id": entry.id, "needs_details": 1})
