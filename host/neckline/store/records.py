"""Schema-checked encoding of the low-rate measurements (everything except bulk `posture`).

A field's type must never change in InfluxDB (a conflicting write is rejected), so values are
coerced to the schema's type here: an int given for a float field is written as a float, a bool
for an integer field as 0/1. Anything that cannot be coerced without loss, an unknown field or
tag, or a tag value outside its enum is refused with a reason; `encode_points` counts and logs
such refusals and carries on with the other points.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from neckline.store.errors import LineProtocolError
from neckline.store.lineproto import FieldValue, LineBatch, encode_line
from neckline.store.schema import MEASUREMENTS, FieldType

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Point:
    """One point of a Neckline measurement; `None` (or NaN) field values are left out."""

    measurement: str
    time_ms: int
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue | None]


def _coerce(
    measurement: str, name: str, kind: FieldType, value: FieldValue | None
) -> FieldValue | None:
    if value is None:
        return None
    where = f"{measurement}.{name}"
    if kind is FieldType.STRING:
        if not isinstance(value, str):
            raise LineProtocolError(f"{where} must be a string, got {value!r}")
        return value
    if isinstance(value, str):
        raise LineProtocolError(f"{where} must be a number, got a string {value!r}")
    if kind is FieldType.FLOAT:
        if isinstance(value, bool | np.bool_):
            raise LineProtocolError(f"{where} must be a float, got a bool")
        return float(value)
    # FieldType.INTEGER
    if isinstance(value, bool | np.bool_):
        return int(bool(value))
    if isinstance(value, float | np.floating):
        as_float = float(value)
        if math.isnan(as_float):
            return None
        if not as_float.is_integer():
            raise LineProtocolError(f"{where} must be an integer, got {as_float!r}")
        return int(as_float)
    return int(value)


def encode_point(point: Point) -> str | None:
    """The point as a line, checked against the schema; None if no field has a value."""
    spec = MEASUREMENTS.get(point.measurement)
    if spec is None:
        raise LineProtocolError(f"unknown measurement {point.measurement!r}")
    extra_tags = set(point.tags) - set(spec.tags)
    if extra_tags:
        raise LineProtocolError(f"{spec.name}: unknown tag(s) {sorted(extra_tags)}")
    for tag in spec.tags:
        tag_value = point.tags.get(tag)
        if not tag_value:
            raise LineProtocolError(f"{spec.name}: tag {tag!r} is required")
        allowed = spec.tag_values.get(tag)
        if allowed is not None and tag_value not in allowed:
            raise LineProtocolError(
                f"{spec.name}: tag {tag}={tag_value!r} is not one of {sorted(allowed)}"
            )
    fields: dict[str, FieldValue | None] = {}
    for name, value in point.fields.items():
        kind = spec.fields.get(name)
        if kind is None:
            raise LineProtocolError(f"{spec.name}: unknown field {name!r}")
        fields[name] = _coerce(spec.name, name, kind, value)
    return encode_line(spec.name, point.tags, fields, point.time_ms)


@dataclass
class EncodeReport:
    """Batches ready for the batcher, plus what was refused (and why) or had nothing to store."""

    batches: list[LineBatch] = field(default_factory=list)
    refused: list[tuple[Point, str]] = field(default_factory=list)
    empty: int = 0


def encode_points(points: Iterable[Point]) -> EncodeReport:
    """Encode many points into one batch per destination; bad points are counted and logged."""
    by_dest: dict[str, list[str]] = {}
    report = EncodeReport()
    for point in points:
        try:
            line = encode_point(point)
        except LineProtocolError as exc:
            report.refused.append((point, str(exc)))
            log.warning("refused %s point at %s: %s", point.measurement, point.time_ms, exc)
            continue
        if line is None:
            report.empty += 1
            continue
        by_dest.setdefault(MEASUREMENTS[point.measurement].dest, []).append(line)
    report.batches = [LineBatch.from_lines(dest, lines) for dest, lines in by_dest.items()]
    return report
