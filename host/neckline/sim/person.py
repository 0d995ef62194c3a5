"""One simulated participant end to end: schedule, exposure and headache diary, fast path only.

This is what a validation study calls hundreds of times: no 100 Hz rendering is involved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from neckline.sim.exposure import MinuteExposure, StrainParams, schedule_exposure
from neckline.sim.headache import Diary, HeadacheConfig, add_prodrome, simulate_headaches
from neckline.sim.schedule import Schedule
from neckline.sim.timebase import DEFAULT_START
from neckline.sim.wearer import DAY_S, WearerConfig, generate_schedule


@dataclass(frozen=True)
class PersonData:
    schedule: Schedule  # including any prodrome changes
    observed: MinuteExposure  # what the device records: worn time only
    true: MinuteExposure  # the wearer's real exposure, worn or not
    diary: Diary


def simulate_person(
    seed: int,
    start: datetime = DEFAULT_START,
    days: float = 84.0,
    wearer: WearerConfig | None = None,
    headache: HeadacheConfig | None = None,
    strain: StrainParams | None = None,
    hazard_on_observed: bool = False,
) -> PersonData:
    """Simulate person `seed` for `days` days from `start`.

    The headache hazard reacts to the true strain (the body does not care whether the device
    was worn) unless `hazard_on_observed` is set.
    """
    hcfg = headache or HeadacheConfig()
    prm = strain or StrainParams()
    schedule = generate_schedule(seed, start, days * DAY_S, wearer)
    observed = schedule_exposure(schedule, prm, worn_only=True)
    true = schedule_exposure(schedule, prm, worn_only=False)
    driver = observed if hazard_on_observed else true
    n_minutes = math.ceil(schedule.duration_s / 60.0)
    diary = simulate_headaches(seed, schedule.start, n_minutes, hcfg, driver.strain_s)
    if hcfg.prodrome:
        schedule = add_prodrome(schedule, diary, hcfg)
        observed = schedule_exposure(schedule, prm, worn_only=True)
        true = schedule_exposure(schedule, prm, worn_only=False)
    return PersonData(schedule=schedule, observed=observed, true=true, diary=diary)
