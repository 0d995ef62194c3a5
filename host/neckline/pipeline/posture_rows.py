"""Posture rows to line protocol, fast also when angles are missing.

`neckline.store.encode_posture` formats every row with one `bytes % tuple` when all five angles
have a value, and falls back to a per-row path (about ten times slower) for rows where one is
missing. The pipeline has many such rows: every sample taken off the neck or before calibration
has no filtered angles, which is most of a night. This module gives the same bytes, line for line
(tests/host/test_pipeline_units.py compares them), by grouping the rows by which angles they have
and formatting each group in one pass; rows the store's encoder treats specially (values too
large for the scaled-integer form) are handed to it unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neckline.store.errors import LineProtocolError
from neckline.store.lineproto import TIME_MS_MAX, TIME_MS_MIN, LineBatch, escape_tag_value
from neckline.store.posture_lines import encode_posture
from neckline.store.schema import POSTURE, POSTURE_FLOAT_FIELDS, POSTURE_INT_FIELDS, destination

_EXACT_LIMIT = float(2**53)  # as in the store: larger scaled values are not exact integers


def encode_rows(device: str, cols: dict[str, Any], decimals: int | None = 4) -> LineBatch | None:
    """encode_posture(device, **cols, decimals=decimals), grouped by missing angles."""
    n = int(np.asarray(cols["time_ms"]).shape[0])
    if n == 0:
        return None
    floats = np.stack([np.broadcast_to(np.asarray(cols[f], np.float64), (n,))
                       for f in POSTURE_FLOAT_FIELDS])
    finite = np.isfinite(floats)
    if decimals is None or bool(finite.all()):
        return encode_posture(device, decimals=decimals, **cols)
    # The store's encoder checks the columns (types, shapes); let it, on the first row, so a bad
    # column fails the same way here. The time range is checked for every row.
    encode_posture(device, decimals=decimals,
                   **{k: np.asarray(v)[:1] if np.ndim(v) else v for k, v in cols.items()})
    stamps = np.asarray(cols["time_ms"]).astype(np.int64)
    if int(stamps.min()) < TIME_MS_MIN or int(stamps.max()) > TIME_MS_MAX:
        raise LineProtocolError("a posture timestamp is outside InfluxDB's time range")
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = np.rint(floats * (10.0**decimals))
    exact = finite & (np.abs(np.where(finite, scaled, 0.0)) < _EXACT_LIMIT)
    odd = (finite & ~exact).any(axis=0)  # the store's own path formats these
    pattern = (exact.astype(np.int64) * (1 << np.arange(len(POSTURE_FLOAT_FIELDS)))[:, None]
               ).sum(axis=0)
    ints = [np.broadcast_to(np.asarray(cols[f]).astype(np.int64), (n,))
            for f in POSTURE_INT_FIELDS]
    prefix = f"{POSTURE},device={escape_tag_value(device)} ".encode()
    float_fmt = b"%de-" + str(decimals).encode() if decimals else b"%d"
    int_part = [name.encode() + b"=%di" for name in POSTURE_INT_FIELDS]
    lines: list[bytes] = [b""] * n
    for p in np.unique(pattern[~odd]).tolist():
        rows = np.flatnonzero((pattern == p) & ~odd)
        present = [k for k in range(len(POSTURE_FLOAT_FIELDS)) if p >> k & 1]
        fmt = prefix + b",".join(
            [POSTURE_FLOAT_FIELDS[k].encode() + b"=" + float_fmt for k in present] + int_part
        ) + b" %d"
        columns = [scaled[k, rows].astype(np.int64).tolist() for k in present]
        columns += [col[rows].tolist() for col in ints]
        columns.append(stamps[rows].tolist())
        for i, row in zip(rows.tolist(), zip(*columns, strict=True), strict=True):
            lines[i] = fmt % row
    if odd.any():
        special = np.flatnonzero(odd)
        batch = encode_posture(device, decimals=decimals, **{
            k: np.asarray(v)[special] if np.ndim(v) else v for k, v in cols.items()})
        assert batch is not None
        for i, line in zip(special.tolist(), batch.body.split(b"\n"), strict=True):
            lines[i] = line
    return LineBatch(destination(POSTURE), b"\n".join(lines), n)
