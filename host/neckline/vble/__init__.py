"""A virtual BlueZ for running the unmodified bleak against virtual BLE devices.

`python -m neckline.vble serve` owns `org.bluez` on a private dbus-daemon and serves the
Adapter1, Device1 and GATT objects bleak uses; virtual devices (the MicroPython firmware on its
`bluetooth` shim, or a Python fake) join over the TCP bridge and register their GATT table,
which becomes the objects bleak discovers. docs/vble.md describes the whole arrangement.
"""

from neckline.vble.client import VBleClient, VBleControlError
from neckline.vble.launcher import VBleProcess, VBleStartError, running_vble, start_vble

__all__ = [
    "VBleClient",
    "VBleControlError",
    "VBleProcess",
    "VBleStartError",
    "running_vble",
    "start_vble",
]
