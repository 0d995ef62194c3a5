"""Raw sample ring: range queries (u32 wrap, evicted ranges, two-piece ranges), runs, eviction
while serving, abort, run-table overflow. Checks packets with its own struct reading and writes
every backfill packet with the samples it must contain to <dir>/ring_cases.json, which the pytest
side decodes with the host decoder. Usage: logs_ring.py <dir>"""

import binascii
import json
import struct

from logs_common import Lcg, check, done, eq, workdir
from wearable import proto
from wearable.ring import RawRing, capacity_for, in_range_count, sdiff

M = 0xFFFFFFFF
OUT = workdir()
CASES = []
PKT = bytearray(proto.MAX_PAYLOAD)


def clamp(v):
    if v == proto.NO_VALUE:
        return v
    return max(-32767, min(32767, v))


class Model:
    """What the ring should hold: every appended sample by seq, with its meaning."""

    def __init__(self):
        self.samples = {}

    def add(self, ring, t, boot, period, f, lat, rot, flags):
        seq = ring.append(t, boot, period, f, lat, rot, flags)
        self.samples[seq] = [seq, t & M, boot, period, clamp(f), clamp(lat), clamp(rot),
                             flags & proto.SF_MASK]
        return seq

    def stored(self, ring):
        out = []
        s = ring.oldest_seq
        for _ in range(ring.count):
            out.append(self.samples[s])
            s = (s + 1) & M
        return out


def parse(pkt, n):
    """Samples of one backfill packet, read with struct (independent of the ring)."""
    vt, count, seq, t, boot, period = struct.unpack_from("<BBIIBH", pkt, 0)
    check(vt == 0x12, "backfill ver_type")
    check(n == 13 + 7 * count, "packet length")
    out = []
    for i in range(count):
        f, lat, rot, flags = struct.unpack_from("<hhhB", pkt, 13 + 7 * i)
        out.append([(seq + i) & M, (t + i * period) & M, boot, period, f, lat, rot, flags])
    return out


def serve(ring, first, last, mtu, between=None):
    """Run one REQUEST_RAW; returns (available, packets as hex, samples read back)."""
    avail = ring.request(first, last)
    packets = []
    got = []
    k = 0
    while ring.busy:
        n = ring.fill(PKT, mtu)
        if n:
            check(n <= proto.payload_max(mtu), "packet fits the MTU")
            packets.append(binascii.hexlify(bytes(PKT[:n])).decode())
            got += parse(PKT, n)
            if between is not None:
                between(k)
            k += 1
        check(k < 100000, "request ends")
        if k >= 100000:
            break
    return avail, packets, got


def in_range(seq, first, last):
    return ((seq - first) & M) <= ((last - first) & M)


def case(name, ring, model, first, last, mtu):
    want = [s for s in model.stored(ring) if in_range(s[0], first, last)]
    avail, packets, got = serve(ring, first, last, mtu)
    eq(avail, len(want), name + " available")
    eq(ring.sent, len(want), name + " sent")
    eq(got, want, name + " samples")
    eq(ring.available(first, last), len(want), name + " available()")
    if packets:
        CASES.append({"name": name, "mtu": mtu, "packets": packets, "expected": want})
    return avail


def build_main():
    ring = RawRing(capacity=300, max_runs=16, first_seq=0xFFFFFF00)
    m = Model()
    rnd = Lcg(7)
    t = 0xFFFFF000  # t_ms wraps inside the first run
    angles = [0, 1, -1, 40000, -40000, proto.NO_VALUE, 32767, -32767, 12345]
    for i in range(400):
        if i < 150:
            period, boot = 100, 3
        elif i < 200:
            period, boot = 40, 3  # period change: a new run
        elif i < 300:
            period, boot = 40, 3
            if i == 200:
                t += 5000  # a gap (the IMU stalled): a new run
        else:
            period, boot = 40, 4  # new boot_id
        f = angles[i % len(angles)] if i % 7 == 0 else rnd.below(6000) - 3000
        m.add(ring, t, boot, period, f, -rnd.below(2000), i * 3, 0xFF if i % 11 == 0 else i & 0x1F)
        t = (t + period) & M
    return ring, m


def test_main():
    ring, m = build_main()
    eq(ring.count, 300, "count")
    eq(ring.evicted, 100, "evicted")
    eq(ring.oldest_seq, (0xFFFFFF00 + 100) & M, "oldest_seq")
    eq(ring.next_seq, (0xFFFFFF00 + 400) & M, "next_seq wrapped")
    eq(ring.runs, 4, "runs started")
    oldest = ring.oldest_seq
    nxt = ring.next_seq
    for mtu in (23, 185, 247, 517):
        case("full@" + str(mtu), ring, m, 0, M, mtu)
    case("seq wrap", ring, m, 0xFFFFFFF0, 0x10, 185)
    case("partly evicted", ring, m, 0xFFFFFF00, 0xFFFFFF80, 185)
    eq(case("evicted", ring, m, 0xFFFFFF00, 0xFFFFFF10, 185), 0, "evicted range: NO_RECORDS")
    check(not ring.busy, "nothing started for NO_RECORDS")
    eq(case("future", ring, m, nxt, (nxt + 100) & M, 185), 0, "future range: NO_RECORDS")
    n = case("two pieces", ring, m, (oldest + 200) & M, (oldest + 20) & M, 185)
    eq(n, 21 + 100, "two-piece range count")
    eq(case("one seq", ring, m, (oldest + 77) & M, (oldest + 77) & M, 185), 1, "single seq")
    eq(case("all of u32", ring, m, (oldest + 150) & M, (oldest + 149) & M, 517), 300,
       "range covering every seq")
    eq(case("newest", ring, m, (nxt - 1) & M, (nxt - 1) & M, 23), 1, "newest seq")
    eq(case("oldest", ring, m, oldest, oldest, 23), 1, "oldest seq")
    # Packets never cross a run. Stored runs: 50, 50, 100 and 100 samples; 71 per packet.
    _, packets, _ = serve(ring, 0, M, 517)
    eq(len(packets), 6, "packets at MTU 517: split at run boundaries and at 71 samples")
    # time of a stored seq, read()
    tm = ring.sample_time(oldest)
    eq(list(tm), m.samples[oldest][1:4], "sample_time(oldest)")
    eq(ring.sample_time((oldest - 1) & M), None, "sample_time of an evicted seq")
    out = bytearray(7)
    check(ring.read((nxt - 1) & M, out), "read newest")
    eq(list(struct.unpack("<hhhB", out)), m.samples[(nxt - 1) & M][4:], "read newest bytes")
    check(not ring.read(nxt, out), "read of a future seq")


def test_evict_while_serving():
    ring = RawRing(capacity=100, first_seq=5)
    m = Model()
    for i in range(100):
        m.add(ring, 1000 + 100 * i, 1, 100, i, i, i, 1)
    stored_then = m.stored(ring)

    def more(k):
        if k == 0:  # after the first packet (24 samples at MTU 185), 50 new samples arrive
            for i in range(100, 150):
                m.add(ring, 1000 + 100 * i, 1, 100, i, i, i, 1)

    avail, packets, got = serve(ring, 0, M, 185, more)
    eq(avail, 100, "available at request time")
    want = stored_then[:24] + stored_then[50:]
    eq(got, want, "evicted samples skipped, new samples not sent")
    eq(ring.sent, 74, "sent counts what was sent")
    CASES.append({"name": "evict while serving", "mtu": 185, "packets": packets, "expected": want})
    # everything evicted before the second packet
    ring2 = RawRing(capacity=30)
    m2 = Model()
    for i in range(30):
        m2.add(ring2, 100 * i, 1, 100, i, 0, 0, 0)

    def flood(k):
        for i in range(30, 90):
            m2.add(ring2, 100 * i, 1, 100, i, 0, 0, 0)

    avail, packets, got = serve(ring2, 0, M, 185, flood)
    eq((avail, len(packets), ring2.sent), (30, 1, 24), "request whose rest was evicted ends")


def test_abort():
    ring = RawRing(capacity=200)
    for i in range(200):
        ring.append(10 * i, 0, 10, i, 0, 0, 0)
    eq(ring.request(0, 199), 200, "request")
    n = ring.fill(PKT, 23)
    eq(n, 20, "one sample at the default MTU")
    ring.abort()
    check(not ring.busy, "abort stops")
    eq(ring.fill(PKT, 23), 0, "fill after abort")
    eq(ring.sent, 1, "sent after abort")
    eq(ring.request(10, 5), 196, "wrapped range over the whole window minus 4")


def test_run_table_full():
    ring = RawRing(capacity=100, max_runs=4)
    m = Model()
    t = 0
    for r in range(6):
        for _ in range(10):
            m.add(ring, t, 1, 20, r, 0, 0, 0)
            t += 20
        t += 1000  # gap: next run
    eq(ring.run_evicted, 20, "two oldest runs dropped with their samples")
    eq(ring.count, 40, "count after run-table overflow")
    eq(ring.oldest_seq, 20, "oldest after run-table overflow")
    _, packets, got = serve(ring, 0, M, 517)
    eq(got, m.stored(ring), "samples after run-table overflow")
    eq(len(packets), 4, "one packet per run")
    CASES.append({"name": "run table full", "mtu": 517, "packets": packets,
                  "expected": m.stored(ring)})


def test_counts_brute_force():
    rnd = Lcg(99)
    bad = 0
    for trial in range(3000):
        n = rnd.below(40)
        mode = trial % 4
        # mode 0: oldest near the wrap
        oldest = (M - rnd.below(60)) & M if mode == 0 else rnd.next() * 251 & M
        if mode == 1:
            first = (oldest + rnd.below(80) - 40) & M
            last = (first + rnd.below(80)) & M
        elif mode == 2:  # huge ranges that wrap round
            first = (oldest + rnd.below(80) - 40) & M
            last = (first - 1 - rnd.below(80)) & M
        else:
            first = (oldest + rnd.below(120) - 60) & M
            last = (oldest + rnd.below(120) - 60) & M
        want = 0
        for j in range(n):
            if in_range((oldest + j) & M, first, last):
                want += 1
        if in_range_count(first, last, oldest, n) != want:
            bad += 1
            if bad < 5:
                print("mismatch", first, last, oldest, n, want)
    eq(bad, 0, "in_range_count against brute force, 3000 cases")


def test_misc():
    eq(capacity_for(600, 100), 6000, "10 min at 10 Hz")
    eq(capacity_for(600, 40), 15000, "10 min at 25 Hz")
    eq(sdiff(M, 1), 2, "sdiff across the wrap")
    eq(sdiff(1, M), -2, "negative sdiff across the wrap")
    ring = RawRing(capacity=10)
    for bad in ((0, 1), (65536, 1), (100, 256), (100, -1)):
        try:
            ring.append(0, bad[1], bad[0], 0, 0, 0, 0)
            check(False, "append accepted period/boot " + repr(bad))
        except ValueError:
            check(True, "")
    eq(ring.count, 0, "rejected appends store nothing")
    eq(ring.request(0, M), 0, "empty ring: NO_RECORDS")
    eq(ring.oldest_seq, ring.next_seq, "empty ring: oldest == next")
    for i in range(5):
        ring.append(i, 0, 1, 0, 0, 0, 0)
    ring.clear()
    eq((ring.count, ring.next_seq), (0, 5), "clear keeps seq counting")
    seq = ring.append(1000, 0, 1, 0, 0, 0, 0)
    eq(seq, 5, "seq after clear")
    eq(ring.sample_time(5), (1000, 0, 1), "run restarts after clear")
    big = RawRing()
    eq(big.ram_bytes(), 13 + 7 * 6000 + 12 * 128, "default ring RAM")


test_main()
test_evict_while_serving()
test_abort()
test_run_table_full()
test_counts_brute_force()
test_misc()
with open(OUT + "/ring_cases.json", "w") as f:
    json.dump({"cases": CASES}, f)
print("CASES", len(CASES))
done("logs_ring")
