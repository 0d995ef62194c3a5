"""Heap use of the ring and the flash log under MicroPython (run with a small -X heapsize by the
test): RAM each structure takes, and what appending and serving allocate per sample, per record
and per packet. Prints "MEM <name> <bytes>" and "ALLOC <name> <bytes> <per>" lines; under CPython
the same operations run and are checked, the heap numbers are skipped.
Usage: logs_mem.py <dir>"""

import gc

import machine
from logs_common import alloc_end, alloc_start, check, done, eq, is_micropython, rmtree, workdir
from wearable import proto
from wearable.battery import Battery
from wearable.flashlog import FlashLog
from wearable.ring import RawRing

MP = is_micropython()
WORK = workdir()
PKT = bytearray(proto.MAX_PAYLOAD)


def heap_cost(make):
    """Heap bytes an object takes (0 under CPython)."""
    if not MP:
        make()
        return 0
    gc.collect()
    before = gc.mem_alloc()
    obj = make()
    gc.collect()
    cost = gc.mem_alloc() - before
    return obj, cost


def report(name, value):
    print("MEM", name, value)


def alloc(name, used, count, per):
    print("ALLOC", name, used, count, per)


# --- RAM of the ring at 10 Hz and 25 Hz for 10 minutes
if MP:
    # Largest first, so the heap is not yet fragmented when it needs 105 KB in one piece.
    ring, cost25 = heap_cost(lambda: RawRing(capacity=15000))
    report("ring_15000", cost25)
    check(cost25 <= 105013 + 128 * 12 + 1024, "10-minute ring at 25 Hz: about 107 KB")
    ring = None
    gc.collect()
    ring, cost10 = heap_cost(lambda: RawRing(capacity=6000))
    report("ring_6000", cost10)
    check(cost10 <= 42013 + 128 * 12 + 1024, "10-minute ring at 10 Hz: about 44 KB")
    ring = None
    gc.collect()

# --- ring: appending allocates nothing, including evictions and new runs
ring = RawRing(capacity=6000)
t = 0
for i in range(7000):  # fill and wrap once outside the measurement
    ring.append(t, 1, 100, i, -i, 0, 0x11)
    t += 100
a = alloc_start()
for i in range(10000):
    if i % 1000 == 0:
        t += 50  # a gap: a new run every 1000 samples
    ring.append(t, 1, 100, i, -i, i, 0x11)
    t += 100
used = alloc_end(a)
alloc("ring_append", used, 10000, "samples")
eq(ring.runs, 11, "runs during the measurement")
if MP:
    eq(used, 0, "ring.append allocates nothing (10000 samples, evictions, 10 new runs)")

# --- ring: serving allocates per packet, not per sample
for mtu in (23, 185, 517):
    n = ring.request(0, 0xFFFFFFFF)
    packets = 0
    a = alloc_start()
    while ring.busy:
        if ring.fill(PKT, mtu):
            packets += 1
    used = alloc_end(a)
    eq(ring.sent, 6000, "ring served at MTU " + str(mtu))
    alloc("ring_fill_mtu" + str(mtu), used, packets, "packets")
    if MP:
        eq(used, 0, f"ring.fill allocates nothing at MTU {mtu} ({packets} packets)")

# --- flash log: RAM, per-record append, per-packet serving
d = WORK + "/memlog"
rmtree(d)
if MP:
    log, cost = heap_cost(lambda: FlashLog(d))
    report("flashlog_8x1440", cost)
    check(cost <= 2048, "flash log object under 2 KB of RAM")
else:
    log = FlashLog(d)
for i in range(100):
    log.append(60 * i, 1, 60, 100, 200, 10, 1, 0)
a = alloc_start()
for i in range(100, 1300):  # stays inside segment 0: no segment roll in the measurement
    log.append(60 * i, 1, 60, 100, 200, 10, 1, 0)
used = alloc_end(a)
alloc("flashlog_append", used, 1200, "records")
if MP:
    check(used <= 64, f"append: {used} B for 1200 records (nothing per record)")
a = alloc_start()
for i in range(1300, 1500):  # crosses into segment 1: one roll (closes, opens files)
    log.append(60 * i, 1, 60, 100, 200, 10, 1, 0)
used = alloc_end(a)
alloc("flashlog_append_with_roll", used, 200, "records")
if MP:
    check(used <= 512, f"a segment roll (file close and open) costs a bounded amount: {used} B")
for mtu in (23, 517):
    log.request(0)
    packets = 0
    a = alloc_start()
    while log.busy:
        if log.fill(PKT, mtu):
            packets += 1
    used = alloc_end(a)
    eq(log.sent, 1500, "flash log served at MTU " + str(mtu))
    alloc("flashlog_fill_mtu" + str(mtu), used, packets, "packets")
    if MP:
        # a reader handle opens once per segment crossed; records themselves allocate nothing
        check(used <= 256, f"fill at MTU {mtu}: {used} B for {packets} packets")
log.close()

# --- battery: an update allocates nothing
machine.sim_set_adc(33, 1900000)
bat = Battery(machine.ADC(machine.Pin(33)))
for _ in range(10):  # warm up: first calls may grow interpreter caches once
    bat.update()
a = alloc_start()
for _ in range(1000):
    bat.update()
used = alloc_end(a)
alloc("battery_update", used, 1000, "updates")
eq(bat.mv, 3800, "battery reading")
if MP:
    eq(used, 0, "battery.update allocates nothing")
done("logs_mem")
