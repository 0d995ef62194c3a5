"""Pin maps of the reference boards, and the optional board.json override.

docs/firmware.md has the wiring. A board is a dict of pins and a few board constants; load()
picks one from the platform (os.uname().machine names the chip on the esp32 port) and applies
board.json, a small file next to settings.json:

    {"board": "xiao_esp32s3", "pins": {"button": 2, "motor": 4}, "cpu_hz": 80000000,
     "ring_capacity": 6000}

Pins not named keep the board's value; -1 means "not fitted". ring_capacity sizes the raw
sample ring (7 bytes a sample; 6000 = 10 minutes at 10 Hz); watchdog_s > 0 arms machine.WDT with
that timeout (fed every second by the app; off by default). Values out of range are reported and
ignored. The override lives in its own file because settings.json only keeps the keys it knows
(a SET_CONFIG rewrites it).
"""

import json
import sys

try:
    import os
except ImportError:  # pragma: no cover
    os = None

# i2c_id and the pins are machine.I2C / machine.Pin numbers (GPIO numbers on the ESP32s).
BOARDS = {
    # Seeed Studio XIAO ESP32C3: D4/D5 for I2C, D1 (GPIO3, ADC1) for the battery divider, D2 for
    # the button, D3 for the motor transistor; D0 (GPIO2) is a strapping pin and stays free.
    # Runs at 80 MHz to save power.
    "xiao_esp32c3": {
        "i2c_id": 0, "sda": 6, "scl": 7, "i2c_hz": 400000,
        "button": 4, "motor": 5, "battery_adc": 3, "cpu_hz": 80000000,
        "hardware": "xiao-esp32c3", "ring_capacity": 6000,
    },
    # Seeed Studio XIAO ESP32S3 (no PSRAM needed): D4/D5 for I2C, D0 (GPIO1, ADC1) for the
    # battery, D1 for the button, D3 for the motor (D2 is GPIO3, a strapping pin, left free).
    "xiao_esp32s3": {
        "i2c_id": 0, "sda": 5, "scl": 6, "i2c_hz": 400000,
        "button": 2, "motor": 4, "battery_adc": 1, "cpu_hz": 80000000,
        "hardware": "xiao-esp32s3", "ring_capacity": 6000,
    },
    # The unix port with firmware/sim: machine.sim_bus(0) carries the simulated IMU.
    "sim": {
        "i2c_id": 0, "sda": 0, "scl": 1, "i2c_hz": 400000,
        "button": 9, "motor": 10, "battery_adc": 2, "cpu_hz": 0,
        "hardware": "sim", "ring_capacity": 6000,
    },
}
PIN_NAMES = ("sda", "scl", "button", "motor", "battery_adc")


def detect():
    """Name of the reference board this firmware is running on."""
    if sys.platform == "esp32" and os is not None and hasattr(os, "uname"):
        m = os.uname().machine.upper()
        if "ESP32S3" in m:
            return "xiao_esp32s3"
        return "xiao_esp32c3"
    return "sim"


def load(path="board.json"):
    """(board dict, report): the detected board with board.json applied; never raises."""
    name = detect()
    report = ""
    doc = {}
    try:
        with open(path) as f:
            doc = json.loads(f.read())
        if type(doc) is not dict:
            doc = {}
            report = path + ": not a JSON object; ignored"
    except OSError:
        pass  # no override: the normal case
    except ValueError:
        report = path + ": corrupt JSON; ignored"
    want = doc.get("board", name)
    if want not in BOARDS:
        report = path + ": unknown board %r; %s used" % (want, name)
        want = name
    board = dict(BOARDS[want])
    board["name"] = want
    bad = []
    pins = doc.get("pins", {})
    if type(pins) is dict:
        for key in pins:
            v = pins[key]
            if key in PIN_NAMES and type(v) is int and -1 <= v <= 63:
                board[key] = v
            else:
                bad.append(key)
    for key, lo, hi in (("cpu_hz", 0, 240000000), ("i2c_hz", 10000, 1000000), ("i2c_id", 0, 1),
                        ("ring_capacity", 600, 60000), ("watchdog_s", 0, 120)):
        v = doc.get(key)
        if v is None:
            continue
        if type(v) is int and lo <= v <= hi:
            board[key] = v
        else:
            bad.append(key)
    if bad:
        report = path + ": ignored " + ", ".join(bad)
    return board, report
