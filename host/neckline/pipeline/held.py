"""Samples waiting for their turn: ordered by the device's sample counter, kept until released.

The pipeline releases samples to filtering, strain detection and storage strictly in `useq`
order (docs/pipeline.md). Fresh samples that arrive ahead of a missing range, or whose clock
placement is still PENDING, wait here. The buffer is part of the persisted device state: the
sequence tracker has already counted these samples as received, so after a crash they exist
nowhere else on the host.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import numpy.typing as npt

from neckline.decode import SampleArrays

HELD_DTYPE = np.dtype([
    ("useq", "<i8"), ("seq", "<u4"), ("t_ms", "<i8"), ("boot", "u1"), ("period", "<u2"),
    ("flexion", "<f4"), ("lateral", "<f4"), ("rotation", "<f4"), ("flags", "u1"),
    ("backfill", "u1"),
])
Rows = npt.NDArray[np.void]


def rows_from(samples: SampleArrays, useq: npt.NDArray[np.int64], pick: npt.NDArray[np.bool_]
              ) -> Rows:
    """The picked samples as held rows (in input order)."""
    idx = np.flatnonzero(pick)
    rows = np.empty(idx.size, HELD_DTYPE)
    rows["useq"] = useq[idx]
    rows["seq"] = samples.seq[idx]
    rows["t_ms"] = samples.t_ms[idx]
    rows["boot"] = samples.boot_id[idx]
    rows["period"] = samples.period_ms[idx]
    rows["flexion"] = samples.flexion_deg[idx]
    rows["lateral"] = samples.lateral_deg[idx]
    rows["rotation"] = samples.rotation_deg[idx]
    rows["flags"] = samples.flags[idx]
    rows["backfill"] = samples.backfill[idx]
    return rows


def sort_unique(rows: Rows) -> Rows:
    """Rows by useq, each useq once (the first occurrence wins)."""
    if rows.size < 2:
        return rows
    useq = rows["useq"]
    if bool(np.all(useq[1:] > useq[:-1])):
        return rows
    _, first = np.unique(useq, return_index=True)
    return rows[first]


def as_samples(rows: Rows) -> SampleArrays:
    """Held rows in the decoder's shape, for the aligner, filters and detector."""
    return SampleArrays(
        seq=rows["seq"].copy(),
        t_ms=rows["t_ms"].copy(),
        boot_id=rows["boot"].copy(),
        period_ms=rows["period"].copy(),
        flexion_deg=rows["flexion"].copy(),
        lateral_deg=rows["lateral"].copy(),
        rotation_deg=rows["rotation"].copy(),
        flags=rows["flags"].copy(),
        backfill=rows["backfill"].astype(np.bool_),
        packet_index=np.zeros(rows.size, np.int64),
    )


class HeldSamples:
    """Samples sorted by useq, unique."""

    def __init__(self, rows: Rows | None = None) -> None:
        self.rows: Rows = np.empty(0, HELD_DTYPE) if rows is None else sort_unique(rows)

    def __len__(self) -> int:
        return int(self.rows.size)

    @property
    def first_useq(self) -> int | None:
        return int(self.rows["useq"][0]) if self.rows.size else None

    def add(self, rows: Rows) -> None:
        if rows.size == 0:
            return
        rows = sort_unique(rows)
        held = self.rows
        if held.size == 0:
            self.rows = rows
        elif int(rows["useq"][0]) > int(held["useq"][-1]):
            self.rows = np.concatenate([held, rows])  # the usual case: new samples at the end
        else:
            self.rows = sort_unique(np.concatenate([held, rows]))

    def count_below(self, limit: int | None) -> int:
        if limit is None:
            return len(self)
        return int(np.searchsorted(self.rows["useq"], limit, side="left"))

    def pop_front(self, n: int) -> Rows:
        head, self.rows = self.rows[:n], self.rows[n:]
        return head

    # --- persistence -------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        data = np.ascontiguousarray(self.rows).tobytes()
        return {"rows": len(self), "data": base64.b64encode(data).decode("ascii")}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> HeldSamples:
        data = base64.b64decode(state["data"])
        rows = np.frombuffer(data, dtype=HELD_DTYPE).copy()
        if rows.size != int(state["rows"]):
            raise ValueError(f"held samples: {rows.size} rows decoded, {state['rows']} expected")
        return cls(rows)
