"""Heap the virtual device needs before the app allocates anything (MicroPython only).

Imports exactly what `firmware/main.py` loads on the unix port (the clock shim, asyncio, the
machine / bluetooth / IMU simulation, every firmware module, the IMU driver), collects, and
prints "BASELINE <bytes>". test_app.py gives the 30-minute run this much heap plus what a board
leaves for the application's own objects: on a board the code is frozen into flash and none of
the simulation exists.
"""

import gc

import vclock

vclock.install(0)

import asyncio  # noqa: E402

vclock.install_asyncio()

import json  # noqa: E402, F401
import select  # noqa: E402, F401

import bluetooth  # noqa: E402, F401
import imu_regs  # noqa: E402, F401
import imu_trace  # noqa: E402, F401
import vdevice  # noqa: E402, F401
from wearable import app, imu_mpu6050  # noqa: E402, F401


async def _idle():
    await asyncio.sleep_ms(1)


asyncio.run(_idle())  # the loop's own objects
gc.collect()
print("BASELINE", gc.mem_alloc())
