"""Vectorised line-protocol encoding of the high-rate `posture` measurement from numpy columns.

Speed comes from formatting each line with one C-level `bytes % tuple` over zipped Python lists,
with no per-point objects. Float formatting is the slowest part of that, so by default the angles
are rounded to `decimals` (4: 0.0001 degree, far below the sensor's 0.01 degree wire resolution)
and written as a scaled integer in scientific notation, `123456e-4`: the float 12.3456 (the same
double as `float("12.3456")`), in the float syntax the line-protocol reference allows.
`decimals=None` writes the exact shortest repr instead, at about three times the cost.

Rows in which some angle is NaN/inf (no value) or too large for the integer trick take a slower
per-row path that leaves those fields out, so nothing invalid is ever written.
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
    stamps: list[int] = times.astype(np.int64).tolist()
    prefix = f"{POSTURE},device={escape_tag_value(device)} ".encode()
    stacked = np.stack(floats)
    good = np.isfinite(stacked).all(axis=0)
    if decimals is None:
        float_fmt = b"%r"
        float_cols: list[list[float]] | list[list[int]] = [c.tolist() for c in floats]
    else:
        float_fmt = b"%de-" + str(decimals).encode() if decimals else b"%d"
        with np.errstate(invalid="ignore", over="ignore"):
            scaled = np.rint(stacked * (10.0**decimals))
            good &= (np.abs(scaled) < _EXACT_LIMIT).all(axis=0)
        scaled[:, ~good] = 0.0
        float_cols = [row.astype(np.int64).tolist() for row in scaled]
    fmt = prefix + b",".join(
        [name.encode() + b"=" + float_fmt for name in POSTURE_FLOAT_FIELDS]
        + [name.encode() + b"=%di" for name in POSTURE_INT_FIELDS]
    ) + b" %d"
    lines: list[bytes] = [fmt % row for row in zip(*float_cols, *ints, stamps, strict=True)]
    if not good.all():
        for i in np.flatnonzero(~good).tolist():
            lines[i] = _slow_line(prefix, floats, ints, stamps, i, decimals)
    return LineBatch(destination(POSTURE), b"\n".join(lines), n)


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
