"""A tiny MicroPython peripheral for the virtual BlueZ test: the documented `bluetooth` API only.

Runs under the MicroPython unix port with firmware/sim (the `bluetooth` shim) on MICROPYPATH and
NECKLINE_VBLE_BRIDGE / NECKLINE_VBLE_ADDR in the environment. It registers one service with a
notify characteristic and a writable one, advertises the service UUID with its name in the scan
response, and while a central is connected notifies a counter every 50 ms. It prints JSON lines:
{"ready": [handles]} once advertising, {"write": "<hex>"} for every write it receives.
"""

import asyncio
import json
import struct
import sys

import bluetooth

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)

SVC = bluetooth.UUID("6e6b00b0-8a3c-4b5e-9f1d-2c7a4e0b5d10")
COUNTER = bluetooth.UUID("6e6b00b1-8a3c-4b5e-9f1d-2c7a4e0b5d10")
INBOX = bluetooth.UUID("6e6b00b2-8a3c-4b5e-9f1d-2c7a4e0b5d10")

conns = set()


def out(obj):
    print(json.dumps(obj))
    if hasattr(sys.stdout, "flush"):
        sys.stdout.flush()


def ad(ad_type, data):
    return bytes((len(data) + 1, ad_type)) + data


ADV = ad(0x01, b"\x06") + ad(0x07, bytes(reversed(bytes.fromhex(
    "6e6b00b08a3c4b5e9f1d2c7a4e0b5d10"))))
RESP = ad(0x09, b"Neckline-MPY0")


def advertise():
    ble.gap_advertise(100000, adv_data=ADV, resp_data=RESP)


def irq(event, data):
    if event == _IRQ_CENTRAL_CONNECT:
        conns.add(data[0])
    elif event == _IRQ_CENTRAL_DISCONNECT:
        conns.discard(data[0])
        advertise()
    elif event == _IRQ_GATTS_WRITE:
        out({"write": ble.gatts_read(data[1]).hex()})


ble = bluetooth.BLE()
ble.active(True)
ble.irq(irq)
((h_counter, h_inbox),) = ble.gatts_register_services((
    (SVC, ((COUNTER, bluetooth.FLAG_READ | bluetooth.FLAG_NOTIFY),
           (INBOX, bluetooth.FLAG_WRITE))),
))
ble.gatts_write(h_counter, struct.pack("<I", 0))
advertise()


async def main():
    out({"ready": [h_counter, h_inbox]})
    n = 0
    while True:
        await asyncio.sleep_ms(50)
        for conn in list(conns):
            n += 1
            ble.gatts_notify(conn, h_counter, struct.pack("<I", n))


asyncio.run(main())
