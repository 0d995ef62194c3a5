"""Benchmark: the firmware's filter + posture step on the MicroPython unix port.

    python bench/firmware.py          (CPython: runs this file under .venv/bin/micropython)
    micropython -X heapsize=4M bench/firmware.py     (firmware/ and bench/ on MICROPYPATH)

Prints ONE JSON line:
  us_per_update, bytes_per_sample              firmware Orient.update() + Posture.update()
  naive_us_per_update, naive_bytes_per_sample  the float version in bench/naive_filter.py
  bytes_ratio                                  bytes_per_sample / naive_bytes_per_sample
  batch_us_per_sample, batch_bytes_per_sample  update_batch() of 10 samples + one Posture.update()
  heap_locked_ok                               the firmware step ran with the heap locked
Heap bytes are gc.mem_alloc() deltas with the collector disabled; times are the best of 5 runs.
"""

import gc
import json
import sys

N = 2000
N_MEM = 300  # samples for the heap measurement (the naive filter's garbage must fit the heap)
HEAP = "4M"
RUNS = 5
BATCH = 10


def _signal(n):
    """Raw counts (+-500 deg/s, +-4 g) of a head nodding and turning, with a tilted gravity."""
    import math
    from array import array

    buf = array("h", [0] * (6 * n))
    for i in range(n):
        t = i / 100.0
        buf[6 * i] = int(800.0 * math.sin(1.3 * t))
        buf[6 * i + 1] = int(1500.0 * math.sin(2.1 * t))
        buf[6 * i + 2] = int(600.0 * math.cos(0.7 * t))
        buf[6 * i + 3] = int(1400.0 * math.sin(0.9 * t))
        buf[6 * i + 4] = int(900.0 * math.cos(1.1 * t))
        buf[6 * i + 5] = int(8000.0 + 300.0 * math.sin(3.0 * t))
    return buf


def _measure(step, buf, count):
    """(best microseconds per call, heap bytes per call) of step(buf, i) for i in range(count)."""
    import time

    best = None
    for _ in range(RUNS):
        gc.collect()
        t0 = time.ticks_us()
        for i in range(count):
            step(buf, i)
        dt = time.ticks_diff(time.ticks_us(), t0)
        if best is None or dt < best:
            best = dt
    mem_count = min(count, N_MEM)
    gc.collect()
    gc.disable()
    m0 = gc.mem_alloc()
    for i in range(mem_count):
        step(buf, i)
    m1 = gc.mem_alloc()
    gc.enable()
    return best / count, (m1 - m0) / mem_count


def bench_micropython():
    import micropython
    from naive_filter import NaiveOrient, NaivePosture
    from wearable.orient import Orient
    from wearable.posture import Posture

    buf = _signal(N)
    f = Orient(100.0, 65.536, 8192.0)
    p = Posture(f)
    f.update(buf[0], buf[1], buf[2], buf[3], buf[4], buf[5])
    p.set_neutral(0.0, 0.0, 1.0)

    def firmware_step(b, i):
        j = 6 * i
        f.update(b[j], b[j + 1], b[j + 2], b[j + 3], b[j + 4], b[j + 5])
        p.update()

    batch = buf[:6 * BATCH]

    def batch_step(b, i):
        f.update_batch(b, BATCH)
        p.update()

    nf = NaiveOrient(100.0, 65.536, 8192.0)
    npst = NaivePosture(nf)
    nf.update(buf[0], buf[1], buf[2], buf[3], buf[4], buf[5])
    npst.set_neutral([0.0, 0.0, 1.0])

    def naive_step(b, i):
        j = 6 * i
        nf.update(b[j], b[j + 1], b[j + 2], b[j + 3], b[j + 4], b[j + 5])
        npst.update()

    us, nbytes = _measure(firmware_step, buf, N)
    bus, bbytes = _measure(batch_step, batch, N // BATCH)
    nus, nnbytes = _measure(naive_step, buf, N)

    micropython.heap_lock()
    try:
        for i in range(N):
            firmware_step(buf, i)
        locked_ok = True
    except MemoryError:
        locked_ok = False
    micropython.heap_unlock()

    v = sys.implementation.version
    print(json.dumps({
        "us_per_update": round(us, 2),
        "bytes_per_sample": round(nbytes, 2),
        "naive_us_per_update": round(nus, 2),
        "naive_bytes_per_sample": round(nnbytes, 1),
        "bytes_ratio": round(nbytes / nnbytes, 4) if nnbytes else None,
        "batch_us_per_sample": round(bus / BATCH, 2),
        "batch_bytes_per_sample": round(bbytes / BATCH, 2),
        "heap_locked_ok": locked_ok,
        "samples": N,
        "interpreter": f"micropython {v[0]}.{v[1]}.{v[2]} unix",
    }))


def main_cpython():
    import os
    import shutil
    import subprocess
    from pathlib import Path

    here = Path(__file__).resolve().parent
    repo = here.parent
    binary = Path(sys.executable).parent / "micropython"
    exe = str(binary) if binary.exists() else shutil.which("micropython")
    if exe is None:
        sys.stderr.write("bench/firmware.py: micropython not found; `make setup` installs it\n")
        return 1
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([str(here), str(repo / "firmware")]))
    cmd = [exe, "-X", f"heapsize={HEAP}", str(here / "firmware.py")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or len(lines) != 1:
        sys.stderr.write(proc.stderr or proc.stdout)
        return proc.returncode or 1
    json.loads(lines[0])  # must be one valid JSON line
    print(lines[0])
    return 0


if __name__ == "__main__":
    if sys.implementation.name == "micropython":
        bench_micropython()
    else:
        sys.exit(main_cpython())
