"""Probe for the bluetooth shim itself (firmware/sim/bluetooth.py), for test_ble.py.

Runs unchanged under MicroPython and CPython. Registers a small GATT table that exercises every
path of the shim, prints every IRQ it receives as a JSON line ({"irq": [event, field...]},
memoryview fields as {"mv": hex}), keeps secrets in a dict, and runs the shim synchronously with
_sim_pump().
Commands on stdin, one a line, each answered with one JSON line:

    read H                 gatts_read(H)
    write H HEX [1]        gatts_write(H, data[, send_update])
    notify C H [HEX]       gatts_notify
    indicate C H [HEX]     gatts_indicate
    buffer H N [1]         gatts_set_buffer(H, N[, append])
    adv N                  gap_advertise with an N-byte payload
    disconnect C           gap_disconnect(C)
    stats                  the shim's _sim_stats
    quit
"""

import binascii
import json
import select
import sys

import bluetooth

MICROPYTHON = sys.implementation.name == "micropython"
secrets = {}


def out(obj):
    print(json.dumps(obj))
    if hasattr(sys.stdout, "flush"):
        sys.stdout.flush()


def field(x):
    if isinstance(x, memoryview):
        return {"mv": binascii.hexlify(bytes(x)).decode()}
    if isinstance(x, (bytes, bytearray)):
        return {"bytes": binascii.hexlify(x).decode()}
    return x


def irq(event, data):
    out({"irq": [event] + [field(x) for x in data]})
    if event == 29:  # _IRQ_GET_SECRET
        sec_type, _index, key = data
        return secrets.get((sec_type, bytes(key) if key is not None else None))
    if event == 30:  # _IRQ_SET_SECRET
        sec_type, key, value = data
        secrets[(sec_type, bytes(key))] = None if value is None else bytes(value)
        return True
    return None


U = bluetooth.UUID
SERVICES = (
    (U(0xAAAA), (
        (U(0xA001), bluetooth.FLAG_READ | bluetooth.FLAG_WRITE),
        (U(0xA002), bluetooth.FLAG_READ | bluetooth.FLAG_NOTIFY | bluetooth.FLAG_INDICATE,
         ((U(0x2901), bluetooth.FLAG_READ),)),
        (U("6E400003-B5A3-F393-E0A9-E50E24DCCA9E"),
         bluetooth.FLAG_WRITE | bluetooth.FLAG_WRITE_NO_RESPONSE),
    )),
    (U("6e400001-b5a3-f393-e0a9-e50e24dcca9e"), (
        (U(0xB001), bluetooth.FLAG_READ | 0x0200 | bluetooth.FLAG_WRITE | 0x1000),
        (U(0xB002), bluetooth.FLAG_READ | 0x0400),
        (U(0xB003), bluetooth.FLAG_NOTIFY),
    )),
)


def command(ble, line):
    w = line.split()
    cmd = w[0]
    try:
        if cmd == "read":
            out({"read": binascii.hexlify(ble.gatts_read(int(w[1]))).decode()})
        elif cmd == "write":
            n = ble.gatts_write(int(w[1]), binascii.unhexlify(w[2]), len(w) > 3 and w[3] == "1")
            out({"written": n})
        elif cmd == "notify" or cmd == "indicate":
            data = binascii.unhexlify(w[3]) if len(w) > 3 else None
            fn = ble.gatts_notify if cmd == "notify" else ble.gatts_indicate
            out({cmd: fn(int(w[1]), int(w[2]), data)})
        elif cmd == "buffer":
            ble.gatts_set_buffer(int(w[1]), int(w[2]), len(w) > 3 and w[3] == "1")
            out({"buffer": True})
        elif cmd == "adv":
            payload = bytes([int(w[1]) - 1, 0xFF]) + bytes(int(w[1]) - 2)
            ble.gap_advertise(100000, payload, resp_data=b"")
            out({"adv": True})
        elif cmd == "disconnect":
            r = ble.gap_disconnect(int(w[1]))
            out({"disconnect_returned": r})
        elif cmd == "stats":
            out({"stats": bluetooth._sim_stats})
        elif cmd == "quit":
            return False
        else:
            out({"error": "unknown command"})
    except OSError as e:
        out({"oserror": e.args[0]})
    return True


def read_line():
    if MICROPYTHON:
        return sys.stdin.readline()
    import os

    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(0, 1)  # unbuffered: a buffered readline would hide lines from poll()
        if not chunk:
            break
        data += chunk
    return data.decode()


def main():
    ble = bluetooth.BLE()
    out({"singleton": ble is bluetooth.BLE()})
    ble.irq(irq)
    ble.active(True)
    ble.config(bond=True, le_secure=True, mitm=False, io=3)
    handles = ble.gatts_register_services(SERVICES)
    out({"handles": [list(h) for h in handles], "mac": field(ble.config("mac")[1]),
         "uuid_repr": [repr(U(0x180F)), repr(U("6E400001-B5A3-F393-E0A9-E50E24DCCA9E"))]})
    poller = select.poll()
    poller.register(sys.stdin, select.POLLIN)
    while True:
        bluetooth._sim_pump(10)
        if poller.poll(0):
            line = read_line()
            if not line or not command(ble, line):
                break
    ble.active(False)
    out({"bye": True})


main()
