"""Heap use of the per-sample filter + posture step; runs under MicroPython and CPython.

    <interpreter> orient_mem.py

Prints one JSON object. Under MicroPython it holds the heap allocation per sample (gc.mem_alloc
deltas with the collector off) for the scalar update() path and the update_batch() path, and
whether the same work completes under micropython.heap_lock() (any allocation then raises
MemoryError). Both interpreters print the final angles, so the test can compare them.
"""

import gc
import json
import sys
from array import array

from wearable.orient import Orient
from wearable.posture import Posture

N = 3000
BATCH = 10


def sample(i, out, base):
    """A deterministic, moving signal: rotation about all axes, a tilted and wobbling gravity."""
    k = i % 64
    out[base] = 300 + 40 * k
    out[base + 1] = -200 + 25 * (k & 7)
    out[base + 2] = 50 - 13 * (k & 15)
    out[base + 3] = 900 + 3 * k
    out[base + 4] = -400 + 5 * (k & 31)
    out[base + 5] = 8000 + 7 * (k & 15)


def main():
    mp = sys.implementation.name == "micropython"
    f = Orient(100.0, 65.536, 8192.0)
    p = Posture(f)
    one = array("h", [0] * 6)
    buf = array("h", [0] * (6 * BATCH))
    sample(0, one, 0)
    f.update(one[0], one[1], one[2], one[3], one[4], one[5])
    p.set_neutral(0.0, 0.0, 1.0)
    p.update()
    for i in range(BATCH):
        sample(i, buf, 6 * i)

    result = {"mp": mp}
    gc.collect()
    if mp:
        gc.disable()
        m0 = gc.mem_alloc()
    for i in range(N):
        sample(i, one, 0)
        f.update(one[0], one[1], one[2], one[3], one[4], one[5])
        p.update()
    if mp:
        m1 = gc.mem_alloc()
        result["scalar_bytes_total"] = m1 - m0
        m0 = gc.mem_alloc()
    for _ in range(N // BATCH):
        f.update_batch(buf, BATCH)
        p.update()
    if mp:
        m1 = gc.mem_alloc()
        result["batch_bytes_total"] = m1 - m0
        gc.enable()
        gc.collect()
        import micropython

        micropython.heap_lock()
        locked_ok = True
        try:
            for i in range(N):
                sample(i, one, 0)
                f.update(one[0], one[1], one[2], one[3], one[4], one[5])
                p.update()
            for _ in range(N // BATCH):
                f.update_batch(buf, BATCH)
                p.update()
        except MemoryError:
            locked_ok = False
        micropython.heap_unlock()
        result["heap_locked_ok"] = locked_ok
    else:
        # same work as the heap-locked run, so the final angles are comparable
        for i in range(N):
            sample(i, one, 0)
            f.update(one[0], one[1], one[2], one[3], one[4], one[5])
            p.update()
        for _ in range(N // BATCH):
            f.update_batch(buf, BATCH)
            p.update()
    result["samples"] = N
    result["angles"] = [p.flexion_cd, p.lateral_cd, p.rotation_cd, p.flags]
    result["up_q28"] = [f.s[0], f.s[1], f.s[2]]
    print(json.dumps(result))


main()
