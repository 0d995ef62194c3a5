"""Virtual wearers: the real firmware on the MicroPython unix port behind the virtual BlueZ.

Shared by `neckline sim`, the end-to-end test fixtures and bench/e2e.py (docs/vble.md):

| module | job |
|---|---|
| `traces.py` | a wearer's IMU trace (and ground truth) from the `neckline.sim` models |
| `wearer.py` | `VirtualWearer`: one MicroPython process running firmware/main.py |
| `stack.py` | `SimStack`: the virtual BlueZ plus N wearers, pairing, stopping it all |
"""

from neckline.vsim.stack import SimStack, SimStackError, wearer_address
from neckline.vsim.traces import TraceTruth, device_settings, write_wearer_trace
from neckline.vsim.wearer import VirtualWearer, WearerError, WearerOptions

__all__ = [
    "SimStack",
    "SimStackError",
    "TraceTruth",
    "VirtualWearer",
    "WearerError",
    "WearerOptions",
    "device_settings",
    "wearer_address",
    "write_wearer_trace",
]
