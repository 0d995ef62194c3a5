"""Simulated wearers, IMU data and headache diaries for tests, demos, benchmarks and studies.

The layers, coarse to fine:
- `generate_schedule`: a person's days as activity segments with target posture (seeded);
- `schedule_exposure`: exact per-minute strain exposure straight from the schedule (fast);
- `render`: 100 Hz ground-truth head orientation, chunk by chunk;
- `ImuModel`: what an MPU-6050 on the back of the neck reports for that motion;
- `simulate_headaches` / `simulate_person`: a diary whose hazard may depend on strain.

docs/simulation.md gives the frames, formulas and file formats.
"""

from neckline.sim.activities import Activity
from neckline.sim.exposure import (
    DailyExposure,
    MinuteExposure,
    StrainParams,
    daily,
    schedule_bouts,
    schedule_exposure,
    strain_window_hours,
    trace_exposure,
)
from neckline.sim.headache import (
    HEADACHE_TYPES,
    Diary,
    HeadacheConfig,
    add_prodrome,
    simulate_headaches,
)
from neckline.sim.person import PersonData, simulate_person
from neckline.sim.render import RenderConfig, TraceChunk, render
from neckline.sim.schedule import Schedule
from neckline.sim.sensor import ImuModel, ImuSamples, SensorConfig, mount_quaternion
from neckline.sim.wearer import WearerConfig, generate_schedule

__all__ = [
    "HEADACHE_TYPES",
    "Activity",
    "DailyExposure",
    "Diary",
    "HeadacheConfig",
    "ImuModel",
    "ImuSamples",
    "MinuteExposure",
    "PersonData",
    "RenderConfig",
    "Schedule",
    "SensorConfig",
    "StrainParams",
    "TraceChunk",
    "WearerConfig",
    "add_prodrome",
    "daily",
    "generate_schedule",
    "mount_quaternion",
    "render",
    "schedule_bouts",
    "schedule_exposure",
    "simulate_headaches",
    "simulate_person",
    "strain_window_hours",
    "trace_exposure",
]
