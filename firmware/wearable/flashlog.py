"""Per-minute summary records kept in flash across reboots; serves REQUEST_SUMMARY.

docs/firmware-storage.md has the format byte by byte, the write pattern and the recovery rules.

Storage: a fixed set of `segments` files (<dir>/sum00.bin ...), each an append-only array of up to
`per_segment` records of 23 bytes. Record k of a segment whose first record has index B has index
B + k, so a record's place follows from its index. The segments are used in turn; when the newest
is full, the next one (the oldest, or an unused one) is truncated and reused, so at least
(segments - 1) * per_segment records are always kept (the defaults, 8 x 1440, keep 7 to 8 days).

Record (little-endian):

    0  u8   magic 0x4E ("N")
    1  u8   format 1
    2  u32  record index
    6  13   the SUMMARY record exactly as on the wire (proto.pack_summary_record writes it here)
    19 u32  CRC-32 (binascii.crc32) of bytes 0..18

A record checks out when magic, format and index are right and the CRC-32 of all 23 bytes equals
the CRC-32 residue 0x2144DF1C (so no 32-bit value needs unpacking). Boot does a bounded scan:
one stat and one record read per segment (more only where a segment's first record is damaged),
plus the newest segment's last record. A partial or failing last record (a write cut by a reset)
is ignored, counted in `torn`, and overwritten by the next append. A failing record anywhere else
is found when it is read: counted in `crc_errors` each time it is met, and skipped.

Writes: one 23-byte record per minute, written at its slot through a file handle kept open on the
current segment (one handle per file, also used to read that segment) and flushed at once; with
flush_every=N only every Nth record is flushed, which divides the filesystem commits (and, on
littlefs, the block copies) by N at the price of up to N-1 minutes lost to a reset.

    log = FlashLog("log")                        # scans the files (bounded), never raises on damage
    idx = log.append_packed(buf, 6)              # a 13-byte record from minute_log.pack(), or
    idx = log.append(start, boot_id, wear_s, mean_cdeg, max_cdeg, strain_s, episodes, flags)
    if log.request(from_record) == 0:            # REQUEST_SUMMARY
        answer NO_RECORDS
    while log.busy:
        n = log.fill(buf, mtu)                   # one SUMMARY packet, or 0
        if n:
            notify(buf[:n])
    answer SUCCESS with (log.sent, log.next_record)
"""

import binascii
import os
import struct
from array import array

from wearable import proto

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_M = const(0xFFFFFFFF)
_HALF = const(0x80000000)
REC_SIZE = const(23)
MAGIC = const(0x4E)
FORMAT = const(1)
CRC_RESIDUE = const(0x2144DF1C)  # CRC-32 of any data followed by its own little-endian CRC-32
_PAY = const(6)  # payload offset in a record == proto.SUMMARY_HEADER_SIZE
_PAY_SIZE = const(13)  # proto.SUMMARY_RECORD_SIZE
DEFAULT_SEGMENTS = const(8)
DEFAULT_PER_SEGMENT = const(1440)  # one day of minutes per segment
_SKIP_BUDGET = const(64)  # record reads one fill() may spend on records it cannot send


def sdiff(a, b):
    """Signed modular difference b - a of two u32 counters."""
    return ((b - a + _HALF) & _M) - _HALF


class FlashLog:
    def __init__(self, directory="log", segments=DEFAULT_SEGMENTS, per_segment=DEFAULT_PER_SEGMENT,
                 first_index=0, flush_every=1):
        if segments < 2 or per_segment < 1 or per_segment > 0xFFFF or flush_every < 1:
            raise ValueError("need segments >= 2, 1 <= per_segment <= 65535, flush_every >= 1")
        self.flush_every = flush_every
        self._pending = 0  # records written since the last flush
        self.directory = directory
        self.segments = segments
        self.per_segment = per_segment
        self._names = [directory + "/sum%02d.bin" % k for k in range(segments)]
        z = [0] * segments
        self._base = array("I", z)  # index of record 0 of each segment
        self._count = array("H", z)  # records in each segment (0: unused or unreadable)
        self._rec = bytearray(REC_SIZE)  # record being written
        self._body = memoryview(self._rec)[:19]
        self._rrec = bytearray(REC_SIZE)  # record being read
        self._wf = None  # handle on the write segment (read + write)
        self._rf = None  # handle on another segment, for reading
        self._rslot = -1
        self._lpos = 0  # second result of _locate()
        self._wslot = 0
        self._wfresh = True  # the write segment must be truncated before its first record
        self.next_record = first_index & _M
        self.oldest_record = self.next_record
        # counters, for status and logs
        self.torn = 0  # partial or failing last records found at boot (ignored, then overwritten)
        self.crc_errors = 0  # damaged records met while reading (skipped)
        self.bad_segments = 0  # segment files with data but no readable record, seen at boot
        self.write_errors = 0  # appends that failed (OSError or a short write)
        self.rejected = 0  # appends refused for out-of-range fields
        self.scan_reads = 0  # records read by the last boot scan
        self.appended = 0
        # REQUEST_SUMMARY in progress
        self.busy = False
        self.sent = 0
        self._cur = 0
        self._end = 0
        try:
            os.mkdir(directory)
        except OSError:
            pass  # exists (any other trouble shows up as failed writes, counted)
        self.scan()

    # --- files -------------------------------------------------------------------------------
    def flush(self):
        """Commit records still waiting for their flush (flush_every > 1): call before a planned
        reset or deep sleep. Returns False (counted in write_errors) if the filesystem refused."""
        if self._wf is None or self._pending == 0:
            return True
        try:
            self._wf.flush()
        except OSError:
            self.write_errors += 1
            return False
        self._pending = 0
        return True

    def close(self):
        self.flush()
        self._pending = 0
        for f in (self._wf, self._rf):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
        self._wf = None
        self._rf = None
        self._rslot = -1

    def _handle(self, slot):
        # An open handle able to read `slot`, or None.
        if slot == self._wslot and not self._wfresh:
            return self._writer()
        if self._rslot != slot:
            if self._rf is not None:
                self._rf.close()
                self._rf = None
                self._rslot = -1
            try:
                self._rf = open(self._names[slot], "rb")
            except OSError:
                return None
            self._rslot = slot
        return self._rf

    def _writer(self):
        if self._wf is None:
            name = self._names[self._wslot]
            if self._wfresh:
                if self._rslot == self._wslot:
                    self._rf.close()
                    self._rf = None
                    self._rslot = -1
                open(name, "wb").close()  # truncate: the old segment's records go now
                self._count[self._wslot] = 0
                self._wfresh = False
                self._update_oldest()
            try:
                self._wf = open(name, "r+b")
            except OSError:
                # Missing although it was scanned (removed behind our back): start it afresh.
                open(name, "wb").close()
                self._count[self._wslot] = 0
                self._update_oldest()
                self._wf = open(name, "r+b")
        return self._wf

    def _load(self, slot, pos, idx):
        # Read record `pos` of `slot` into _rrec; True if it is a good record with index idx
        # (idx < 0: any index). Never raises.
        f = self._handle(slot)
        if f is None:
            return False
        r = self._rrec
        try:
            f.seek(pos * REC_SIZE)
            if f.readinto(r) != REC_SIZE:
                return False
        except OSError:
            return False
        if r[0] != MAGIC or r[1] != FORMAT or binascii.crc32(r) != CRC_RESIDUE:
            return False
        if idx < 0:
            return True
        return (r[2] | r[3] << 8 | r[4] << 16 | r[5] << 24) == idx

    def _stored_index(self):
        r = self._rrec
        return r[2] | r[3] << 8 | r[4] << 16 | r[5] << 24

    # --- boot scan ---------------------------------------------------------------------------
    def scan(self):
        """Rebuild the state from the files. Bounded: a few reads per segment unless a segment's
        first records are damaged (then at most per_segment reads for that segment)."""
        self.close()
        self._wslot = -1  # while scanning, every segment is read through the read handle
        self.scan_reads = 0
        sizes = [0] * self.segments
        newest = -1
        ref = 0
        for s in range(self.segments):
            self._count[s] = 0
            try:
                size = os.stat(self._names[s])[6]
            except OSError:
                continue
            sizes[s] = size
            n = size // REC_SIZE
            if n > self.per_segment:
                n = self.per_segment
            base = -1
            for pos in range(n):
                self.scan_reads += 1
                if self._load(s, pos, -1):
                    base = (self._stored_index() - pos) & _M
                    break
            if base < 0:
                continue
            self._base[s] = base
            self._count[s] = n
            if newest < 0:
                ref = base
                newest = s
            elif sdiff(ref, base) > sdiff(ref, self._base[newest]):
                newest = s
        if newest >= 0:
            # The newest segment's last record: a reset during a write leaves it failing. Ignore
            # it; the next append overwrites it.
            n = self._count[newest]
            self.scan_reads += 1
            if not self._load(newest, n - 1, (self._base[newest] + n - 1) & _M):
                self.torn += 1
                n -= 1
                self._count[newest] = n
            self._wslot = newest
            self._wfresh = False
            self.next_record = (self._base[newest] + n) & _M
            if n >= self.per_segment:
                self._wslot = (newest + 1) % self.segments
                self._wfresh = True
        else:
            self._wslot = 0
            self._wfresh = True
        # Bytes that hold no readable record: a cut write where the log was being written, damage
        # anywhere else.
        for s in range(self.segments):
            size = sizes[s]
            if s == self._wslot:
                if size % REC_SIZE or (size and self._count[s] == 0):
                    self.torn += 1
            elif size and self._count[s] == 0:
                self.bad_segments += 1
        self._update_oldest()
        self.close()

    def _update_oldest(self):
        nxt = self.next_record
        best = -1
        for s in range(self.segments):
            if self._count[s] == 0:
                continue
            age = sdiff(self._base[s], nxt)
            if age > best:
                best = age
                self.oldest_record = self._base[s]
        if best < 0:
            self.oldest_record = nxt

    # --- writing -----------------------------------------------------------------------------
    def append(self, start, boot_id, wear_s, mean_flexion_cdeg, max_flexion_cdeg, strain_s,
               episodes, flags):
        """Store one minute; returns its record index, or -1 (counted in rejected/write_errors)."""
        try:
            proto.pack_summary_record(self._rec, 0, start, boot_id, wear_s, mean_flexion_cdeg,
                                      max_flexion_cdeg, strain_s, episodes, flags)
        except ValueError:
            self.rejected += 1
            return -1
        return self._commit()

    def append_packed(self, buf, off=proto.SUMMARY_HEADER_SIZE):
        """Store the 13-byte wire record at buf[off:off+13] (as minute_log.pack() leaves it)."""
        wear = buf[off + 5]
        if wear > 60 or buf[off + 10] > wear:
            self.rejected += 1
            return -1
        r = self._rec
        for k in range(_PAY_SIZE):
            r[_PAY + k] = buf[off + k]
        return self._commit()

    def _commit(self):
        r = self._rec
        idx = self.next_record
        struct.pack_into("<BBI", r, 0, MAGIC, FORMAT, idx)
        struct.pack_into("<I", r, 19, binascii.crc32(self._body))
        if not self._wfresh and self._count[self._wslot] >= self.per_segment:
            self._roll()
        try:
            f = self._writer()
            f.seek(self._count[self._wslot] * REC_SIZE)
            n = f.write(r)
            if n == REC_SIZE:
                self._pending += 1
                if self._pending >= self.flush_every:
                    f.flush()
                    self._pending = 0
        except OSError:
            n = -1
        if n != REC_SIZE:
            self.write_errors += 1
            self._drop_writer()
            return -1
        s = self._wslot
        if self._count[s] == 0:
            self._base[s] = idx
        self._count[s] += 1
        self.next_record = (idx + 1) & _M
        if self._count[s] == 1:  # oldest only moves when a segment is (re)started
            self._update_oldest()
        self.appended += 1
        return idx

    def _roll(self):
        self._drop_writer()
        self._wslot = (self._wslot + 1) % self.segments
        self._wfresh = True

    def _drop_writer(self):
        self._pending = 0  # close() commits them
        if self._wf is not None:
            try:
                self._wf.close()
            except OSError:
                pass
            self._wf = None

    # --- reading -----------------------------------------------------------------------------
    def records(self):
        """Number of record indices between oldest_record and next_record."""
        return (self.next_record - self.oldest_record) & _M

    def _locate(self, idx):
        # Slot holding stored index idx, with its position in self._lpos; or -1, with the
        # distance to the next stored segment start after idx in self._lpos (_HALF: none).
        # Results go to an attribute, not a tuple: this runs once per record served.
        nearest = _HALF
        for s in range(self.segments):
            c = self._count[s]
            if c == 0:
                continue
            d = (idx - self._base[s]) & _M
            if d < c:
                self._lpos = d
                return s
            ahead = sdiff(idx, self._base[s])
            if 0 < ahead < nearest:
                nearest = ahead
        self._lpos = nearest
        return -1

    def read(self, idx, out, off=0):
        """Copy the 13-byte wire record `idx` into out[off:off+13]. False if it is not stored or
        fails its check (then counted in crc_errors)."""
        s = self._locate(idx & _M)
        if s < 0:
            return False
        if not self._load(s, self._lpos, idx & _M):
            self.crc_errors += 1
            return False
        r = self._rrec
        for k in range(_PAY_SIZE):
            out[off + k] = r[_PAY + k]
        return True

    def request(self, from_record):
        """Start serving max(from_record, oldest_record) .. next_record - 1. Returns how many
        record indices that covers; 0 means NO_RECORDS and nothing is started."""
        self.abort()
        self.sent = 0
        start = from_record & _M
        if sdiff(self.oldest_record, start) < 0:
            start = self.oldest_record
        n = sdiff(start, self.next_record)
        if n <= 0:
            return 0
        self._cur = start
        self._end = self.next_record
        self.sent = 0
        self.busy = True
        return n

    def abort(self):
        self.busy = False

    def fill(self, pkt, mtu, limit=proto.MAX_SUMMARY_RECORDS):
        """Write the next SUMMARY packet of the request into pkt and return its length; 0 when
        nothing was sent by this call (the request is over once busy is False). Records in one
        packet have consecutive indices, so a damaged or missing record ends a packet."""
        if not self.busy:
            return 0
        per = proto.summary_records_per_packet(mtu)
        if limit < per:
            per = limit
        cur = self._cur
        if sdiff(self.oldest_record, cur) < 0:  # segments were reused meanwhile
            cur = self.oldest_record
        first = cur
        k = 0
        budget = per + _SKIP_BUDGET
        while k < per and budget > 0 and sdiff(cur, self._end) > 0:
            budget -= 1
            s = self._locate(cur)
            pos = self._lpos
            if s < 0:
                if k:
                    break
                if pos >= _HALF or sdiff(cur, self._end) <= pos:
                    cur = self._end
                    break
                cur = (cur + pos) & _M
                first = cur
                continue
            if not self._load(s, pos, cur):
                self.crc_errors += 1
                cur = (cur + 1) & _M
                if k:
                    break
                first = cur
                continue
            r = self._rrec
            o = proto.SUMMARY_HEADER_SIZE + proto.SUMMARY_RECORD_SIZE * k
            for j in range(_PAY_SIZE):
                pkt[o + j] = r[_PAY + j]
            k += 1
            cur = (cur + 1) & _M
        self._cur = cur
        if sdiff(cur, self._end) <= 0:
            self.busy = False
        if k == 0:
            return 0
        self.sent += k
        return proto.pack_summary_header(pkt, k, first)
