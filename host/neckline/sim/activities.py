"""What the simulated wearer is doing, and how each activity moves the head.

The activity says what the person does; whether the device is on the neck is a separate flag,
so a day without the device still has a (hidden) posture that can cause headaches.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray


class Activity(IntEnum):
    SLEEP = 0
    DESK = 1
    PHONE = 2
    WALK = 3
    TALK = 4
    BREAK = 5


@dataclass(frozen=True)
class Motion:
    """How an activity moves the head around its target posture (degrees, unitless gains)."""

    wiggle_flexion: float  # standard deviation of the slow wander in flexion
    wiggle_lateral: float
    wiggle_axial: float
    bob: float  # 1 while walking: step-frequency bobbing at full strength
    nod: float  # 1 while talking: bursts of nodding


MOTION: dict[Activity, Motion] = {
    Activity.SLEEP: Motion(0.3, 0.3, 0.5, 0.0, 0.0),
    Activity.DESK: Motion(1.5, 1.2, 4.0, 0.0, 0.0),
    Activity.PHONE: Motion(2.0, 1.5, 3.0, 0.0, 0.0),
    Activity.WALK: Motion(1.5, 1.0, 8.0, 1.0, 0.0),
    Activity.TALK: Motion(2.5, 2.0, 10.0, 0.0, 1.0),
    Activity.BREAK: Motion(3.0, 2.0, 12.0, 0.0, 0.0),
}


def motion_table() -> NDArray[np.float64]:
    """Rows indexed by activity code: wiggle flexion, lateral, axial, bob, nod."""
    table = np.zeros((max(Activity) + 1, 5))
    for activity, m in MOTION.items():
        table[activity] = (m.wiggle_flexion, m.wiggle_lateral, m.wiggle_axial, m.bob, m.nod)
    return table
