"""A synthetic wearable for the host link tests, built from the real firmware modules.

Runs under the MicroPython unix port (and CPython) with firmware/sim (the `bluetooth` shim) and
firmware on the path, the working directory as the board's filesystem, and
NECKLINE_VBLE_BRIDGE / NECKLINE_VBLE_ADDR in the environment. It stands in for the firmware main
loop (firmware/wearable/app.py) until that exists: the GATT server is the real NecklineBLE, raw
samples live in the real RawRing and minute summaries in the real FlashLog, every byte is packed
by the real proto encoders.

    link_device.py [period_ms] [batch] [summary_ms] [boot_id] [prefill]

* A sample every `period_ms` (seq-numbered, angles a pure function of seq so the test can check
  what arrives): stored in the ring, and sent live in packets of `batch` samples while a central
  is encrypted. Samples made while nobody listens stay in the ring only (backfill material).
  `prefill` samples are put in the ring at start, as if recorded before anyone connected.
* A summary record every `summary_ms` (three are written at start if the log is empty).
* The control point: SET_TIME, SET_CONFIG (with the firmware's hysteresis rule), REQUEST_RAW and
  REQUEST_SUMMARY (packets first, then the response, one packet per loop turn so live data and
  ABORT get through), ABORT, GET_STATUS, CALIBRATE (result chosen with the `cal` command).

Commands on stdin, one per line, each answered with one JSON line:

    mute / unmute    stop / resume streaming and answering the control point (a silent link)
    drop K           do not send the next K live packets (a stack out of buffers): a gap
    forget           clear_bonds(): forget every central and disconnect it
    version N        advertise protocol version N in the status value
    cal RESULT       CALIBRATE outcome: 0 OK (SUCCESS, then the event) or a failure code
                     (REFUSED, then the event with that result)
    stats            counters
    quit             radio off, exit
"""

import json
import select
import sys

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

import time

from wearable import proto
from wearable.ble import NecklineBLE
from wearable.flashlog import FlashLog
from wearable.ring import RawRing

MICROPYTHON = sys.implementation.name == "micropython"
U32 = 0xFFFFFFFF

if hasattr(time, "ticks_ms"):
    ticks_ms = time.ticks_ms
    ticks_diff = time.ticks_diff
else:

    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b


def out(obj):
    print(json.dumps(obj))
    if hasattr(sys.stdout, "flush"):
        sys.stdout.flush()


async def sleep_ms(ms):
    if hasattr(asyncio, "sleep_ms"):
        await asyncio.sleep_ms(ms)
    else:
        await asyncio.sleep(ms / 1000)


def angles(seq):
    """Deterministic sample content for seq: the test recomputes it."""
    return ((seq * 37) % 6000) - 1000, ((seq * 11) % 2000) - 1000, (seq * 7) % 500


args = [int(a) for a in sys.argv[1:]]
PERIOD_MS = args[0] if len(args) > 0 else 50
BATCH = args[1] if len(args) > 1 else 2
SUMMARY_MS = args[2] if len(args) > 2 else 1000
BOOT_ID = args[3] if len(args) > 3 else 3
PREFILL = args[4] if len(args) > 4 else 0

st = {
    "muted": False, "quit": False, "version": 1, "cal": 0, "utc_ms": 0, "utc_at": 0,
    "pending": 0, "held": 0, "seq0": 0, "t0": 0, "busy": None, "abort": [], "event_seq": 0,
    "requests": {}, "drop": 0, "dropped": 0, "raw_served": 0, "summary_served": 0,
    "ignored": 0, "period": PERIOD_MS,
}
config = list(proto.CONFIG_DEFAULTS)
config[proto.KEY_STREAM_PERIOD_MS] = PERIOD_MS
ring = RawRing(capacity=4000)
log = FlashLog("log", segments=2, per_segment=256)
backfill_buf = bytearray(proto.MAX_PAYLOAD)
status_buf = bytearray(proto.STATUS_SIZE)
boot_ms = ticks_ms()


def now_ms():
    return ticks_diff(ticks_ms(), boot_ms) & U32


def write_status():
    state = proto.STATE_CALIBRATED | proto.STATE_WORN
    if st["utc_ms"]:
        state |= proto.STATE_TIME_SET
    if link.streaming():
        state |= proto.STATE_STREAMING
    link.update_status(BOOT_ID, now_ms(), ring.next_seq, ring.oldest_seq, log.next_record,
                       log.oldest_record, 3900, 80, state, st["period"])
    if st["version"] != 1:
        # Another protocol version: only the version nibble of byte 0 is promised across versions.
        v = link._ble.gatts_read(link.h_status)
        for i in range(len(v)):
            status_buf[i] = v[i]
        status_buf[0] = (st["version"] << 4) | proto.T_STATUS
        link._ble.gatts_write(link.h_status, status_buf)


def next_event_seq():
    s = st["event_seq"]
    st["event_seq"] = (s + 1) & 0xFFFF
    return s


def add_summary():
    t = now_ms()
    flags = proto.RF_CALIBRATED
    if st["utc_ms"]:
        start = (st["utc_ms"] + ticks_diff(ticks_ms(), st["utc_at"])) // 60000 * 60
        flags |= proto.RF_TIME_VALID
    else:
        start = t // 1000
    i = log.next_record
    log.append(start, BOOT_ID, 60, 1000 + i, 2000 + i, i % 30, i % 3, flags)


def config_ok(entries):
    values = list(config)
    for key, value in entries:
        values[key] = value
    limit = min(values[proto.KEY_STRAIN_THRESHOLD_CDEG],
                -values[proto.KEY_EXTENSION_THRESHOLD_CDEG],
                values[proto.KEY_LATERAL_THRESHOLD_CDEG])
    return values[proto.KEY_HYSTERESIS_CDEG] < limit


def on_request(conn, op, operands):
    if st["muted"]:
        st["ignored"] += 1
        return None  # never answered: the link goes silent
    st["requests"][op] = st["requests"].get(op, 0) + 1
    if op == proto.OP_ABORT:
        if st["busy"] is not None:
            st["abort"].append(conn)  # answered after the stopped procedure's own response
            return None
        return proto.ST_SUCCESS
    if st["busy"] is not None and op in (proto.OP_REQUEST_RAW, proto.OP_REQUEST_SUMMARY):
        return proto.ST_BUSY
    if op == proto.OP_SET_TIME:
        st["utc_ms"] = operands[0]
        st["utc_at"] = ticks_ms()
        return (proto.ST_SUCCESS, BOOT_ID, now_ms())
    if op == proto.OP_SET_CONFIG:
        if not config_ok(operands):
            return proto.ST_INVALID_PARAMETER
        for key, value in operands:
            config[key] = value
        st["period"] = config[proto.KEY_STREAM_PERIOD_MS]
        link.update_config([(k, config[k]) for k in range(1, proto.MAX_CONFIG_KEY + 1)])
        return proto.ST_SUCCESS
    if op == proto.OP_GET_STATUS:
        write_status()
        return proto.ST_SUCCESS
    if op == proto.OP_REQUEST_RAW:
        if ring.request(operands[0], operands[1]) == 0:
            return proto.ST_NO_RECORDS
        st["busy"] = (conn, op)
        return None
    if op == proto.OP_REQUEST_SUMMARY:
        if log.request(operands[0]) == 0:
            return proto.ST_NO_RECORDS
        st["busy"] = (conn, op)
        return None
    if op == proto.OP_CALIBRATE:
        result = st["cal"]
        if result == proto.CAL_OK:
            link.respond(conn, op, proto.ST_SUCCESS)
            link.send_event(proto.EV_CALIBRATION, next_event_seq(), BOOT_ID, now_ms(),
                            proto.CAL_OK, 150, -220)
        else:
            link.respond(conn, op, proto.ST_REFUSED)
            link.send_event(proto.EV_CALIBRATION, next_event_seq(), BOOT_ID, now_ms(), result,
                            proto.NO_VALUE, proto.NO_VALUE)
        return None
    return proto.ST_UNSUPPORTED


def send_held():
    """Send the backfill packet waiting in backfill_buf; False if the stack had no room."""
    size = st["held"]
    link.posture_buf[:size] = backfill_buf[:size]
    if link.send_posture(size) == 0 and link.connected():
        return False
    st["held"] = 0
    return True


def serve_one():
    """Send the next packet of a running backfill; answer when it is done or aborted."""
    conn, op = st["busy"]
    if st["held"] and not send_held():
        return "retry"  # the shim refuses while the bridge is not reading
    source = ring if op == proto.OP_REQUEST_RAW else log
    if st["abort"]:
        source.abort()
    if source.busy and link.connected():
        size = source.fill(backfill_buf, link.mtu())
        if size:
            if op == proto.OP_REQUEST_RAW:
                st["raw_served"] += 1
            else:
                st["summary_served"] += 1
            st["held"] = size
            if not send_held():
                return "retry"
        if source.busy:
            return "more"
    st["busy"] = None
    if op == proto.OP_REQUEST_RAW:
        link.respond(conn, op, proto.ST_SUCCESS, ring.sent, ring.oldest_seq)
    else:
        link.respond(conn, op, proto.ST_SUCCESS, log.sent, log.next_record)
    for c in st["abort"]:
        link.respond(c, proto.OP_ABORT, proto.ST_SUCCESS)
    st["abort"] = []
    return "done"


def flush_live():
    n = st["pending"]
    if n == 0:
        return
    st["pending"] = 0
    if not link.streaming() or st["muted"]:
        return  # in the ring only
    if st["drop"] > 0:
        st["drop"] -= 1
        st["dropped"] += n
        return
    seq0 = st["seq0"]
    for i in range(n):
        f, lat, rot = angles((seq0 + i) & U32)
        proto.pack_sample(link.posture_buf, i, f, lat, rot,
                          proto.SF_CALIBRATED | proto.SF_ROTATION_UNRELIABLE)
    size = proto.pack_samples_header(link.posture_buf, False, n, seq0, st["t0"], BOOT_ID,
                                     st["period"])
    link.send_posture(size)


def prefill(n):
    t = 0
    for _ in range(n):
        seq = ring.next_seq
        f, lat, rot = angles(seq)
        ring.append(t, BOOT_ID, st["period"], f, lat, rot,
                    proto.SF_CALIBRATED | proto.SF_ROTATION_UNRELIABLE)
        t = (t + st["period"]) & U32
    return t


async def sampler(t):
    next_due = ticks_ms()
    last_summary = ticks_ms()
    while not st["quit"]:
        next_due += st["period"]
        wait = ticks_diff(next_due, ticks_ms())
        if wait > 0:
            await sleep_ms(wait)
        else:
            await sleep_ms(0)
        seq = ring.next_seq
        f, lat, rot = angles(seq)
        if st["pending"] == 0:
            st["seq0"] = seq
            st["t0"] = t
        ring.append(t, BOOT_ID, st["period"], f, lat, rot,
                    proto.SF_CALIBRATED | proto.SF_ROTATION_UNRELIABLE)
        st["pending"] += 1
        t = (t + st["period"]) & U32
        if st["pending"] >= min(BATCH, link.samples_per_packet()):
            flush_live()
        if ticks_diff(ticks_ms(), last_summary) >= SUMMARY_MS:
            last_summary = ticks_ms()
            add_summary()
            write_status()


async def server():
    while not st["quit"]:
        link.poll()
        if st["busy"] is not None and not st["muted"]:
            state = serve_one()
            await sleep_ms(5 if state == "retry" else 1)
        else:
            await sleep_ms(3)


def command(line):
    words = line.split()
    if not words:
        return
    cmd = words[0]
    arg = int(words[1]) if len(words) > 1 else 0
    if cmd == "mute":
        st["muted"] = True
        out({"muted": True})
    elif cmd == "unmute":
        st["muted"] = False
        out({"muted": False})
    elif cmd == "drop":
        st["drop"] = arg
        out({"drop": arg})
    elif cmd == "forget":
        out({"forgot": link.clear_bonds()})
    elif cmd == "version":
        st["version"] = arg
        write_status()
        out({"version": arg})
    elif cmd == "cal":
        st["cal"] = arg
        out({"cal": arg})
    elif cmd == "stats":
        out({"stats": link.stats.as_dict(), "next_seq": ring.next_seq,
             "oldest_seq": ring.oldest_seq, "next_record": log.next_record,
             "oldest_record": log.oldest_record, "requests": st["requests"],
             "raw_packets": st["raw_served"], "summary_packets": st["summary_served"],
             "ignored": st["ignored"], "dropped": st["dropped"], "period": st["period"],
             "utc_ms": st["utc_ms"],
             "config": config, "connected": link.connected()})
    elif cmd == "quit":
        st["quit"] = True
    else:
        out({"error": "unknown command " + cmd})


def read_line():
    if MICROPYTHON:
        return sys.stdin.readline()
    import os

    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(0, 1)
        if not chunk:
            break
        data += chunk
    return data.decode()


async def commands():
    poller = select.poll()
    poller.register(sys.stdin, select.POLLIN)
    while not st["quit"]:
        if poller.poll(0):
            line = read_line()
            if not line:
                break
            command(line)
            continue
        await sleep_ms(10)


async def main():
    t = prefill(PREFILL)
    link.start()
    link.update_config([(k, config[k]) for k in range(1, proto.MAX_CONFIG_KEY + 1)])
    if log.records() == 0:
        for _ in range(3):
            add_summary()
    write_status()
    out({"ready": link.name})
    tasks = [asyncio.create_task(sampler(t)), asyncio.create_task(server())]
    await commands()
    st["quit"] = True
    await sleep_ms(20)
    for task in tasks:
        task.cancel()
    link.stop()
    log.close()
    out({"bye": True})


link = NecklineBLE(on_request, model="NL-linktest", firmware="0.0.1-test", hardware="sim",
                   event_probe_ms=300)
asyncio.run(main())
