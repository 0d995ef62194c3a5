"""Which stored samples no host has received yet, and which of those the ring has lost.

A sample counts as delivered once a live or backfill packet carrying it reached at least one
encrypted link (NecklineBLE.send_posture() returned > 0). Everything else is "undelivered" and
kept here as a few seq ranges, oldest first. When the raw ring evicts samples, the undelivered
ones among them are lost for good: they collect in a small queue of lost ranges, which the app
turns into BUFFER_OVERFLOW events (first_lost_seq, last_lost_seq) once a host can hear them.

Bounded: at most `max_ranges` undelivered and `max_lost` lost ranges. When full, the two oldest
undelivered ranges merge (the merged range may include delivered samples: counted in
`imprecise`) and a new lost range joins the newest one. Nothing here allocates per sample:
extending the newest range is the common case. seq arithmetic is modulo 2**32.
"""

from array import array

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_M = const(0xFFFFFFFF)
_HALF = const(0x80000000)


def sdiff(a, b):
    """Signed modular difference b - a of two u32 counters."""
    return ((b - a + _HALF) & _M) - _HALF


class Delivery:
    def __init__(self, max_ranges=8, max_lost=4):
        self.max_ranges = max_ranges
        self.max_lost = max_lost
        self._ra = array("I", [0] * max_ranges)
        self._rb = array("I", [0] * max_ranges)
        self.n = 0
        self._la = array("I", [0] * max_lost)
        self._lb = array("I", [0] * max_lost)
        self.nlost = 0
        self.lost_samples = 0  # samples evicted before any host had them
        self.imprecise = 0  # range merges forced by the bounds (may overstate losses)

    # --- bookkeeping ---------------------------------------------------------------------------
    def undelivered(self, a, b):
        """Samples a..b (newer than any recorded) did not reach a host."""
        n = self.n
        if n and ((self._rb[n - 1] + 1) & _M) == a:
            self._rb[n - 1] = b
            return
        if n == self.max_ranges:
            self._rb[0] = self._rb[1]
            self._remove(1)
            self.imprecise += 1
            n = self.n
        self._ra[n] = a
        self._rb[n] = b
        self.n = n + 1

    def delivered(self, a, b):
        """Samples a..b reached a host (live or backfill)."""
        i = 0
        while i < self.n:
            ra = self._ra[i]
            rb = self._rb[i]
            if sdiff(ra, b) < 0:
                break  # this and later ranges start after b
            if sdiff(a, rb) < 0:
                i += 1  # ends before a
                continue
            left = sdiff(ra, a) > 0  # part of the range before a survives
            right = sdiff(b, rb) > 0  # part after b survives
            if left and right:
                if self.n == self.max_ranges:
                    self.imprecise += 1  # no room to split: keep it whole (conservative)
                    return
                self._insert(i + 1, (b + 1) & _M, rb)
                self._rb[i] = (a - 1) & _M
                return
            if left:
                self._rb[i] = (a - 1) & _M
                i += 1
            elif right:
                self._ra[i] = (b + 1) & _M
                return
            else:
                self._remove(i)

    def evicted(self, a, b):
        """The ring dropped samples a..b (its oldest): undelivered ones among them are lost."""
        while self.n:
            ra = self._ra[0]
            rb = self._rb[0]
            if sdiff(ra, b) < 0:
                return
            if sdiff(ra, a) > 0:
                ra = a  # not expected: ranges only cover stored samples
            end = rb if sdiff(rb, b) >= 0 else b
            self._lose(ra, end)
            if end == rb:
                self._remove(0)
            else:
                self._ra[0] = (end + 1) & _M
                return

    def first_undelivered(self):
        """Oldest undelivered seq, or -1."""
        return self._ra[0] if self.n else -1

    def undelivered_count(self):
        t = 0
        for i in range(self.n):
            t += ((self._rb[i] - self._ra[i]) & _M) + 1
        return t

    # --- lost ranges -----------------------------------------------------------------------------
    def _lose(self, a, b):
        self.lost_samples += ((b - a) & _M) + 1
        k = self.nlost
        if k and ((self._lb[k - 1] + 1) & _M) == a:
            self._lb[k - 1] = b
            return
        if k == self.max_lost:
            self._lb[k - 1] = b  # join the newest; the event then spans a delivered stretch
            self.imprecise += 1
            return
        self._la[k] = a
        self._lb[k] = b
        self.nlost = k + 1

    def take_lost(self):
        """(first, last) of the oldest lost range, forgetting it; None when there is none."""
        if not self.nlost:
            return None
        r = (self._la[0], self._lb[0])
        for i in range(1, self.nlost):
            self._la[i - 1] = self._la[i]
            self._lb[i - 1] = self._lb[i]
        self.nlost -= 1
        return r

    # --- array helpers -----------------------------------------------------------------------
    def _remove(self, i):
        for j in range(i + 1, self.n):
            self._ra[j - 1] = self._ra[j]
            self._rb[j - 1] = self._rb[j]
        self.n -= 1

    def _insert(self, i, a, b):
        j = self.n
        while j > i:
            self._ra[j] = self._ra[j - 1]
            self._rb[j] = self._rb[j - 1]
            j -= 1
        self._ra[i] = a
        self._rb[i] = b
        self.n += 1
