"""Run a posture trace through the firmware's strain detector and minute log.

Runs unchanged under MicroPython and CPython with firmware/ on the import path:

    <interpreter> strain_trace.py TRACE

TRACE is a text file: a first line of eleven config values (keys 1..11), then one sample per line,
"t_ms period_ms flexion_cdeg lateral_cdeg flags". The samples go through wearable.strain.Strain
and wearable.minute_log.MinuteLog exactly as the main loop feeds them (dt from the previous
sample's start); prints one JSON object: the episodes of every direction with absolute times, the
IN_STRAIN state after each sample, and the summary records. run() is importable, so host tests
use the same code under CPython as a reference.
"""

import json
import struct
import sys

from wearable import proto
from wearable.minute_log import MinuteLog
from wearable.strain import Strain

_DIRS = ("flex", "ext", "lat")


def _collect(s, t, eps, starts):
    for k in range(3):
        d = getattr(s, _DIRS[k])
        if d.ended:
            end = t - d.end_back
            eps.append([k, end - d.dur, end, d.end_peak])
        if d.started:
            starts.append([k, t - d.start_back])


def _drain(log, buf, out):
    while log.ready():
        end = log.pack(buf, 0)
        out.append(list(struct.unpack("<IBBhhBBB", bytes(buf[proto.SUMMARY_HEADER_SIZE:end]))))


def run(values, rows, boot_id=7):
    """values: config indexed by key (index 0 unused); rows: iterable of
    (t, period, flex, lat, flags). in_strain comes back as a string of 0/1, one per sample."""
    s = Strain(values)
    buf = bytearray(proto.MAX_PAYLOAD)
    log = MinuteLog(boot_id)
    eps = []
    starts = []
    in_strain = bytearray()
    records = []
    last_t = None
    last_p = 0
    for t, p, flex, lat, flags in rows:
        if last_t is None:
            log.begin(t // 60000, t % 60000, 0)
            dt = 0
        else:
            dt = t - last_t
        s.update(dt, p, flex, lat, flags)
        log.update(dt, p, s)
        _collect(s, t, eps, starts)
        in_strain.append(48 + s.in_strain)
        _drain(log, buf, records)
        last_t = t
        last_p = p
    if last_t is not None:
        s.finish()
        log.finish(s)
        _collect(s, last_t + last_p, eps, starts)
        _drain(log, buf, records)
    return {
        "episodes": eps,
        "starts": starts,
        "in_strain": in_strain.decode(),
        "records": records,
        "dropped": log.dropped,
    }


def rows_of(f):
    """The sample rows of an open trace file, one at a time: the trace is never held whole."""
    for line in f:
        parts = line.split()
        if parts:
            yield [int(x) for x in parts]


def main():
    with open(sys.argv[1]) as f:
        values = [0] + [int(x) for x in f.readline().split()]
        print(json.dumps(run(values, rows_of(f))))


if __name__ == "__main__":
    main()
