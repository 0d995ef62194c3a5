"""Summary flash log on a real filesystem: append, REQUEST_SUMMARY from N, wrap-around, restart,
torn writes (file cut mid-record, failing last record, cut at a segment roll), flipped bytes in the
middle (counted, skipped, later records still served), damaged first records and whole segments,
a record index wrapping at 2^32, failed writes, and the default 8 x 1440 layout over more than
7 days. Summary packets go to <dir>/flash_cases.json for the host decoder.
Usage: logs_flash.py <dir>"""

import binascii
import json
import os
import struct

from logs_common import Lcg, check, done, eq, file_size, rmtree, workdir
from wearable import proto
from wearable.flashlog import REC_SIZE, FlashLog

M = 0xFFFFFFFF
WORK = workdir()
CASES = []
PKT = bytearray(proto.MAX_PAYLOAD)


def fresh(name):
    d = WORK + "/" + name
    rmtree(d)
    return d


def record(i):
    """The fields of minute i (varied, all valid)."""
    wear = (i * 7) % 61
    strain = wear // 3
    mean = proto.NO_VALUE if wear == 0 else (i * 37) % 4000 - 1000
    mx = proto.NO_VALUE if wear == 0 else mean + 250
    return [1700000000 + 60 * i, (i // 100) & 0xFF, wear, mean, mx, strain, i % 4, i & 0x0F]


class Model:
    def __init__(self):
        self.recs = {}

    def add(self, log, i):
        idx = log.append(*record(i))
        if idx >= 0:
            self.recs[idx] = record(i)
        return idx


def parse(pkt, n):
    vt, count, first = struct.unpack_from("<BBI", pkt, 0)
    check(vt == 0x13, "summary ver_type")
    check(n == 6 + 13 * count, "summary length")
    out = []
    for i in range(count):
        r = [(first + i) & M]
        r.extend(struct.unpack_from("<IBBhhBBB", pkt, 6 + 13 * i))
        out.append(r)
    return out


def serve(log, from_record, mtu, between=None):
    avail = log.request(from_record)
    packets = []
    got = []
    k = 0
    while log.busy:
        n = log.fill(PKT, mtu)
        k += 1
        if n:
            check(n <= proto.payload_max(mtu), "packet fits the MTU")
            packets.append(binascii.hexlify(bytes(PKT[:n])).decode())
            got += parse(PKT, n)
            if between is not None:
                between()
        if k > 100000:
            check(False, "request ends")
            break
    return avail, packets, got


def expect(model, indices):
    return [[i] + model.recs[i] for i in indices]


def case(name, log, model, from_record, mtu, want_indices):
    avail, packets, got = serve(log, from_record, mtu)
    want = expect(model, want_indices)
    eq(got, want, name + " records")
    eq(log.sent, len(want), name + " sent")
    if packets:
        CASES.append({"name": name, "packets": packets, "expected": want})
    return avail


def seg(d, k):
    return f"{d}/sum{k:02d}.bin"


def patch(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def append_raw(path, data):
    with open(path, "ab") as f:
        f.write(data)


def cut(path, size):
    """Make the file `size` bytes long (MicroPython has no truncate: rewrite it)."""
    with open(path, "rb") as f:
        data = f.read(size)
    with open(path, "wb") as f:
        f.write(data)


def test_basic():
    d = fresh("basic")
    log = FlashLog(d, segments=4, per_segment=10)
    eq((log.next_record, log.oldest_record, log.records()), (0, 0, 0), "empty log")
    eq(log.request(0), 0, "empty log: NO_RECORDS")
    m = Model()
    for i in range(25):
        eq(m.add(log, i), i, "append index " + str(i))
    eq((log.next_record, log.oldest_record), (25, 0), "after 25")
    eq(file_size(seg(d, 0)), 10 * REC_SIZE, "segment 0 full")
    eq(file_size(seg(d, 2)), 5 * REC_SIZE, "segment 2 half")
    for mtu in (23, 185, 517):
        eq(case("all@" + str(mtu), log, m, 0, mtu, range(25)), 25, "available at " + str(mtu))
    eq(case("from 13", log, m, 13, 185, range(13, 25)), 12, "from N")
    eq(case("from next", log, m, 25, 185, []), 0, "from next_record: NO_RECORDS")
    eq(case("from far ahead", log, m, 1000, 185, []), 0, "ahead: NO_RECORDS")
    out = bytearray(13)
    check(log.read(7, out), "read(7)")
    eq(list(struct.unpack("<IBBhhBBB", out)), record(7), "read(7) bytes")
    check(not log.read(25, out), "read(next_record)")
    # wrap-around: 4 x 10, so records 40.. reuse segment 0
    for i in range(25, 47):
        m.add(log, i)
    eq((log.next_record, log.oldest_record), (47, 10), "after wrap")
    check(log.records() >= 30, "at least (segments - 1) * per_segment kept")
    eq(case("after wrap from 0", log, m, 0, 185, range(10, 47)), 37, "from before oldest")
    # restart rebuilds the same state
    log.close()
    log2 = FlashLog(d, segments=4, per_segment=10)
    eq((log2.next_record, log2.oldest_record, log2.torn, log2.crc_errors), (47, 10, 0, 0),
       "restart")
    check(log2.scan_reads <= 4 + 1, "clean boot scan reads one record per segment + the tail")
    eq(m.add(log2, 47), 47, "append after restart continues the index")
    case("after restart", log2, m, 40, 517, range(40, 48))
    # wrap while serving: the cursor's segment is reused, the rest is still sent
    log3 = FlashLog(d, segments=4, per_segment=10)

    def flood():
        if log3.sent == 1:
            for i in range(48, 60):
                m.add(log3, i)

    avail, _, got = serve(log3, 10, 23, flood)
    eq(avail, 38, "available before the flood")
    want = [10]
    want.extend(range(20, 48))
    eq([r[0] for r in got], want, "records reused while serving skipped")
    log3.close()


def test_torn():
    d = fresh("torn")
    log = FlashLog(d, segments=3, per_segment=8)
    m = Model()
    for i in range(12):
        m.add(log, i)
    log.close()
    # 1. a record cut short at the end of the newest segment
    append_raw(seg(d, 1), b"\x4e\x01\x0c\x00\x00\x00garbage")
    log = FlashLog(d, segments=3, per_segment=8)
    eq((log.torn, log.next_record, log.oldest_record), (1, 12, 0), "cut record ignored")
    eq(m.add(log, 12), 12, "append after a cut record")
    eq(file_size(seg(d, 1)), 5 * REC_SIZE, "cut record overwritten")
    case("after cut record", log, m, 0, 185, range(13))
    log.close()
    # 2. the last record complete in size but failing its CRC (FAT can leave this)
    patch(seg(d, 1), 4 * REC_SIZE + 10, b"\xff")
    log = FlashLog(d, segments=3, per_segment=8)
    eq((log.torn, log.next_record), (1, 12), "failing last record ignored")
    m.recs.pop(12)
    eq(m.add(log, 12), 12, "its index is written again")
    case("after failing last record", log, m, 0, 185, range(13))
    log.close()
    # 3. a flipped byte in the middle: counted, skipped, later records still served
    patch(seg(d, 0), 3 * REC_SIZE + 8, b"\x00\x00")
    log = FlashLog(d, segments=3, per_segment=8)
    eq((log.torn, log.crc_errors), (0, 0), "boot does not read middle records")
    want = [i for i in range(13) if i != 3]
    case("skip flipped", log, m, 0, 185, want)
    eq(log.crc_errors, 1, "crc error counted")
    eq(log.request(0), 13, "the available count covers indices")
    _, packets, _ = serve(log, 0, 517)
    eq(len(packets), 2, "a damaged record ends a packet")
    eq(log.crc_errors, 2, "met again, counted again")
    out = bytearray(13)
    check(not log.read(3, out), "read of the damaged record")
    eq(log.crc_errors, 3, "read() counts too")
    # 4. the first record of a segment damaged: its base comes from the next one
    log.close()
    patch(seg(d, 1), 0, b"\x00")
    log = FlashLog(d, segments=3, per_segment=8)
    eq((log.next_record, log.oldest_record), (13, 0), "base from the second record")
    case("first record damaged", log, m, 5, 185, [5, 6, 7, 9, 10, 11, 12])
    log.close()
    # 5. a whole segment of garbage: reported, the rest served
    with open(seg(d, 0), "wb") as f:
        f.write(b"\xa5" * (8 * REC_SIZE))
    log = FlashLog(d, segments=3, per_segment=8)
    eq((log.bad_segments, log.oldest_record, log.next_record), (1, 8, 13), "garbage segment")
    case("garbage segment", log, m, 0, 185, list(range(9, 13)))
    log.close()


def test_torn_at_roll():
    d = fresh("roll")
    log = FlashLog(d, segments=3, per_segment=5)
    m = Model()
    for i in range(10):
        m.add(log, i)
    log.close()
    # the reset hit the first write into the next (reused) segment: a short file
    with open(seg(d, 2), "wb") as f:
        f.write(b"\x4e\x01\x0a\x00")
    log = FlashLog(d, segments=3, per_segment=5)
    eq((log.torn, log.next_record, log.oldest_record), (1, 10, 0), "cut first record at a roll")
    eq(m.add(log, 10), 10, "append at the roll")
    eq(file_size(seg(d, 2)), REC_SIZE, "segment restarted")
    case("after roll cut", log, m, 0, 517, range(11))
    log.close()
    # same, reusing a full old segment: the truncation happened, the write did not
    for i in range(11, 15):
        m.add(log, i)
    log.close()  # segments: 0 -> 0..4, 1 -> 5..9, 2 -> 10..14 (full)
    with open(seg(d, 0), "wb") as f:
        f.write(b"\x4e")
    log = FlashLog(d, segments=3, per_segment=5)
    eq((log.torn, log.oldest_record, log.next_record), (1, 5, 15), "truncated oldest segment")
    eq(m.add(log, 15), 15, "append into the truncated segment")
    case("after truncated reuse", log, m, 0, 185, range(5, 16))
    log.close()


def test_index_wrap():
    d = fresh("wrap")
    first = M - 14
    log = FlashLog(d, segments=4, per_segment=10, first_index=first)
    m = Model()
    for i in range(30):
        eq(m.add(log, i), (first + i) & M, "index " + str(i))
    eq((log.oldest_record, log.next_record), (first, 15), "index wrapped")
    want = [(first + i) & M for i in range(30)]
    case("index wrap", log, m, first, 185, want)
    case("index wrap from 3", log, m, 3, 185, want[18:])
    eq(log.request((first - 100) & M), 30, "from before oldest, across the wrap")
    log.close()
    log = FlashLog(d, segments=4, per_segment=10)
    eq((log.oldest_record, log.next_record), (first, 15), "restart across the wrap")
    log.close()


def test_rejects_and_errors():
    d = fresh("errors")
    log = FlashLog(d, segments=3, per_segment=4)
    eq(log.append(0, 0, 61, 0, 0, 0, 0, 0), -1, "wear_s 61 rejected")
    eq(log.append(0, 0, 10, 0, 0, 11, 0, 0), -1, "strain_s > wear_s rejected")
    buf = bytearray(19)
    proto.pack_summary_record(buf, 0, 60, 1, 60, 100, 200, 60, 1, 0)
    eq(log.append_packed(buf, 6), 0, "append_packed")
    buf[6 + 5] = 70
    eq(log.append_packed(buf, 6), -1, "append_packed with wear_s 70")
    eq(log.rejected, 3, "rejected counted")
    eq(log.next_record, 1, "rejections use no index")
    for i in range(3):
        log.append(*record(i))
    # the next segment's file name is taken by a directory: the write fails, counted
    os.mkdir(seg(d, 1))
    eq(log.append(*record(9)), -1, "write into an unusable segment")
    eq(log.write_errors, 1, "write error counted")
    eq(log.next_record, 4, "failed write uses no index")
    os.rmdir(seg(d, 1))
    eq(log.append(*record(9)), 4, "writes resume")
    log.close()
    # no directory yet: created
    d2 = fresh("newdir")
    log = FlashLog(d2, segments=2, per_segment=2)
    eq(log.append(*record(1)), 0, "log in a new directory")
    log.close()


def test_flush_policy():
    d = fresh("flush")
    log = FlashLog(d, segments=3, per_segment=10)
    for i in range(7):
        log.append(*record(i))
    # a reset without close(): every record was flushed as it was written
    again = FlashLog(d, segments=3, per_segment=10)
    eq((again.next_record, again.torn), (7, 0), "flushed per record: a reset loses nothing")
    again.close()
    log.close()
    d = fresh("flush5")
    log = FlashLog(d, segments=3, per_segment=10, flush_every=5)
    for i in range(12):
        log.append(*record(i))
    eq(log.flush(), True, "explicit flush")
    eq(log.flush(), True, "flush with nothing pending")
    log.close()
    log = FlashLog(d, segments=3, per_segment=10, flush_every=5)
    eq((log.next_record, log.oldest_record), (12, 0), "flush_every=5: close commits the rest")
    log.close()
    try:
        FlashLog(d, flush_every=0)
        check(False, "flush_every=0 accepted")
    except ValueError:
        check(True, "")


def test_random_ops():
    """Appends, restarts, cut last records, flipped bytes and requests in a random order, against
    a model that knows which indices are kept and which are damaged."""
    S, R = 4, 6
    d = fresh("random")
    log = FlashLog(d, segments=S, per_segment=R)
    rnd = Lcg(4242)
    kept = {}  # index -> fields
    bad = {}  # damaged indices still on flash
    nxt = 0
    torn = 0
    crc = 0
    bad_runs = 0
    for step in range(600):
        op = rnd.below(100)
        if op < 55 or nxt < 3:
            if nxt % R == 0:  # this append truncates the segment it reuses
                slot = (nxt // R) % S
                for j in list(kept):
                    if (j // R) % S == slot:
                        kept.pop(j)
                        bad.pop(j, None)
            eq(log.append(*record(nxt)), nxt, "random append " + str(step))
            kept[nxt] = record(nxt)
            nxt += 1
        elif op < 65:
            log.close()
            log = FlashLog(d, segments=S, per_segment=R)
        elif op < 75:
            last = nxt - 1
            if last not in kept or (last - 1) in bad or last in bad:
                continue
            log.close()
            path = seg(d, (last // R) % S)
            cut(path, (last % R) * REC_SIZE + 1 + rnd.below(REC_SIZE - 1))
            kept.pop(last)
            nxt -= 1
            torn += 1
            log = FlashLog(d, segments=S, per_segment=R)
        elif op < 82:
            cands = [j for j in sorted(kept) if j < nxt - 3 and j not in bad]
            if not cands:
                continue
            j = cands[rnd.below(len(cands))]
            slot = (j // R) % S
            if any((k // R) % S == slot for k in bad):
                continue  # at most one damaged record per segment
            log.close()
            patch(seg(d, slot), (j % R) * REC_SIZE + 6 + rnd.below(17), b"\x5a")
            bad[j] = True
            log = FlashLog(d, segments=S, per_segment=R)
        else:
            oldest = min(kept) if kept else nxt
            frm = max(0, oldest + rnd.below(nxt - oldest + 10) - 5)
            mtu = (23, 60, 185)[rnd.below(3)]
            want = [j for j in sorted(kept) if j >= frm]
            avail, _, got = serve(log, frm, mtu)
            exp = [[j] + kept[j] for j in want if j not in bad]
            if [r[0] for r in got] != [r[0] for r in exp] or got != exp:
                bad_runs += 1
                print("step", step, "from", frm, "got", [r[0] for r in got], "want",
                      [r[0] for r in exp])
            eq(avail, max(0, nxt - max(frm, oldest)), "random available")
            crc += len([j for j in want if j in bad])
        eq((log.next_record, log.oldest_record), (nxt, min(kept) if kept else nxt),
           "random state at step " + str(step))
        if log.next_record != nxt:
            break
    eq(bad_runs, 0, "random requests")
    log.close()
    log = FlashLog(d, segments=S, per_segment=R)
    print("random ops: torn", torn, "crc", crc, "kept", len(kept), "bad", len(bad))
    check(torn >= 10 and crc >= 10, "the random run exercised cuts and damage")
    log.close()


def test_default_layout():
    d = fresh("default")
    log = FlashLog(d)
    eq((log.segments, log.per_segment), (8, 1440), "default layout")
    n = 8 * 1440 + 100
    for i in range(n):
        r = log.append(1700000000 + 60 * i, 1, 60, 100, 200, 0, 0, 1)
        if r != i:
            eq(r, i, "append in default layout")
            break
    eq(log.next_record, n, "next after 8 days")
    eq(log.oldest_record, 1440, "oldest after one segment was reused")
    check(log.records() >= 10080, "at least 7 days kept")
    log.close()
    log = FlashLog(d)
    eq((log.next_record, log.oldest_record, log.torn), (n, 1440, 0), "restart, default layout")
    check(log.scan_reads <= 9, "boot scan bounded: " + str(log.scan_reads) + " reads")
    eq(log.request(0), n - 1440, "REQUEST_SUMMARY from 0 covers what is kept")
    k = 0
    while log.busy:
        if log.fill(PKT, 517):
            k += 1
    eq(log.sent, n - 1440, "all kept records served")
    eq(k, (n - 1440 + 37) // 38, "38 records per packet at MTU 517")
    log.close()


test_basic()
test_torn()
test_torn_at_roll()
test_index_wrap()
test_rejects_and_errors()
test_flush_policy()
test_random_ops()
test_default_layout()
with open(WORK + "/flash_cases.json", "w") as f:
    json.dump({"cases": CASES}, f)
print("CASES", len(CASES))
done("logs_flash")
