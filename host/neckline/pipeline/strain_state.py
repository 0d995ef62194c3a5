"""Save and restore a StrainDetector between runs of the host service.

neckline.strain keeps the detector's state between chunks in plain attributes (per-direction
machines, the samples whose classification is still open, the minutes not yet final) but has no
serialisation of its own yet, so it lives here, next to its only user. `restore` of `save` gives a
detector whose further output is identical to the original's (tests/host/test_pipeline_units.py
checks it), which is what a restart needs: an episode or a minute in progress at shutdown
continues after the restart instead of being cut.

Everything is integers, so the round trip is exact. The arrays of not-yet-settled samples (up
to a hold time of samples) are stored packed, base64 of their little-endian bytes, because the
service saves this state every processing step.
"""

from __future__ import annotations

import base64
from dataclasses import asdict
from typing import Any

import numpy as np
import numpy.typing as npt

from neckline.strain import MINUTE_MS, StrainDetector, _Buffer, _DirState
from neckline.strain_config import StrainConfig

STATE_VERSION = 1


def _pack(values: npt.NDArray[Any], dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(values, dtype=dtype).tobytes()).decode("ascii")


def _unpack(text: str, dtype: str) -> npt.NDArray[Any]:
    return np.frombuffer(base64.b64decode(text), dtype=dtype).copy()


def save(det: StrainDetector) -> dict[str, Any]:
    buf = det._buffer
    return {
        "version": STATE_VERSION,
        "states": [asdict(st) for st in det._states],
        "buffer": {
            "t": _pack(buf.t, "<i8"), "p": _pack(buf.p, "<i8"), "flex": _pack(buf.flex, "<i8"),
            "ok": _pack(buf.ok, "u1"), "cls": [_pack(c, "i1") for c in buf.cls],
        },
        "open": [[minute, row.tolist()] for minute, row in sorted(det._open.items())],
        "have_last": det._have_last,
        "last_t": det._last_t,
        "last_p": det._last_p,
        "last_boot": det._last_boot,
        "last_emitted": det._last_emitted,
        "reopened_minutes": det.reopened_minutes,
    }


def restore(state: dict[str, Any], config: StrainConfig, min_wear_s: int) -> StrainDetector:
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"strain state version {state.get('version')!r} is not supported")
    det = StrainDetector(config, min_wear_s)
    det._states = [_DirState(**{k: int(v) for k, v in st.items()}) for st in state["states"]]
    b = state["buffer"]
    det._buffer = _Buffer(
        _unpack(b["t"], "<i8").astype(np.int64),
        _unpack(b["p"], "<i8").astype(np.int64),
        _unpack(b["flex"], "<i8").astype(np.int64),
        _unpack(b["ok"], "u1").astype(np.bool_),
        [_unpack(c, "i1").astype(np.int8) for c in b["cls"]],
    )
    det._open = {int(m): np.asarray(row, np.int64) for m, row in state["open"]}
    det._have_last = bool(state["have_last"])
    det._last_t = int(state["last_t"])
    det._last_p = int(state["last_p"])
    det._last_boot = None if state["last_boot"] is None else int(state["last_boot"])
    det._last_emitted = None if state["last_emitted"] is None else int(state["last_emitted"])
    det.reopened_minutes = int(state["reopened_minutes"])
    return det


def may_report(det: StrainDetector, minute: int) -> bool:
    """Whether the detector may still emit an exposure row for epoch minute `minute`: it has
    sums for it, or samples whose classification is still open touch it."""
    if minute in det._open:
        return True
    buf = det._buffer
    if not len(buf):
        return False
    first = int(buf.t[0]) // MINUTE_MS
    last = int(buf.t[-1] + buf.p[-1] - 1) // MINUTE_MS
    return first <= minute <= last
