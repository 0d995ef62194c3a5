"""The two strain implementations behind one interface, for tests that must hold for both.

`host` is neckline.strain; `firmware` is firmware/wearable/strain.py + minute_log.py imported
under CPython and driven by tests/firmware/strain_trace.py exactly as the main loop drives them.
Both return an Outcome with plain lists, so a test can compare them or check hand-made values.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from neckline.strain import Direction, StrainResult, detect
from neckline.strain_config import StrainConfig
from tests.firmware.mp import FIRMWARE

Row = tuple[int, int, int, int, int]  # t_ms, period_ms, flexion_cdeg, lateral_cdeg, flags


@dataclass(frozen=True)
class Outcome:
    # (direction, start_ms, end_ms, peak in the direction's value: flexion, -flexion, |lateral|)
    episodes: list[tuple[int, int, int, int]]
    starts: list[tuple[int, int]]  # (direction, start_ms) of every confirmed episode, sorted
    in_strain: list[int]
    # (start_s, wear_s, mean_flexion_cdeg, max_flexion_cdeg, strain_s, episodes)
    minutes: list[tuple[int, int, int, int, int, int]]


def _import_firmware(name: str) -> ModuleType:
    path = str(FIRMWARE)
    sys.path.insert(0, path)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(path)


strain_trace = _import_firmware("tests.firmware.strain_trace")
firmware_strain = _import_firmware("wearable.strain")
firmware_proto = _import_firmware("wearable.proto")


def firmware_outcome(config: StrainConfig, rows: Sequence[Row]) -> Outcome:
    return outcome_of_run(strain_trace.run(config.values_by_key(), list(rows)))


def outcome_of_run(out: dict[str, Any]) -> Outcome:
    """The Outcome of strain_trace.run()'s result (or of its JSON from another interpreter)."""
    return Outcome(
        episodes=sorted((e[0], e[1], e[2], e[3]) for e in out["episodes"]),
        starts=sorted((s[0], s[1]) for s in out["starts"]),
        in_strain=[int(c) for c in out["in_strain"]],
        minutes=[(r[0], r[2], r[3], r[4], r[5], r[6]) for r in out["records"]],
    )


def host_view(result: StrainResult) -> Outcome:
    eps = []
    for e in result.episodes:
        peak = -e.peak_cdeg if e.direction == Direction.EXTENSION else e.peak_cdeg
        eps.append((int(e.direction), e.start_ms, e.end_ms, peak))
    m = result.minutes
    minutes = list(
        zip(
            (m.minute * 60).tolist(), m.wear_s.tolist(), m.mean_flexion_cdeg.tolist(),
            m.flexion_max_cdeg.tolist(), m.strain_s.tolist(), m.episodes.tolist(), strict=True,
        )
    )
    return Outcome(
        episodes=sorted(eps),
        starts=sorted((int(d), s) for d, s in result.started),
        in_strain=result.in_strain.astype(int).tolist(),
        minutes=minutes,
    )


def host_result(config: StrainConfig, rows: Sequence[Row]) -> StrainResult:
    cols = list(zip(*rows, strict=True)) if rows else [(), (), (), (), ()]
    return detect(*cols, config=config)


def host_outcome(config: StrainConfig, rows: Sequence[Row]) -> Outcome:
    return host_view(host_result(config, rows))


IMPLEMENTATIONS: dict[str, Callable[[StrainConfig, Sequence[Row]], Outcome]] = {
    "host": host_outcome,
    "firmware": firmware_outcome,
}
