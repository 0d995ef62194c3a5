"""Per-minute summary records on the device: accumulation only (storing them is another module's
job). docs/strain.md defines every field; host/neckline/strain.py computes the same minutes.

    log = MinuteLog(boot_id)
    log.begin(minute, pos_ms, time_valid)    # where the next sample starts
    ...                                      # per sample, after strain.update() of the same sample:
    log.update(dt_ms, period_ms, strain)
    log.mark(proto.RF_ALERTED)               # when something happened in the current minute
    while log.ready():
        n = log.pack(buf, 0)                 # the oldest closed minute, as record 0 of buf
        store(buf[proto.SUMMARY_HEADER_SIZE:n])

A minute is a wall-clock UTC minute once the time is known (begin() with time_valid=1 and the
epoch minute), otherwise a minute since boot. A sample covers [start, start + period_ms) and its
time is split across the minutes it touches. Strain seconds follow the flexion detector: its
tentative stretches (a run not yet held long enough, a release not yet held long enough) are kept
aside per minute until the detector settles them, so the minutes they touch stay open until then
(at most the hold time plus one period). A minute closes once a later minute has begun and nothing
in it is tentative. update() allocates nothing: every minute lives in preallocated arrays.
"""

from array import array

from wearable import proto
from wearable.strain import C_STRAIN, C_TENT, R_CONFIRM, R_NONE, R_RESUME

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


MINUTE_MS = const(60000)
# Open minutes a tentative stretch can span: hold up to 3600 s plus a period up to 65.5 s, plus the
# current minute and room for closed minutes the storage has not taken yet.
CAPACITY = const(72)


class MinuteLog:
    def __init__(self, boot_id, capacity=CAPACITY):
        self.boot_id = boot_id & 0xFF
        self.cap = capacity
        z = [0] * capacity
        self._min = array("i", z)  # minute number (epoch minute or minute since boot)
        self._wear = array("i", z)  # ms of usable samples
        self._strain = array("i", z)  # ms inside flexion episodes
        self._tent = array("i", z)  # ms tentatively in strain
        self._fsum = array("i", z)  # sum of usable flexion samples starting in the minute, cdeg
        self._fcnt = array("i", z)
        self._fmax = array("i", z)
        self._eps = array("i", z)  # flexion episodes that began in the minute
        self._flags = bytearray(capacity)
        # Entries are numbered by a serial; serial s lives at slot s % cap. Kept: head..head+n-1.
        self._head = 0
        self._n = 0
        self._closed = 0  # entries with serial < _closed are finished
        self._tfirst = -1  # entry holding the first tentative sample, -1 when nothing is tentative
        self._cur = -1  # entry of the latest sample's start
        self._base = 0  # first entry of the current time base
        self._minute = 0
        self._pos = 0
        self._tv = 0
        self._fresh = 1
        self._newbase = 1
        self._pend_flags = 0
        self.dropped = 0  # minutes lost because the ring was full (storage not keeping up)
        self.time_errors = 0  # samples whose dt was negative (treated as 0)

    # --- clock ------------------------------------------------------------------------------
    def begin(self, minute, pos_ms, time_valid):
        """The next sample starts pos_ms into `minute` (an epoch minute if time_valid, else a
        minute since boot). Use at boot and whenever the time base changes (SET_TIME): the minute
        in progress and the first one of the new base are flagged PARTIAL."""
        if self._n and not self._newbase and self._cur >= self._head:
            self._flags[self._cur % self.cap] |= proto.RF_PARTIAL
        self._minute = minute
        self._pos = pos_ms
        self._tv = 1 if time_valid else 0
        self._fresh = 1
        self._newbase = 1

    def mark(self, flags):
        """OR summary flags (RF_CALIBRATED, RF_PARTIAL, RF_ALERTED) into the current minute."""
        if self._n and not self._newbase and self._cur >= self._head:
            self._flags[self._cur % self.cap] |= flags
        else:
            self._pend_flags |= flags

    # --- per sample -------------------------------------------------------------------------
    def update(self, dt, p, strain):
        """Account one sample (dt ms after the previous one's start, p ms long) after
        strain.update() has seen it."""
        if self._fresh:
            self._fresh = 0
        else:
            if dt < 0:
                dt = 0
                self.time_errors += 1
            pos = self._pos + dt
            if pos >= MINUTE_MS:
                self._minute += pos // MINUTE_MS
                pos = pos % MINUTE_MS
            self._pos = pos
        fx = strain.flex
        if fx.pre != R_NONE:
            self._resolve(fx.pre)
        e = self._entry(self._minute)
        self._cur = e
        cls = fx.cls
        ok = strain.ok
        if cls == C_TENT and self._tfirst < 0:
            self._tfirst = e
        if ok:
            s = e % self.cap
            v = strain.flexion
            self._fsum[s] += v
            if self._fcnt[s] == 0 or v > self._fmax[s]:
                self._fmax[s] = v
            self._fcnt[s] += 1
        pos = self._pos
        m = self._minute
        left = p
        while True:
            room = MINUTE_MS - pos
            piece = left if left < room else room
            if ok:
                s = e % self.cap
                self._wear[s] += piece
                if cls == C_STRAIN:
                    self._strain[s] += piece
                elif cls == C_TENT:
                    self._tent[s] += piece
            left -= piece
            if left <= 0:
                break
            m += 1
            pos = 0
            e = self._entry(m)
        if fx.post != R_NONE:
            self._resolve(fx.post)
        b = self._cur
        if 0 <= self._tfirst < b:
            b = self._tfirst
        if b > self._closed:
            self._closed = b

    def finish(self, strain):
        """After strain.finish(): settle the last tentative stretch and close every minute."""
        if strain.flex.pre != R_NONE:
            self._resolve(strain.flex.pre)
        self._tfirst = -1
        self._closed = self._head + self._n
        self._fresh = 1
        self._newbase = 1

    def _entry(self, minute):
        """Serial of the entry for `minute` in the current base, appended if new."""
        if self._n and not self._newbase:
            # A long sample may already have opened the next minutes: look back through them.
            e = self._head + self._n - 1
            while e > self._base and self._min[e % self.cap] > minute:
                e -= 1
            if self._min[e % self.cap] >= minute:
                return e
        if self._n == self.cap:
            self._drop_head()
        e = self._head + self._n
        s = e % self.cap
        self._n += 1
        self._min[s] = minute
        self._wear[s] = 0
        self._strain[s] = 0
        self._tent[s] = 0
        self._fsum[s] = 0
        self._fcnt[s] = 0
        self._fmax[s] = 0
        self._eps[s] = 0
        f = self._pend_flags | (proto.RF_TIME_VALID if self._tv else 0)
        if self._newbase:
            self._newbase = 0
            self._base = e
            if self._pos:
                f |= proto.RF_PARTIAL
        self._pend_flags = 0
        self._flags[s] = f
        return e

    def _drop_head(self):
        # Only reachable when storage stops taking minutes; counted, never silent.
        self.dropped += 1
        self._head += 1
        self._n -= 1
        if self._base < self._head:
            self._base = self._head
        if self._closed < self._head:
            self._closed = self._head
        if 0 <= self._tfirst < self._head:
            self._tfirst = self._head

    def _resolve(self, r):
        first = self._tfirst
        end = self._head + self._n
        if first < 0:
            first = end - 1 if end > self._head else end
        cap = self.cap
        keep = r == R_CONFIRM or r == R_RESUME
        for e in range(first, end):
            s = e % cap
            if keep:
                self._strain[s] += self._tent[s]
            self._tent[s] = 0
        if r == R_CONFIRM and first < end:
            self._eps[first % cap] += 1
        self._tfirst = -1

    # --- output -----------------------------------------------------------------------------
    def ready(self):
        """How many finished minutes wait to be packed."""
        return self._closed - self._head

    def pack(self, buf, i):
        """Pack the oldest finished minute as record i of a SUMMARY packet in buf and forget it.
        Returns the offset just after the record, or -1 when none is ready."""
        if self._closed <= self._head:
            return -1
        s = self._head % self.cap
        wear = (self._wear[s] + 500) // 1000
        if wear > 60:
            wear = 60
        st = (self._strain[s] + 500) // 1000
        if st > wear:
            st = wear
        n = self._fcnt[s]
        if n:
            mean = (2 * self._fsum[s] + n) // (2 * n)
            mx = self._fmax[s]
        else:
            mean = proto.NO_VALUE
            mx = proto.NO_VALUE
        end = proto.pack_summary_record(
            buf, i, self._min[s] * 60, self.boot_id, wear, mean, mx, st, self._eps[s],
            self._flags[s],
        )
        self._head += 1
        self._n -= 1
        return end
