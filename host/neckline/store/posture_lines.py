"""Vectorised line-protocol encoding of the high-rate `posture` measurement from numpy columns.

Speed comes from formatting each line with one C-level `bytes % tuple` over zipped Python lists,
with no per-point objects. Float formatting is the slowest part of that, so by default the angles
are rounded to `decimals` (4: 0.0001 degree, far below the sensor's 0.01 degree wire resolution)
and written as a scaled integer in scientific notation, `123456e-4`: the float 12.3456 (the same
double as `float("12.3456")`), in the float syntax the line-protocol reference allows.
`decimals=None` writes the exact shortest repr instead, at about three times the cost.

Rows in which some angle is NaN/inf (no value) leave that field out, so nothing invalid is ever
written. Such rows are common (every sample off the neck or before calibration has no filtered
angles), so rows are grouped by which angles they have and each group is formatted in one pass
with its own format. Only angles too large for the integer trick (|value| * 10**decimals >= 2**53)
take a per-row path that writes the rounded float's repr.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from neckline.store.errors import LineProtocolError
from neckline.store.lineproto import (
    INT64_MAX,
    TIME_MS_MAX,
    TIME_MS_MIN,
    LineBatch,
    escape_tag_value,
)
from neckline.store.schema import POSTURE, POSTURE_FLOAT_FIELDS, POSTURE_INT_FIELDS, destination

# Scaled values above 2**53 are no longer exact integers in a float64.
_EXACT_LIMIT = float(2**53)


def _int_column(name: str, values: ArrayLike, n: int) -> list[int]:
    arr = np.asarray(values)
    if arr.dtype.kind not in "iub":
        raise LineProtocolError(f"posture column {name!r} must be integers, got {arr.dtype}")
    if arr.size and arr.dtype.kind == "u" and int(arr.max()) > INT64_MAX:
        raise LineProtocolError(f"posture column {name!r} exceeds InfluxDB's signed 64 bits")
    try:
        out = np.broadcast_to(arr.astype(np.int64), (n,))
    except ValueError as exc:
        raise LineProtocolError(
            f"posture column {name!r} has shape {arr.shape}, expected ({n},)"
        ) from exc
    result: list[int] = out.tolist()
    return result


def _float_column(name: str, values: ArrayLike, n: int) -> NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64)
    try:
        return np.broadcast_to(arr, (n,))
    except ValueError as exc:
        raise LineProtocolError(
            f"posture column {name!r} has shape {arr.shape}, expected ({n},)"
        ) from exc


def encode_posture(
    device: str,
    *,
    time_ms: ArrayLike,
    flexion: ArrayLike,
    lateral: ArrayLike,
    rotation: ArrayLike,
    flexion_raw: ArrayLike,
    lateral_raw: ArrayLike,
    seq: ArrayLike,
    boot: ArrayLike,
    flags: ArrayLike,
    worn: ArrayLike,
    strain: ArrayLike,
    backfill: ArrayLike,
    decimals: int | None = 4,
) -> LineBatch | None:
    """Encode posture samples of one device; scalars broadcast. None when there are no rows.

    `time_ms` is UTC milliseconds (int), the angles are degrees (float, NaN = no value), the
    remaining columns are integers or booleans (booleans are written as 0/1 integers).
    """
    if decimals is not None and not 0 <= decimals <= 9:
        raise LineProtocolError(f"decimals must be 0..9 or None, got {decimals}")
    times = np.asarray(time_ms)
    if times.ndim != 1:
        raise LineProtocolError(f"time_ms must be one-dimensional, got shape {times.shape}")
    n = int(times.shape[0])
    if n == 0:
        return None
    if times.dtype.kind not in "iu":
        raise LineProtocolError(f"time_ms must be integers, got {times.dtype}")
    if int(times.min()) < TIME_MS_MIN or int(times.max()) > TIME_MS_MAX:
        raise LineProtocolError("a posture timestamp is outside InfluxDB's time range")
    floats = [
        _float_column(name, col, n)
        for name, col in zip(
            POSTURE_FLOAT_FIELDS,
            (flexion, lateral, rotation, flexion_raw, lateral_raw),
            strict=True,
        )
    ]
    ints = [
        _int_column(name, col, n)
        for name, col in zip(
            POSTURE_INT_FIELDS, (seq, boot, flags, worn, strain, backfill), strict=True
        )
    ]
    stamps = times.astype(np.int64)
    prefix = f"{POSTURE},device={escape_tag_value(device)} ".encode()
    stacked = np.stack(floats)
    present = np.isfinite(stacked)
    # rows with an angle too large for the scaled-integer form
    odd: NDArray[np.bool_] = np.zeros(n, np.bool_)
    if decimals is None:
        float_fmt = b"%r"
        cells: NDArray[np.float64] | NDArray[np.int64] = stacked
    else:
        float_fmt = b"%de-" + str(decimals).encode() if decimals else b"%d"
        with np.errstate(invalid="ignore", over="ignore"):
            scaled = np.rint(stacked * (10.0**decimals))
            exact = present & (np.abs(scaled) < _EXACT_LIMIT)
        odd = np.asarray((present & ~exact).any(axis=0), np.bool_)
        cells = np.where(exact, scaled, 0.0).astype(np.int64)
    int_fmt = [name.encode() + b"=%di" for name in POSTURE_INT_FIELDS]
    lines: list[bytes]
    if bool(present.all()) and not odd.any():  # the usual case: one format for every row
        lines = _format_rows(prefix, float_fmt, list(range(len(POSTURE_FLOAT_FIELDS))), int_fmt,
                             [row.tolist() for row in cells], ints, stamps.tolist())
    else:
        lines = [b""] * n
        weights = (1 << np.arange(len(POSTURE_FLOAT_FIELDS)))[:, None]
        pattern = np.where(odd, -1, (present * weights).sum(axis=0))
        for p in np.unique(pattern).tolist():
            rows = np.flatnonzero(pattern == p)
            if p < 0:
                row_list = stamps.tolist()
                for i in rows.tolist():
                    lines[i] = _slow_line(prefix, floats, ints, row_list, i, decimals)
                continue
            fields = [k for k in range(len(POSTURE_FLOAT_FIELDS)) if p >> k & 1]
            group = _format_rows(prefix, float_fmt, fields, int_fmt,
                                 [cells[k, rows].tolist() for k in fields],
                                 [[col[i] for i in rows.tolist()] for col in ints],
                                 stamps[rows].tolist())
            for i, line in zip(rows.tolist(), group, strict=True):
                lines[i] = line
    return LineBatch(destination(POSTURE), b"\n".join(lines), n)


def _format_rows(
    prefix: bytes,
    float_fmt: bytes,
    fields: list[int],
    int_fmt: list[bytes],
    float_cols: list[list[float]] | list[list[int]],
    int_cols: list[list[int]],
    stamps: list[int],
) -> list[bytes]:
    """Rows that all have the angles `fields` (indexes into POSTURE_FLOAT_FIELDS), one format."""
    fmt = prefix + b",".join(
        [POSTURE_FLOAT_FIELDS[k].encode() + b"=" + float_fmt for k in fields] + int_fmt
    ) + b" %d"
    return [fmt % row for row in zip(*float_cols, *int_cols, stamps, strict=True)]


def _slow_line(
    prefix: bytes,
    floats: list[NDArray[np.float64]],
    ints: list[list[int]],
    stamps: list[int],
    i: int,
    decimals: int | None,
) -> bytes:
    parts: list[str] = []
    for name, col in zip(POSTURE_FLOAT_FIELDS, floats, strict=True):
        value = float(col[i])
        if not np.isfinite(value):
            continue
        scaled = value * 10.0**decimals if decimals is not None else math.inf
        if abs(scaled) < _EXACT_LIMIT:
            q = round(scaled)
            parts.append(f"{name}={q}e-{decimals}" if decimals else f"{name}={q}")
        else:
            rounded = value if decimals is None else round(value, decimals)
            parts.append(f"{name}={rounded!r}")
    parts.extend(
        f"{name}={col[i]}i" for name, col in zip(POSTURE_INT_FIELDS, ints, strict=True)
    )
    return prefix + f"{','.join(parts)} {stamps[i]}".encode()
