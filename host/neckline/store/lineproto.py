"""InfluxDB line protocol: escaping, one point at a time, and the batch unit the store passes on.

The rules follow what every InfluxDB line (1.x, 2.x, 3.x) parses the same way:

* measurement: `,` and space are escaped; tag keys, tag values and field keys: `,`, `=` and space.
* string field values are double-quoted with `"` and `\\` escaped.
* integers carry the `i` suffix, floats are written in shortest round-trip form, booleans as
  `true`/`false`; NaN and ±inf cannot be stored, so such fields are left out of the line.

Some inputs have no portable encoding, and those raise `LineProtocolError` instead of being
mangled: control characters or backslashes in names and tag values (a trailing or misplaced
backslash changes how the server splits the line), line breaks inside string values (the line
protocol reference says they are not supported), empty names, reserved keys such as `time`.
Because no encoded line can contain a raw newline, a batch body splits back into its lines with
a plain `split(b"\\n")`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from neckline.store.errors import LineProtocolError

FieldValue = float | int | bool | str | np.floating | np.integer | np.bool_

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# Timestamps are sent with precision=ms; the server keeps nanoseconds in an int64.
TIME_MS_MIN = INT64_MIN // 1_000_000 + 1
TIME_MS_MAX = INT64_MAX // 1_000_000

RESERVED_KEYS = frozenset({"time", "_measurement", "_field", "_time", "_start", "_stop", "_value"})

_BAD_NAME_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})
_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"'})


def _check_name(kind: str, name: object) -> str:
    if not isinstance(name, str):
        raise LineProtocolError(f"{kind} must be a string, got {type(name).__name__}")
    if not name:
        raise LineProtocolError(f"{kind} must not be empty")
    bad = _BAD_NAME_CHARS.search(name)
    if bad is not None:
        raise LineProtocolError(
            f"{kind} {name!r} contains {bad.group()!r}; control characters and backslashes "
            "have no portable line-protocol encoding"
        )
    return name


@lru_cache(maxsize=1024)
def escape_measurement(name: str) -> str:
    _check_name("measurement", name)
    if name.startswith("#"):
        raise LineProtocolError(f"measurement {name!r} would be read as a comment line")
    return name.translate(_MEASUREMENT_ESCAPES)


@lru_cache(maxsize=4096)
def escape_key(key: str) -> str:
    """Escape a tag key or field key."""
    _check_name("key", key)
    if key in RESERVED_KEYS:
        raise LineProtocolError(f"key {key!r} is reserved by InfluxDB")
    return key.translate(_KEY_ESCAPES)


@lru_cache(maxsize=4096)
def escape_tag_value(value: str) -> str:
    return _check_name("tag value", value).translate(_KEY_ESCAPES)


def escape_string(value: str) -> str:
    """Quote a string field value."""
    if "\n" in value or "\r" in value:
        raise LineProtocolError(
            "string field values cannot contain line breaks in line protocol; "
            f"replace them before storing: {value[:40]!r}"
        )
    return '"' + value.translate(_STRING_ESCAPES) + '"'


def format_float(value: float) -> str | None:
    """Shortest round-trip text of a float, or None for NaN/inf (which Influx cannot store)."""
    if not math.isfinite(value):
        return None
    return repr(float(value))


def format_int(value: int) -> str:
    if not INT64_MIN <= value <= INT64_MAX:
        raise LineProtocolError(f"integer {value} does not fit InfluxDB's signed 64 bits")
    return f"{value}i"


def format_field_value(value: object) -> str | None:
    """The field value as line protocol text; None means "leave this field out" (None/NaN/inf)."""
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return format_int(int(value))
    if isinstance(value, float | np.floating):
        return format_float(float(value))
    if isinstance(value, str):
        return escape_string(value)
    raise LineProtocolError(f"unsupported field value type {type(value).__name__}: {value!r}")


def check_time_ms(time_ms: int) -> int:
    if isinstance(time_ms, bool) or not isinstance(time_ms, int | np.integer):
        raise LineProtocolError(f"timestamp must be an integer of milliseconds, got {time_ms!r}")
    value = int(time_ms)
    if not TIME_MS_MIN <= value <= TIME_MS_MAX:
        raise LineProtocolError(f"timestamp {value} ms is outside InfluxDB's time range")
    return value


def encode_line(
    measurement: str,
    tags: Mapping[str, str | None],
    fields: Mapping[str, FieldValue | None],
    time_ms: int,
) -> str | None:
    """One point as a line (no trailing newline), or None if no field has a storable value.

    Tags are sorted by key, as InfluxDB recommends; tags whose value is None are left out.
    """
    head = [escape_measurement(measurement)]
    for key in sorted(tags):
        tag = tags[key]
        if tag is None:
            continue
        head.append(f"{escape_key(key)}={escape_tag_value(tag)}")
    parts: list[str] = []
    for key, value in fields.items():
        text = format_field_value(value)
        if text is not None:
            parts.append(f"{escape_key(key)}={text}")
    stamp = check_time_ms(time_ms)
    if not parts:
        return None
    return f"{','.join(head)} {','.join(parts)} {stamp}"


# -- the unit the store passes along -------------------------------------------------------------

_DEST = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


@dataclass(frozen=True)
class LineBatch:
    """Encoded lines bound for one destination (a retention policy / bucket alias, see schema).

    `body` is the lines joined by `\\n`, exactly what is POSTed; `lines` is how many there are.
    """

    dest: str
    body: bytes
    lines: int

    def __post_init__(self) -> None:
        if not _DEST.match(self.dest):
            raise LineProtocolError(f"destination {self.dest!r} is not a short plain name")
        if self.lines < 1 or not self.body:
            raise LineProtocolError("a batch needs at least one line")

    @classmethod
    def from_lines(cls, dest: str, lines: Sequence[str]) -> LineBatch:
        return cls(dest, "\n".join(lines).encode("utf-8"), len(lines))


def split_lines(body: bytes) -> list[bytes]:
    """The lines of a batch body (valid because encoded lines never contain a raw newline)."""
    return body.split(b"\n")


def join_lines(lines: Iterable[bytes]) -> bytes:
    return b"\n".join(lines)
