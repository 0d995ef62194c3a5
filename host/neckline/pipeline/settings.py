"""Everything the pipeline stages are configured with, in one value."""

from __future__ import annotations

from dataclasses import dataclass, field

from neckline.align import AlignConfig
from neckline.config import Config
from neckline.filters import FilterConfig
from neckline.strain_config import StrainConfig


@dataclass(frozen=True)
class PipelineSettings:
    strain: StrainConfig = field(default_factory=StrainConfig)
    min_wear_s: int = 30
    filters: FilterConfig = field(default_factory=FilterConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    # Ordering: wait this long (host time while data flows) for a missing range before passing
    # it; or as soon as this many samples wait behind it.
    hole_wait_ms: int = 600_000
    max_held_samples: int = 200_000
    # Events and summary records whose clock is not known yet wait at most this long.
    pending_ttl_ms: int = 6 * 3_600_000
    max_pending_events: int = 1_000
    max_pending_summaries: int = 20_000
    max_covered_intervals: int = 4_096  # runs of minutes with host exposure remembered
    summaries: bool = True  # ask the device for its summary records
    fsync: bool = True  # fdatasync the state file (with the spool's fsync-every-batch policy)
    decimals: int | None = 4  # posture angles in line protocol (see store/posture_lines.py)

    def __post_init__(self) -> None:
        if self.hole_wait_ms < 0 or self.max_held_samples < 1 or self.pending_ttl_ms < 0:
            raise ValueError("hole_wait_ms and pending_ttl_ms must be >= 0, "
                             "max_held_samples >= 1")

    @classmethod
    def from_config(cls, cfg: Config) -> PipelineSettings:
        f = cfg.filters
        return cls(
            strain=cfg.strain,
            min_wear_s=cfg.min_wear_s,
            filters=FilterConfig(
                cutoff_hz=f.cutoff_hz, order=f.order, spike_window=f.spike_window,
                spike_sigma=f.spike_sigma, spike_min_deg=f.spike_min_deg,
                max_gap_factor=f.max_gap_factor,
            ),
            hole_wait_ms=round(cfg.pipeline.hole_wait_s * 1000),
            max_held_samples=cfg.pipeline.max_held_samples,
            fsync=cfg.store.fsync_interval_s == 0,
        )
