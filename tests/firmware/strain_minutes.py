"""Minute-log scenarios beyond plain accumulation; runs under MicroPython and CPython.

    <interpreter> strain_minutes.py

Boot in mid-minute, SET_TIME in mid-minute (a new time base), marks, a storage that stops taking
records, an episode whose run began before SET_TIME. Prints one JSON object of scenario ->
records, each record as its unpacked fields (start, boot_id, wear_s, mean, max, strain_s,
episodes, flags); the test checks the values and that both interpreters agree.
"""

import json
import struct

from wearable import proto
from wearable.minute_log import MinuteLog
from wearable.strain import Strain

OK = proto.SF_CALIBRATED | proto.SF_ROTATION_UNRELIABLE
BUF = bytearray(proto.MAX_PAYLOAD)


def values(hold_s=2, clear_s=1):
    v = list(proto.CONFIG_DEFAULTS)
    v[proto.KEY_STRAIN_HOLD_S] = hold_s
    v[proto.KEY_CLEAR_HOLD_S] = clear_s
    return v


def feed(s, log, n, flex, dt=100, p=100, flags=OK):
    for _ in range(n):
        s.update(dt, p, flex, 0, flags)
        log.update(dt, p, s)


def drain(log):
    out = []
    while log.ready():
        end = log.pack(BUF, 0)
        out.append(list(struct.unpack("<IBBhhBBB", bytes(BUF[proto.SUMMARY_HEADER_SIZE:end]))))
    return out


def boot_mid_minute():
    s = Strain(values())
    log = MinuteLog(9)
    log.begin(0, 30000, 0)  # the first sample lies 30 s into its minute
    feed(s, log, 900, 0)  # 90 s
    first = drain(log)
    nothing = log.pack(BUF, 0)
    s.finish()
    log.finish(s)
    return {"records": first + drain(log), "pack_when_empty": nothing}


def set_time_mid_minute():
    s = Strain(values())
    log = MinuteLog(4)
    log.begin(0, 0, 0)
    feed(s, log, 100, 0)  # 10 s of minute 0 since boot
    log.mark(proto.RF_CALIBRATED)
    # A run starts, then SET_TIME arrives: the next sample is 20 s into epoch minute 28433333.
    feed(s, log, 10, 3000)
    log.begin(28433333, 20000, 1)
    feed(s, log, 30, 3000, dt=100)  # the run reaches the hold in the new base
    log.mark(proto.RF_ALERTED)
    feed(s, log, 20, 0)
    s.finish()
    log.finish(s)
    return {"records": drain(log), "episodes": s.flex.episodes}


def storage_stalls():
    s = Strain(values())
    log = MinuteLog(1, capacity=4)
    log.begin(0, 0, 0)
    feed(s, log, 600 * 7, 0)  # 7 minutes, nobody takes records
    s.finish()
    log.finish(s)
    recs = drain(log)
    return {"records": [r[0] for r in recs], "dropped": log.dropped}


def long_pending_run():
    # A 60 s hold: the minutes the run touches stay open until it is confirmed.
    s = Strain(values(hold_s=60, clear_s=0))
    log = MinuteLog(2)
    log.begin(0, 0, 0)
    feed(s, log, 550, 0)  # 55 s
    feed(s, log, 599, 3000)  # 59.9 s above, from 55 s into minute 0: not yet held
    before = log.ready()
    feed(s, log, 1, 3000)  # held now
    after = log.ready()
    feed(s, log, 10, 0)
    s.finish()
    log.finish(s)
    return {"ready_before": before, "ready_after": after, "records": drain(log)}


def main():
    print(json.dumps({
        "boot_mid_minute": boot_mid_minute(),
        "set_time_mid_minute": set_time_mid_minute(),
        "storage_stalls": storage_stalls(),
        "long_pending_run": long_pending_run(),
    }))


main()
