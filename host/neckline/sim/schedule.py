"""The segment-level schedule: contiguous activity segments with their target posture.

Within a segment the target flexion moves linearly (`flexion` at the segment start plus `drift`
degrees per second); lateral bend and axial rotation targets are constant. This is the coarse
resolution: exposure can be computed from it exactly and fast, and `render` turns it into
100 Hz orientation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from numpy.typing import ArrayLike, NDArray

from neckline.sim.timebase import require_minute

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Schedule:
    """Segments i span [edges[i], edges[i+1]) seconds after `start` (a whole UTC minute)."""

    start: datetime
    edges: FloatArray
    activity: NDArray[np.int8]
    worn: NDArray[np.bool_]
    flexion: FloatArray  # degrees at the segment start, positive forward
    drift: FloatArray  # degrees per second
    lateral: FloatArray  # degrees, positive toward the right shoulder
    axial: FloatArray  # degrees, positive turning left

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", require_minute(self.start))
        edges = np.asarray(self.edges, dtype=np.float64)
        object.__setattr__(self, "edges", edges)
        n = edges.size - 1
        if n < 1:
            raise ValueError("a schedule needs at least one segment")
        if edges[0] != 0.0:
            raise ValueError("the first segment must start at 0 s")
        if not np.all(np.diff(edges) > 0):
            raise ValueError("segment edges must increase strictly")
        columns: dict[str, type[np.generic]] = {
            "activity": np.int8,
            "worn": np.bool_,
            "flexion": np.float64,
            "drift": np.float64,
            "lateral": np.float64,
            "axial": np.float64,
        }
        for name, dtype in columns.items():
            col: NDArray[np.generic] = np.asarray(getattr(self, name), dtype=dtype)
            if col.shape != (n,):
                raise ValueError(f"{name} has shape {col.shape}, expected ({n},)")
            object.__setattr__(self, name, col)

    @classmethod
    def from_rows(
        cls,
        start: datetime,
        rows: Sequence[tuple[float, int, bool, float, float, float, float]],
    ) -> Schedule:
        """Rows of (duration_s, activity, worn, flexion, drift_deg_per_s, lateral, axial)."""
        data = np.array([[float(x) for x in r] for r in rows], dtype=np.float64).reshape(-1, 7)
        edges = np.concatenate(([0.0], np.cumsum(data[:, 0])))
        return cls(
            start=start,
            edges=edges,
            activity=data[:, 1].astype(np.int8),
            worn=data[:, 2].astype(bool),
            flexion=data[:, 3],
            drift=data[:, 4],
            lateral=data[:, 5],
            axial=data[:, 6],
        )

    def __len__(self) -> int:
        return int(self.edges.size - 1)

    @property
    def t0(self) -> FloatArray:
        return self.edges[:-1]

    @property
    def t1(self) -> FloatArray:
        return self.edges[1:]

    @property
    def duration_s(self) -> float:
        return float(self.edges[-1])

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.duration_s)

    def flexion_end(self) -> FloatArray:
        """Target flexion at each segment's end."""
        return self.flexion + self.drift * (self.t1 - self.t0)

    def segment_at(self, t: ArrayLike) -> NDArray[np.intp]:
        """Index of the segment holding each time (clamped to the first and last segment)."""
        idx = np.searchsorted(self.edges, np.asarray(t, dtype=np.float64), side="right") - 1
        return np.clip(idx, 0, len(self) - 1)

    def flexion_at(self, t: ArrayLike) -> FloatArray:
        times = np.asarray(t, dtype=np.float64)
        seg = self.segment_at(times)
        return self.flexion[seg] + self.drift[seg] * (times - self.t0[seg])

    def take(self, index: NDArray[np.intp], edges: FloatArray) -> Schedule:
        """A schedule with new edges whose segment i copies segment index[i] (flexion re-based)."""
        return Schedule(
            start=self.start,
            edges=edges,
            activity=self.activity[index],
            worn=self.worn[index],
            flexion=self.flexion[index] + self.drift[index] * (edges[:-1] - self.t0[index]),
            drift=self.drift[index],
            lateral=self.lateral[index],
            axial=self.axial[index],
        )

    def split(self, times: ArrayLike) -> Schedule:
        """The same schedule with extra segment boundaries at `times` (inside the span)."""
        cuts = np.asarray(times, dtype=np.float64).ravel()
        cuts = cuts[(cuts > 0) & (cuts < self.duration_s)]
        edges = np.union1d(self.edges, cuts)
        if edges.size == self.edges.size:
            return self
        return self.take(self.segment_at(edges[:-1]), edges)

    def crop(self, begin_s: float, end_s: float) -> Schedule:
        """The part in [begin_s, end_s), re-based to start at 0; begin_s must be whole minutes."""
        if begin_s % 60 != 0:
            raise ValueError("crop must begin on a whole minute")
        end_s = min(end_s, self.duration_s)
        if not 0 <= begin_s < end_s:
            raise ValueError("crop span is empty")
        cut = self.split([begin_s, end_s])
        idx = np.flatnonzero((cut.t0 >= begin_s) & (cut.t1 <= end_s))
        return Schedule(
            start=self.start + timedelta(seconds=begin_s),
            edges=np.concatenate((cut.t0[idx], cut.t1[idx[-1:]])) - begin_s,
            activity=cut.activity[idx],
            worn=cut.worn[idx],
            flexion=cut.flexion[idx],
            drift=cut.drift[idx],
            lateral=cut.lateral[idx],
            axial=cut.axial[idx],
        )


def concatenate(parts: Sequence[Schedule]) -> Schedule:
    """Schedules placed one after another, starting at the first one's start."""
    if not parts:
        raise ValueError("nothing to concatenate")
    offsets = np.cumsum([0.0] + [p.duration_s for p in parts[:-1]])
    edges = np.concatenate(
        [[0.0]] + [p.edges[1:] + off for p, off in zip(parts, offsets, strict=True)]
    )
    return Schedule(
        start=parts[0].start,
        edges=edges,
        activity=np.concatenate([p.activity for p in parts]),
        worn=np.concatenate([p.worn for p in parts]),
        flexion=np.concatenate([p.flexion for p in parts]),
        drift=np.concatenate([p.drift for p in parts]),
        lateral=np.concatenate([p.lateral for p in parts]),
        axial=np.concatenate([p.axial for p in parts]),
    )
