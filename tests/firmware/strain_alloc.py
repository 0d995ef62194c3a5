"""Heap use of the per-sample strain + minute-log step; runs under MicroPython and CPython.

    <interpreter> strain_alloc.py

Feeds a deterministic posture signal (bouts above every threshold, dips, releases, not-worn
stretches, a gap, long samples that straddle minutes) through Strain.update, MinuteLog.update and
the record packing. Under MicroPython the same loop then runs under micropython.heap_lock(), where
any allocation raises MemoryError, and with the collector off to count bytes. Prints one JSON
object; the counts of episodes and records must match between the interpreters.
"""

import gc
import json
import sys
from array import array

from wearable import proto
from wearable.minute_log import MinuteLog
from wearable.strain import STARTED_ANY, Strain

N = 20000
OK_FLAGS = proto.SF_CALIBRATED | proto.SF_ROTATION_UNRELIABLE
NOT_WORN = proto.SF_NOT_WORN | proto.SF_ROTATION_UNRELIABLE


def sample(i, out):
    """Write (dt, period, flexion, lateral, flags) of sample i into out; integers only."""
    k = i % 1000
    if k < 300:
        flex = 3000 + (k % 7) * 40  # a flexion bout
    elif k < 320:
        flex = 2200  # inside the hysteresis band
    elif k < 400:
        flex = 3100
    elif k < 450:
        flex = 500  # released
    elif k < 700:
        flex = -2000 - (k % 5) * 30  # extension
    else:
        flex = 200
    out[0] = 5000 if k == 980 else 100  # one gap
    out[1] = 61000 if 990 <= k < 995 else 100  # long samples straddle minute edges
    out[2] = flex
    out[3] = 2600 if 520 <= k < 800 else -300
    out[4] = NOT_WORN if 940 <= k < 960 else OK_FLAGS


def run(strain, log, buf, n, counts, s):
    for i in range(n):
        sample(i, s)
        dt = s[0]
        p = s[1]
        r = strain.update(dt, p, s[2], s[3], s[4])
        log.update(dt, p, strain)
        if r & STARTED_ANY:
            counts[0] += 1
        while log.ready():
            log.pack(buf, 0)
            counts[1] += 1


def main():
    mp = sys.implementation.name == "micropython"
    values = list(proto.CONFIG_DEFAULTS)
    values[proto.KEY_STRAIN_HOLD_S] = 5
    values[proto.KEY_CLEAR_HOLD_S] = 2
    strain = Strain(values)
    log = MinuteLog(3)
    log.begin(0, 0, 0)
    buf = bytearray(proto.MAX_PAYLOAD)
    counts = array("i", [0, 0])
    s = array("i", [0, 0, 0, 0, 0])
    run(strain, log, buf, 100, counts, s)  # warm up: every attribute exists afterwards
    result = {"mp": mp}
    if mp:
        import micropython

        gc.collect()
        gc.disable()
        m0 = gc.mem_alloc()
        run(strain, log, buf, N, counts, s)
        result["bytes_total"] = gc.mem_alloc() - m0
        gc.enable()
        gc.collect()
        micropython.heap_lock()
        locked_ok = True
        try:
            run(strain, log, buf, N, counts, s)
        except MemoryError:
            locked_ok = False
        micropython.heap_unlock()
        result["heap_locked_ok"] = locked_ok
    else:
        run(strain, log, buf, N, counts, s)
        run(strain, log, buf, N, counts, s)
    result["episodes"] = counts[0]
    result["records"] = counts[1]
    result["flex_episodes"] = strain.flex.episodes
    result["dropped"] = log.dropped
    print(json.dumps(result))


main()
