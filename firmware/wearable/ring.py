"""Raw posture samples in RAM, served back by sequence range (REQUEST_RAW, docs/protocol.md §10.3).

docs/firmware-storage.md describes the layout and its memory cost. In short:

* One preallocated bytearray holds `capacity` samples of 7 bytes each, in the wire's own sample
  layout. Slot i sits at offset 13 + 7*i, so proto.pack_sample(buf, i, ...) stores a sample with
  the encoder the live stream uses (same clamping and flag masking). The first 13 bytes are unused.
* Samples are contiguous in seq: the ring holds oldest_seq .. next_seq - 1 (mod 2^32) and a new
  sample overwrites the oldest one when the ring is full.
* Time is not stored per sample. A "run" is a stretch of samples whose t_ms advances by exactly
  period_ms from one sample to the next, within one boot_id. A run table (three preallocated
  array('I')) keeps (first seq, t0, period | boot << 16) per run; sample seq of a run has
  t_ms = t0 + (seq - first seq) * period (mod 2^32). A run ends when the caller's t_ms, period
  or boot_id does not continue it, so give append() the sample's grid time (what the live packet
  carries), not a jittery clock reading. When the run table is full, the whole oldest run is
  dropped early (counted in `run_evicted`).

Appending and serving allocate nothing (measured by tests/firmware/logs_mem.py on the unix port):
a backfill packet is filled by a byte loop and proto.pack_samples_header.

    ring = RawRing(capacity=6000)                  # 10 min at 10 Hz: 42 KB
    seq = ring.append(t_ms, boot_id, period_ms, flex_cdeg, lat_cdeg, rot_cdeg, flags)
    ...
    if ring.request(first_seq, last_seq) == 0:     # REQUEST_RAW
        answer NO_RECORDS
    while ring.busy:
        n = ring.fill(buf, mtu)                    # one SAMPLES_BACKFILL packet, or 0
        if n:
            notify(buf[:n])
    answer SUCCESS with (ring.sent, ring.oldest_seq)

On 32-bit ports integers of 2^30 and above are heap objects: seq passes 2^30 after 3.4 years at
10 Hz, and a t_ms above 2^30 (12.4 days of uptime) makes the run check allocate a few bytes per
sample there. The unix port used by the tests has 62-bit small integers.
"""

from array import array

from wearable import proto

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_M = const(0xFFFFFFFF)
_HALF = const(0x80000000)
_HDR = const(13)  # proto.SAMPLE_HEADER_SIZE: slot i at _HDR + 7*i, as pack_sample writes it
_SZ = const(7)  # proto.SAMPLE_SIZE

DEFAULT_CAPACITY = const(6000)  # 10 minutes at the default 100 ms period
DEFAULT_RUNS = const(128)


def capacity_for(seconds, period_ms):
    """Slots needed to keep `seconds` of samples at `period_ms`."""
    return (seconds * 1000 + period_ms - 1) // period_ms


def sdiff(a, b):
    """Signed modular difference b - a of two u32 counters (docs/protocol.md §4)."""
    return ((b - a + _HALF) & _M) - _HALF


def in_range_count(first, last, oldest, n):
    """How many of the n seqs oldest .. oldest+n-1 lie in the inclusive modular range first..last.

    Position j of the stored window is in the range when (c + j) mod 2^32 <= span, with
    c = oldest - first: a piece before c + j reaches 2^32 and, when the range wraps round past
    oldest, a second piece from j0 = 2^32 - c on. The two cannot overlap (span < 2^32).
    """
    span = (last - first) & _M  # the range holds span + 1 seqs
    c = (oldest - first) & _M
    total = 0
    if c <= span:
        k = span - c + 1
        total = n if n < k else k
    j0 = (first - oldest) & _M
    if c != 0 and j0 < n:
        k = n - j0
        total += k if k <= span else span + 1
    return total


class RawRing:
    def __init__(self, capacity=DEFAULT_CAPACITY, max_runs=DEFAULT_RUNS, first_seq=0):
        if capacity < 1:
            raise ValueError("capacity")
        if max_runs < 2:
            raise ValueError("max_runs must be at least 2")
        self.capacity = capacity
        self.max_runs = max_runs
        self._buf = bytearray(_HDR + _SZ * capacity)
        self._head = 0  # slot the next sample goes to
        self.count = 0
        self.next_seq = first_seq & _M
        z = [0] * max_runs
        self._rseq = array("I", z)  # first seq of each run
        self._rt0 = array("I", z)  # t_ms of that first seq
        self._rpb = array("I", z)  # period_ms | boot_id << 16
        self._r0 = 0  # table index of the oldest run
        self._rn = 0  # runs in the table
        self._period = 0  # current run
        self._boot = -1
        self._next_t = -1  # t_ms that would continue the current run
        self._drop_at = -1  # seq0 of the second-oldest run: reaching it as oldest ends run 0
        self.evicted = 0  # samples overwritten by newer samples
        self.run_evicted = 0  # samples dropped early because the run table was full
        self.runs = 0  # runs started
        # REQUEST_RAW in progress
        self.busy = False
        self.sent = 0
        self._q_first = 0
        self._q_span = 0
        self._cur = 0
        self._end = 0

    # --- state -------------------------------------------------------------------------------
    @property
    def oldest_seq(self):
        """Oldest seq still stored; equals next_seq when the ring is empty (the status field)."""
        return (self.next_seq - self.count) & _M

    def ram_bytes(self):
        """Bytes of preallocated storage (sample buffer and run table)."""
        return len(self._buf) + 12 * self.max_runs

    # --- writing -----------------------------------------------------------------------------
    def append(self, t_ms, boot_id, period_ms, flexion_cdeg, lateral_cdeg, rotation_cdeg, flags):
        """Store one sample; returns the seq it got. ValueError for a period or boot_id that the
        wire cannot carry (a firmware bug)."""
        if t_ms != self._next_t or period_ms != self._period or boot_id != self._boot:
            t_ms &= _M
            if t_ms != self._next_t or period_ms != self._period or boot_id != self._boot:
                self._new_run(t_ms, boot_id, period_ms)
        if self.count == self.capacity:
            self._evict_one()
        head = self._head
        proto.pack_sample(self._buf, head, flexion_cdeg, lateral_cdeg, rotation_cdeg, flags)
        head += 1
        self._head = 0 if head == self.capacity else head
        self.count += 1
        seq = self.next_seq
        self.next_seq = (seq + 1) & _M
        self._next_t = (t_ms + period_ms) & _M
        return seq

    def _evict_one(self):
        self.count -= 1
        self.evicted += 1
        if self.oldest_seq == self._drop_at:
            self._drop_oldest_run()

    def _drop_oldest_run(self):
        self._r0 = (self._r0 + 1) % self.max_runs
        self._rn -= 1
        if self._rn > 1:
            self._drop_at = self._rseq[(self._r0 + 1) % self.max_runs]
        else:
            self._drop_at = -1

    def _new_run(self, t_ms, boot_id, period_ms):
        if period_ms < 1 or period_ms > 0xFFFF:
            raise ValueError("period_ms")
        if boot_id < 0 or boot_id > 0xFF:
            raise ValueError("boot_id")
        if self.count == 0:
            self._rn = 0
            self._drop_at = -1
        elif self._rn == self.max_runs:
            # Make room: the oldest run's samples go now rather than its timing being lost.
            n = (self._rseq[(self._r0 + 1) % self.max_runs] - self.oldest_seq) & _M
            self.count -= n
            self.run_evicted += n
            self._drop_oldest_run()
        i = (self._r0 + self._rn) % self.max_runs
        self._rseq[i] = self.next_seq
        self._rt0[i] = t_ms
        self._rpb[i] = period_ms | boot_id << 16
        self._rn += 1
        if self._rn == 2:
            self._drop_at = self.next_seq
        self._period = period_ms
        self._boot = boot_id
        self.runs += 1

    def clear(self):
        """Forget every sample (seq keeps counting, so no seq is ever reused)."""
        self.count = 0
        self._rn = 0
        self._drop_at = -1
        self._next_t = -1
        self.abort()

    # --- reading -----------------------------------------------------------------------------
    def _run_of(self, seq):
        # Table index of the run holding stored `seq` (newest first: requests are mostly recent).
        mr = self.max_runs
        k = self._rn - 1
        while k > 0:
            i = (self._r0 + k) % mr
            if sdiff(self._rseq[i], seq) >= 0:
                return i
            k -= 1
        return self._r0

    def _run_end(self, i):
        # First seq after run i.
        k = (i - self._r0) % self.max_runs
        if k + 1 >= self._rn:
            return self.next_seq
        return self._rseq[(i + 1) % self.max_runs]

    def sample_time(self, seq):
        """(t_ms, boot_id, period_ms) of a stored seq, or None. Allocates; not for the hot path."""
        if ((seq - self.oldest_seq) & _M) >= self.count:
            return None
        i = self._run_of(seq)
        pb = self._rpb[i]
        period = pb & 0xFFFF
        return ((self._rt0[i] + ((seq - self._rseq[i]) & _M) * period) & _M, pb >> 16, period)

    def read(self, seq, out):
        """Copy the 7 stored bytes of `seq` into out[0:7]; False if it is not stored."""
        d = (seq - self.oldest_seq) & _M
        if d >= self.count:
            return False
        slot = (self._head - self.count + d) % self.capacity
        o = _HDR + _SZ * slot
        b = self._buf
        for k in range(_SZ):
            out[k] = b[o + k]
        return True

    def available(self, first_seq, last_seq):
        """Stored samples whose seq lies in the inclusive modular range first_seq..last_seq."""
        return in_range_count(first_seq & _M, last_seq & _M, self.oldest_seq, self.count)

    def request(self, first_seq, last_seq):
        """Start serving first_seq..last_seq (inclusive, modular). Returns how many stored samples
        lie in the range now; 0 means NO_RECORDS and nothing is started. Samples appended later
        are not part of the request; samples evicted while it runs are skipped."""
        self.abort()
        self.sent = 0
        first = first_seq & _M
        n = in_range_count(first, last_seq & _M, self.oldest_seq, self.count)
        if n == 0:
            return 0
        self._q_first = first
        self._q_span = (last_seq - first) & _M
        self._cur = self.oldest_seq
        self._end = self.next_seq
        self.sent = 0
        self.busy = True
        return n

    def abort(self):
        """Stop the request in progress; `sent` keeps what was sent."""
        self.busy = False

    def fill(self, pkt, mtu, limit=proto.MAX_SAMPLES):
        """Write the next SAMPLES_BACKFILL packet of the request into pkt (a bytearray of at least
        payload_max(mtu) bytes) and return its length; 0 once the request is done (busy turns
        False). Samples are sent oldest first; a packet never crosses a run."""
        if not self.busy:
            return 0
        per = proto.samples_per_packet(mtu)
        if limit < per:
            per = limit
        oldest = self.oldest_seq
        if self.count == 0 or sdiff(oldest, self._end) <= 0:
            self.busy = False  # everything the request could still send was evicted
            return 0
        cur = self._cur
        if sdiff(oldest, cur) < 0:
            cur = oldest
        if not self._more(cur):
            self.busy = False
            return 0
        w = (self._end - cur) & _M  # stored seqs left to look at
        p = (cur - self._q_first) & _M
        if p > self._q_span:  # before the range: jump to its start
            w -= (self._q_first - cur) & _M
            cur = self._q_first
            p = 0
        n = self._q_span - p + 1
        if w < n:
            n = w
        if per < n:
            n = per
        ri = self._run_of(cur)
        k = (self._run_end(ri) - cur) & _M
        if k < n:
            n = k
        if n <= 0:
            self.busy = False
            return 0
        pb = self._rpb[ri]
        period = pb & 0xFFFF
        t0 = self._rt0[ri] + ((cur - self._rseq[ri]) & _M) * period
        # Copy n stored samples; they may wrap round the end of the buffer.
        cap = self.capacity
        slot = (self._head - self.count + ((cur - oldest) & _M)) % cap
        a = cap - slot
        if a > n:
            a = n
        # A byte loop: slicing would allocate memoryview objects on every packet.
        b = self._buf
        src = _HDR + _SZ * slot
        k = _HDR
        end = _HDR + _SZ * a
        while k < end:
            pkt[k] = b[src]
            k += 1
            src += 1
        src = _HDR
        end = _HDR + _SZ * n
        while k < end:
            pkt[k] = b[src]
            k += 1
            src += 1
        size = proto.pack_samples_header(pkt, True, n, cur, t0, pb >> 16, period)
        cur = (cur + n) & _M
        self._cur = cur
        self.sent += n
        if not self._more(cur):
            self.busy = False
        return size

    def _more(self, cur):
        # Is any seq of cur .. end-1 (stored at request time) inside the requested range?
        w = (self._end - cur) & _M
        if w == 0:
            return False
        if ((cur - self._q_first) & _M) <= self._q_span:
            return True
        return ((self._q_first - cur) & _M) < w
