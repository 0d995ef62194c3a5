"""Test device for test_ble.py: the real NecklineBLE on the bluetooth shim, in an asyncio loop.

Runs unchanged under MicroPython and CPython (firmware/sim and firmware on the path, cwd = the
device's filesystem, where the bond file lives):

    ble_device.py [event_probe_ms]

The test is the central (through the bridge named by NECKLINE_VBLE_BRIDGE) and drives the device
side through stdin, one command a line:

    stream K       send K live posture packets of samples_per_packet() samples each
    events K       queue K HEADACHE_MARKER events back to back
    battery P      set the battery level
    link C         (mtu, encrypted, authenticated, bonded) of connection C
    clear          clear_bonds()
    insecure       model a stack that does not enforce attribute permissions
    alloc K        under MicroPython: K send_posture() calls with the heap locked
    stats          print the counters
    quit           stop the radio and exit

Each command answers with one JSON line on stdout; so do control-point requests ({"request": op}).
The request handler is a small stand-in for the firmware main loop: CALIBRATE answers REFUSED and
then sends the CALIBRATION event (response first, as the protocol orders it), SET_TIME answers a
fixed anchor, REQUEST_RAW sends backfill packets before its response.
"""

import json
import select
import sys

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

import bluetooth
from wearable import proto
from wearable.ble import NecklineBLE

MICROPYTHON = sys.implementation.name == "micropython"
BOOT_ID = 7
state = {"event_seq": 0, "seq": 0, "quit": False}


def out(obj):
    print(json.dumps(obj))
    if hasattr(sys.stdout, "flush"):
        sys.stdout.flush()


def next_event_seq():
    s = state["event_seq"]
    state["event_seq"] = s + 1
    return s


def fill_samples(buf, n, backfill, seq0):
    for i in range(n):
        proto.pack_sample(buf, i, 100 * i, -50 * i, 7, proto.SF_CALIBRATED)
    return proto.pack_samples_header(buf, backfill, n, seq0, 1000 + 100 * seq0, BOOT_ID, 100)


def on_request(conn, op, operands):
    out({"request": op})
    if op == proto.OP_CALIBRATE:
        link.respond(conn, op, proto.ST_REFUSED)
        link.send_event(proto.EV_CALIBRATION, next_event_seq(), BOOT_ID, 5000, proto.CAL_MOVING,
                        proto.NO_VALUE, proto.NO_VALUE)
        return None
    if op == proto.OP_SET_TIME:
        return (proto.ST_SUCCESS, BOOT_ID, 4242)
    if op == proto.OP_GET_STATUS:
        link.update_status(BOOT_ID, 6000, state["seq"], 0, 0, 0, 3900, 80,
                           proto.STATE_CALIBRATED | proto.STATE_WORN, 100)
        return proto.ST_SUCCESS
    if op == proto.OP_SET_CONFIG:
        link.update_config(operands)
        return proto.ST_SUCCESS
    if op == proto.OP_REQUEST_RAW:
        first, last = operands
        total = ((last - first) & 0xFFFFFFFF) + 1
        sent = 0
        while sent < total:
            n = min(link.samples_per_packet(), total - sent)
            size = fill_samples(link.posture_buf, n, True, first + sent)
            if link.send_posture(size) == 0:
                break
            sent += n
        return (proto.ST_SUCCESS, sent, first)
    if op == proto.OP_REQUEST_SUMMARY:
        return proto.ST_NO_RECORDS
    return proto.ST_SUCCESS


def alloc_check(k):
    if not MICROPYTHON:
        return {"alloc": "skipped"}
    import gc

    import micropython

    ble = link._ble
    calls = [0]

    def counting_notify(conn, handle, data):
        calls[0] += 1

    # The shim itself allocates (JSON, hex); on a board gatts_notify copies into the stack's own
    # buffers. Measure the firmware's part alone.
    ble.gatts_notify = counting_notify
    size = fill_samples(link.posture_buf, link.samples_per_packet(), False, 0)
    link.send_posture(size)
    gc.collect()
    ok = True
    micropython.heap_lock()
    try:
        for _ in range(k):
            link.send_posture(size)
    except MemoryError:
        ok = False
    finally:
        micropython.heap_unlock()
        del ble.gatts_notify
    return {"alloc": "ok" if ok else "allocated", "calls": calls[0]}


def command(line):
    words = line.split()
    if not words:
        return
    cmd = words[0]
    arg = int(words[1]) if len(words) > 1 else 0
    if cmd == "stream":
        spp = link.samples_per_packet()
        sent = []
        for _ in range(arg):
            size = fill_samples(link.posture_buf, spp, False, state["seq"])
            sent.append(link.send_posture(size))
            state["seq"] += spp
        out({"streamed": sent, "spp": spp, "mtu": link.mtu()})
    elif cmd == "events":
        ok = [link.send_event(proto.EV_HEADACHE_MARKER, next_event_seq(), BOOT_ID, 7000 + i)
              for i in range(arg)]
        out({"events": ok})
    elif cmd == "battery":
        link.set_battery(arg)
        out({"battery": arg})
    elif cmd == "link":
        info = link.link_info(arg)
        out({"link": list(info) if info else None})
    elif cmd == "clear":
        out({"cleared": link.clear_bonds()})
    elif cmd == "insecure":
        bluetooth._sim_att_security = False
        out({"insecure": True})
    elif cmd == "alloc":
        out(alloc_check(arg))
    elif cmd == "stats":
        out({"stats": link.stats.as_dict(), "bonded": link.bonded(),
             "advertising": link.advertising, "connected": link.connected(),
             "sim": bluetooth._sim_stats})
    elif cmd == "quit":
        state["quit"] = True
    else:
        out({"error": "unknown command " + cmd})


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


async def commands():
    poller = select.poll()
    poller.register(sys.stdin, select.POLLIN)
    while not state["quit"]:
        if poller.poll(0):
            line = read_line()
            if not line:
                break  # the test went away
            command(line)
            continue
        if MICROPYTHON:
            await asyncio.sleep_ms(5)
        else:
            await asyncio.sleep(0.005)


async def main():
    link.start()
    out({"ready": link.name, "handles": [link.h_posture, link.h_control, link.h_events,
                                          link.h_status, link.h_config, link.h_battery]})
    task = asyncio.create_task(link.run(5))
    await commands()
    link.stop()
    await asyncio.sleep(0)
    task.cancel()
    out({"bye": True})


probe_ms = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
link = NecklineBLE(on_request, model="NL-test", firmware="0.0.1-test", hardware="sim",
                   event_probe_ms=probe_ms)
asyncio.run(main())
