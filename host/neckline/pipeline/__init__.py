"""The host pipeline: link records -> decode -> sequence -> align -> filter -> detect -> store.

docs/pipeline.md describes it. The pieces:

| module | job |
|---|---|
| `driver.py` | `Pipeline`: records in steps; clocks, spool, state committed in order |
| `device.py` | `DeviceState`: one wearer's stages and the ordering of its samples |
| `held.py` | the samples waiting for their turn in device order, persisted |
| `points.py` | exposure, episode, event and link points |
| `statefile.py` | the atomic, owner-only JSON state file |
| `settings.py` | `PipelineSettings` |
"""

from neckline.pipeline.device import DeviceState, DeviceStats, StepOutput
from neckline.pipeline.driver import BatchSink, Pipeline, PipelineStats, wall_ms
from neckline.pipeline.settings import PipelineSettings
from neckline.pipeline.statefile import StateFile, write_json_atomic

__all__ = [
    "BatchSink",
    "DeviceState",
    "DeviceStats",
    "Pipeline",
    "PipelineSettings",
    "PipelineStats",
    "StateFile",
    "StepOutput",
    "wall_ms",
    "write_json_atomic",
]
