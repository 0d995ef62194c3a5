"""Simulated wearer to simulated sensor in one call: the stream firmware tests replay."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime

from neckline.sim.render import RenderConfig, TraceChunk, render
from neckline.sim.sensor import ImuModel, ImuSamples, SensorConfig
from neckline.sim.timebase import DEFAULT_START
from neckline.sim.wearer import WearerConfig, generate_schedule


def simulate_imu(
    seed: int,
    start: datetime = DEFAULT_START,
    duration_s: float = 3600.0,
    render_config: RenderConfig | None = None,
    sensor_config: SensorConfig | None = None,
    wearer_config: WearerConfig | None = None,
) -> Iterator[tuple[TraceChunk, ImuSamples]]:
    """Ground truth and sensor output, chunk by chunk; the sensor follows the render rate."""
    rcfg = render_config or RenderConfig()
    scfg = replace(sensor_config or SensorConfig(), rate_hz=rcfg.rate_hz)
    schedule = generate_schedule(seed, start, duration_s, wearer_config)
    imu = ImuModel(seed, scfg)
    for chunk in render(schedule, seed, rcfg):
        yield chunk, imu.process_chunk(chunk)
