"""Posture sample traces for the strain tests (CPython only; numpy).

A trace is a list of segments, each a stretch of samples around a level: slow drift, bouts above
a threshold, dips that stay inside the hysteresis band or fall below it briefly, noise right at a
threshold, gaps, not-worn and uncalibrated stretches, period changes and jitter. The same rows go
to the firmware (under MicroPython and CPython) and to the host detector.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

CAL = 0x01
NOT_WORN = 0x02
HIGH_MOTION = 0x04
ROT_UNREL = 0x10
NO_VALUE = -32768

# Flag sets a segment can carry; the first is the ordinary worn, calibrated case.
FLAG_KINDS = (
    CAL | ROT_UNREL,
    CAL | ROT_UNREL | HIGH_MOTION,
    CAL | NOT_WORN | ROT_UNREL,
    ROT_UNREL,  # not calibrated: no angles
    NOT_WORN | ROT_UNREL,
)


@dataclass(frozen=True)
class Segment:
    samples: int
    flex: int  # level, cdeg
    lateral: int
    noise: int  # uniform +-noise cdeg
    drift: int  # total change over the segment, cdeg
    flag_kind: int = 0
    gap_ms: int = 0  # extra time before the segment's first sample (0: none)
    period_ms: int = 100
    jitter_ms: int = 0  # +- on each sample spacing (kept positive)


@dataclass(frozen=True)
class Trace:
    t: np.ndarray
    period: np.ndarray
    flex: np.ndarray
    lateral: np.ndarray
    flags: np.ndarray

    def rows(self) -> list[tuple[int, int, int, int, int]]:
        return list(
            zip(
                self.t.tolist(), self.period.tolist(), self.flex.tolist(),
                self.lateral.tolist(), self.flags.tolist(), strict=True,
            )
        )

    def __len__(self) -> int:
        return int(self.t.shape[0])


def build(segments: list[Segment], seed: int, t0: int = 1_000_000) -> Trace:
    rng = np.random.default_rng(seed)
    ts: list[np.ndarray] = []
    ps: list[np.ndarray] = []
    fs: list[np.ndarray] = []
    ls: list[np.ndarray] = []
    gs: list[np.ndarray] = []
    t = t0
    first = True
    for seg in segments:
        n = seg.samples
        if n <= 0:
            continue
        step = np.full(n, seg.period_ms, np.int64)
        if seg.jitter_ms:
            step += rng.integers(-seg.jitter_ms, seg.jitter_ms + 1, n)
            step = np.maximum(step, 1)
        step[0] = 0 if first else step[0] + seg.gap_ms
        times = t + np.cumsum(step)
        t = int(times[-1])
        ramp = np.linspace(0, seg.drift, n) if n > 1 else np.zeros(1)
        flex = seg.flex + ramp + rng.integers(-seg.noise, seg.noise + 1, n)
        lat = seg.lateral + ramp / 2 + rng.integers(-seg.noise, seg.noise + 1, n)
        flags = np.full(n, FLAG_KINDS[seg.flag_kind], np.int64)
        flex = np.clip(np.rint(flex), -32767, 32767).astype(np.int64)
        lat = np.clip(np.rint(lat), -32767, 32767).astype(np.int64)
        if not FLAG_KINDS[seg.flag_kind] & CAL:
            flex[:] = NO_VALUE
            lat[:] = NO_VALUE
        ts.append(times)
        ps.append(np.full(n, seg.period_ms, np.int64))
        fs.append(flex)
        ls.append(lat)
        gs.append(flags)
        first = False
    if not ts:
        z = np.zeros(0, np.int64)
        return Trace(z, z, z, z, z)
    return Trace(*(np.concatenate(a) for a in (ts, ps, fs, ls, gs)))


def random_segments(rng: np.random.Generator, count: int, thr: int = 2500, hyst: int = 500,
                    ext: int = -1500, lat: int = 2000, period_ms: int = 100) -> list[Segment]:
    """Segments that stress the boundaries of the given thresholds."""
    levels = [
        thr + 300, thr + 1500, thr + 20, thr, thr - hyst // 2, thr - hyst, thr - hyst - 30,
        0, 800, ext - 400, ext + 30, ext, -lat - 300, lat + 300,
    ]
    out = []
    for _ in range(count):
        kind = int(rng.choice(5, p=[0.8, 0.08, 0.06, 0.03, 0.03]))
        level = int(rng.choice(levels))
        lateral = int(rng.choice([0, 500, lat + 200, -lat - 200, lat]))
        gap = 0
        r = rng.random()
        if r < 0.05:
            gap = int(rng.integers(2 * period_ms, 200_000))
        elif r < 0.1:
            gap = period_ms  # exactly one missing sample: not a gap
        out.append(
            Segment(
                samples=int(rng.integers(1, 120)),
                flex=level,
                lateral=lateral,
                noise=int(rng.choice([0, 0, 50, 300])),
                drift=int(rng.choice([0, 0, 400, -400])),
                flag_kind=kind,
                gap_ms=gap,
                period_ms=int(rng.choice([period_ms, period_ms, period_ms, 1000, 40])),
                jitter_ms=int(rng.choice([0, 0, 3])),
            )
        )
    return out


def write_trace(path: Path, values: list[int], trace: Trace) -> None:
    """The text format strain_trace.py reads: config values (keys 1..11), then one row a line."""
    lines = [" ".join(str(v) for v in values[1:])]
    lines += [" ".join(str(x) for x in row) for row in trace.rows()]
    path.write_text("\n".join(lines) + "\n")
