"""What the pipeline stores besides posture rows, as schema-checked Points (docs/schema.md).

Exposure rows (host-computed per minute, or the device's own summary records), strain episodes,
device events and link status. docs/pipeline.md gives the field mapping of device events. The
`headache` entry a marker-button press opens comes from neckline.headache.device, the one place
that knows how a marker may be written without overwriting what the user added since.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from neckline.headache.device import marker_point
from neckline.protocol import (
    BufferOverflow,
    CalibrationOutcome,
    Event,
    EventCode,
    HeadacheMarker,
    LowBattery,
    StrainEnd,
    StrainStart,
    SummaryFlag,
    cdeg_to_deg,
)
from neckline.store.records import Point
from neckline.strain import MINUTE_MS, Direction, Episode, MinuteExposure

SOURCE_HOST = 1
SOURCE_DEVICE = 2

EVENT_TYPES: Mapping[EventCode, str] = {
    EventCode.STRAIN_START: "strain_start",
    EventCode.STRAIN_END: "strain_end",
    EventCode.HEADACHE_MARKER: "headache_marker",
    EventCode.CALIBRATION: "calibration",
    EventCode.BUFFER_OVERFLOW: "buffer_overflow",
    EventCode.LOW_BATTERY: "low_battery",
}


def _opt(value: float) -> float | None:
    return None if not math.isfinite(value) else value


def _deg(cdeg: int | None) -> str:
    return "none" if cdeg is None else f"{cdeg / 100:.2f} deg"


def exposure_points(device: str, minutes: MinuteExposure) -> list[Point]:
    """One `exposure` row per minute the host computed (source 1).

    Minutes worn less than min_wear_s are marked, not scored: wear and flexion are written, the
    strain fields are left out (null), so no query can read them as "no strain".
    """
    points: list[Point] = []
    # Samples are placed in UTC but last their device period, so a drifting clock can make a
    # minute's covered time exceed 60 s by a few ms; the stored seconds stay within the minute.
    wear = np.minimum(minutes.wear_ms, MINUTE_MS) / 1000.0
    strain = np.minimum(minutes.strain_ms, np.minimum(minutes.wear_ms, MINUTE_MS)) / 1000.0
    load = minutes.strain_load_deg_min
    mean = minutes.mean_flexion_deg
    peak = minutes.max_flexion_deg
    for k in range(len(minutes)):
        scored = bool(minutes.enough_wear[k])
        fields: dict[str, Any] = {
            "wear_s": float(wear[k]),
            "mean_flexion": _opt(float(mean[k])),
            "max_flexion": _opt(float(peak[k])),
            "episodes": int(minutes.episodes[k]),
            "source": SOURCE_HOST,
        }
        if scored:
            fields["strain_s"] = float(strain[k])
            fields["strain_load"] = float(load[k])
        points.append(Point("exposure", int(minutes.minute[k]) * MINUTE_MS,
                            {"device": device}, fields))
    return points


def episode_points(device: str, episodes: list[Episode]) -> list[Point]:
    """Flexion episodes ("strain"); extension and lateral episodes are not strain."""
    return [
        Point(
            "strain_episode", e.start_ms, {"device": device},
            {"end": e.end_ms, "duration_s": e.duration_ms / 1000.0,
             "peak_flexion": e.peak_cdeg / 100.0, "mean_flexion": e.mean_cdeg / 100.0},
        )
        for e in episodes
        if e.direction is Direction.FLEXION
    ]


@dataclass(frozen=True)
class SummaryRow:
    """One device summary record, placed: `minute_ms` is the UTC minute it is stored at."""

    minute_ms: int
    wear_s: int
    strain_s: int
    mean_flexion_cdeg: int | None
    max_flexion_cdeg: int | None
    episodes: int
    flags: int


def summary_point(device: str, row: SummaryRow, min_wear_s: int) -> Point:
    fields: dict[str, Any] = {
        "wear_s": float(row.wear_s),
        "mean_flexion": None if row.mean_flexion_cdeg is None else row.mean_flexion_cdeg / 100,
        "max_flexion": None if row.max_flexion_cdeg is None else row.max_flexion_cdeg / 100,
        "episodes": row.episodes,
        "alerts": 1 if row.flags & SummaryFlag.ALERTED else 0,
        "source": SOURCE_DEVICE,
    }
    if row.wear_s >= min_wear_s:
        fields["strain_s"] = float(row.strain_s)
    return Point("exposure", row.minute_ms, {"device": device}, fields)


def event_points(device: str, event: Event, utc_ms: int) -> list[Point]:
    """The device_event row of an event; a headache marker also opens a `headache` entry
    (`marker_point`: only its id and the needs-details flag, so a marker written again, after
    a restart or a re-sent backlog, cannot overwrite the severity, type or notes the user has
    added since)."""
    data = event.data
    value: float | None = None
    detail = ""
    if isinstance(data, StrainStart):
        value = cdeg_to_deg(data.flexion_cdeg)
        detail = f"flexion {_deg(data.flexion_cdeg)}"
    elif isinstance(data, StrainEnd):
        value = float(data.duration_s)
        detail = f"duration {data.duration_s} s, peak flexion {_deg(data.peak_flexion_cdeg)}"
    elif isinstance(data, CalibrationOutcome):
        value = float(int(data.result))
        detail = (f"{data.result.name}, pitch {_deg(data.pitch_cdeg)}, "
                  f"roll {_deg(data.roll_cdeg)}")
    elif isinstance(data, BufferOverflow):
        value = float(data.lost)
        detail = f"seq {data.first_lost_seq}..{data.last_lost_seq} lost on the device"
    elif isinstance(data, LowBattery):
        value = float(data.percent)
        detail = f"{data.millivolts} mV, {data.percent} %"
    elif isinstance(data, HeadacheMarker):
        detail = "marker button pressed"
    points = [Point(
        "device_event", utc_ms, {"device": device, "type": EVENT_TYPES[event.code]},
        {"code": int(event.code), "value": None if value is None else _opt(value),
         "detail": detail, "event_seq": event.event_seq},
    )]
    marker = marker_point(device, event, utc_ms)
    if marker is not None:
        points.append(marker)
    return points


def link_point(device: str, utc_ms: int, state: str, *, rssi: int | None = None,
               battery_pct: int | None = None, backlog: int | None = None,
               spool_bytes: int | None = None, rejected: int | None = None) -> Point:
    return Point("link", utc_ms, {"device": device}, {
        "state": state, "rssi": rssi, "battery_pct": battery_pct, "backlog": backlog,
        "spool_bytes": spool_bytes, "rejected": rejected,
    })


def round_minute(utc_ms: np.int64 | int) -> int:
    """The UTC minute start nearest to `utc_ms` (boot-relative device minutes are not aligned)."""
    return int((int(utc_ms) + MINUTE_MS // 2) // MINUTE_MS * MINUTE_MS)
