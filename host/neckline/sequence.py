"""Per-device sample sequence tracking: unwrap, de-duplicate, find gaps to backfill.

The device numbers every raw sample with a u32 `seq` (docs/protocol.md §4). The host turns it
into a 64-bit counter per device ("useq") that never wraps, drops samples it has already received
(live and backfill may both deliver one), and keeps the holes between received samples so the
pipeline can ask for them with REQUEST_RAW.

Reboots. The protocol allows both behaviours at a new `boot_id`: the counter carries on (the raw
ring survived) or it restarts (the ring did not). A live sample of a boot the tracker has not seen
decides which: a seq after the newest one received continues the counter; a seq at or before it
is a restart, which starts a new "epoch" at the next multiple of 2^32 above everything seen, so
useq stays unique and increasing per device. Because a restart means the old ring is gone, holes
left in the old epoch are counted as lost, never requested. Backfilled samples always come from
the device's current ring, so a backfilled sample of a boot never seen live (the host was away for
a whole boot) is unwrapped in the current epoch. Mistaking a restart for a continuation (the new
counter happened to land after the old one) is harmless: useq stays unique, and REQUEST_RAW of a
range the device never held answers NO_RECORDS, which the pipeline reports with `settle_request`.

Limits, stated rather than hidden: within one boot a sample is unwrapped against the newest seq of
that boot, so it must lie within 2^31 samples of it (years at 10 Hz; the ring is far smaller).
boot_id is a u8; the tracker keeps the most recent `max_boots` boots, so an id reused after 256
reboots is mistaken for the old boot only if that old boot is still among them.

Bookkeeping is two interval sets over useq (received, and given up as lost) with at most
`max_intervals` received runs; older runs are forgotten below a horizon. Samples older than the
horizon cannot be checked for duplicates: they are passed on as fresh and counted, and storage
idempotency (same sample, same timestamp, same point) absorbs any repeat.

All of it serialises to a small JSON-compatible dict (`to_state` / `from_state`); the caller
writes it.
"""

from __future__ import annotations

import logging
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from neckline.decode import SampleArrays

log = logging.getLogger(__name__)

SEQ_MODULUS = 1 << 32
SEQ_MASK = SEQ_MODULUS - 1
_HALF = 1 << 31
STATE_VERSION = 1


def seq_delta(a: int, b: int) -> int:
    """Signed distance from u32 `a` to u32 `b` (docs/protocol.md §4), in -2^31..2^31-1."""
    return ((b - a + _HALF) & SEQ_MASK) - _HALF


def unwrap_near(reference: int, raw: int) -> int:
    """The 64-bit value congruent to u32 `raw` that lies nearest to `reference`."""
    return reference + seq_delta(reference & SEQ_MASK, raw)


class IntervalSet:
    """Disjoint, non-touching half-open integer intervals [start, end), kept sorted."""

    def __init__(self, pairs: list[tuple[int, int]] | None = None) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        for start, end in pairs or []:
            self.add(start, end)

    def __len__(self) -> int:
        return len(self.starts)

    def pairs(self) -> list[tuple[int, int]]:
        return list(zip(self.starts, self.ends, strict=True))

    def add(self, start: int, end: int) -> int:
        """Add [start, end); returns how many integers were not in the set before."""
        if end <= start:
            return 0
        lo = bisect_left(self.ends, start)  # first interval that ends at/after start (touching)
        hi = bisect_right(self.starts, end)  # intervals starting at/before end touch or overlap
        already = 0
        new_start, new_end = start, end
        for k in range(lo, hi):
            already += min(self.ends[k], end) - max(self.starts[k], start)
            new_start = min(new_start, self.starts[k])
            new_end = max(new_end, self.ends[k])
        self.starts[lo:hi] = [new_start]
        self.ends[lo:hi] = [new_end]
        return (end - start) - max(already, 0)

    def covered(self, start: int, count: int) -> npt.NDArray[np.bool_]:
        """Membership of start, start+1, ..., start+count-1."""
        mask = np.zeros(count, dtype=np.bool_)
        end = start + count
        k = bisect_right(self.ends, start)
        while k < len(self.starts) and self.starts[k] < end:
            a = max(self.starts[k], start) - start
            b = min(self.ends[k], end) - start
            mask[a:b] = True
            k += 1
        return mask

    def gaps(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of [start, end) outside the set."""
        out: list[tuple[int, int]] = []
        cursor = start
        k = bisect_right(self.ends, start)
        while cursor < end:
            if k >= len(self.starts) or self.starts[k] >= end:
                out.append((cursor, end))
                break
            if self.starts[k] > cursor:
                out.append((cursor, self.starts[k]))
            cursor = max(cursor, self.ends[k])
            k += 1
        return out

    def drop_below(self, bound: int) -> None:
        """Forget everything below `bound`."""
        k = bisect_right(self.ends, bound)
        del self.starts[:k]
        del self.ends[:k]
        if self.starts and self.starts[0] < bound:
            self.starts[0] = bound

    @property
    def lowest(self) -> int | None:
        return self.starts[0] if self.starts else None

    @property
    def highest(self) -> int | None:
        """The largest member."""
        return self.ends[-1] - 1 if self.ends else None


@dataclass(frozen=True)
class SeqRange:
    """Missing samples first..last (useq, inclusive), in the form REQUEST_RAW takes."""

    first: int
    last: int

    @property
    def count(self) -> int:
        return self.last - self.first + 1

    @property
    def first_seq(self) -> int:
        return self.first & SEQ_MASK

    @property
    def last_seq(self) -> int:
        return self.last & SEQ_MASK


@dataclass(frozen=True)
class SequenceResult:
    """Per input sample: its 64-bit counter, and whether it is new (False = duplicate)."""

    useq: npt.NDArray[np.int64]
    fresh: npt.NDArray[np.bool_]

    @property
    def duplicates(self) -> int:
        return int(self.fresh.size - np.count_nonzero(self.fresh))


@dataclass
class SequenceStats:
    """Cumulative counters, kept in the persisted state."""

    received: int = 0
    duplicates: int = 0
    below_horizon: int = 0  # too old to check for duplicates; passed on as fresh
    lost: int = 0  # samples given up: overwritten in the ring, ring reset by a reboot, refused
    restarts: int = 0  # boots at which the device's seq counter started again
    boots: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class _Boot:
    boot_id: int
    newest: int  # highest useq seen of this boot: the unwrap reference for its samples
    order: int  # when the tracker first met the boot, for pruning


class SequenceTracker:
    """Sequence bookkeeping for one device. Not thread-safe; one per device."""

    def __init__(self, max_intervals: int = 1024, max_boots: int = 16) -> None:
        if max_intervals < 1 or max_boots < 1:
            raise ValueError("max_intervals and max_boots must be at least 1")
        self.max_intervals = max_intervals
        self.max_boots = max_boots
        self.stats = SequenceStats()
        self._seen = IntervalSet()
        self._lost = IntervalSet()
        self._boots: dict[int, _Boot] = {}
        self._current: int | None = None  # boot_id of the device's newest boot
        self._newest: int | None = None  # highest useq of the current epoch (seen or announced)
        self._floor: int | None = None  # holes below this are not requested
        self._horizon: int | None = None  # no duplicate bookkeeping below this
        self._epoch_base = -_HALF  # lowest useq of the current epoch
        self._order = 0

    # --- input -------------------------------------------------------------------------------
    def observe(self, samples: SampleArrays) -> SequenceResult:
        """Unwrap and de-duplicate decoded samples (any mix of packets, live and backfill)."""
        n = len(samples)
        useq = np.empty(n, dtype=np.int64)
        fresh = np.zeros(n, dtype=np.bool_)
        if n == 0:
            return SequenceResult(useq, fresh)
        # All samples of a packet share boot and have consecutive seq, so one unwrap per packet.
        starts = np.flatnonzero(np.r_[True, samples.packet_index[1:] != samples.packet_index[:-1]])
        ends = np.r_[starts[1:], n]
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            count = b - a
            boot_id = int(samples.boot_id[a])
            u0 = self._unwrap_packet(boot_id, int(samples.seq[a]), bool(samples.backfill[a]))
            boot = self._boots.get(boot_id)
            if boot is not None:
                boot.newest = max(boot.newest, u0 + count - 1)
            useq[a:b] = np.arange(u0, u0 + count, dtype=np.int64)
            fresh[a:b] = self._take(u0, count)
        self.stats.received += n
        self.stats.duplicates += int(n - np.count_nonzero(fresh))
        self._prune()
        return SequenceResult(useq, fresh)

    def note_status(self, boot_id: int, next_seq: int, oldest_seq: int) -> None:
        """A STATUS value: the device's boot, the seq it will give next and its oldest stored seq.

        Registers a new boot (deciding continue/restart from next_seq), raises the newest known
        seq so samples recorded while disconnected count as missing, and sets the request floor
        to the oldest stored sample; holes below it can no longer be fetched and count as lost.
        """
        if boot_id not in self._boots:
            u_next = self._start_boot(boot_id, next_seq, live=True)
            self._boots[boot_id].newest = u_next - 1
        else:
            u_next = unwrap_near(self._boots[boot_id].newest, next_seq)
        self._current = boot_id
        newest = u_next - 1
        if self._newest is None or newest > self._newest:
            self._newest = newest
        oldest = u_next - ((next_seq - oldest_seq) & SEQ_MASK)
        self._set_floor(max(oldest, self._epoch_base))

    def mark_lost(self, first_seq: int, last_seq: int) -> int:
        """Give up on the raw range first_seq..last_seq (inclusive, may wrap), e.g. from a
        BUFFER_OVERFLOW event. Returns how many not-yet-received samples that abandons."""
        reference = self._newest if self._newest is not None else first_seq
        first = unwrap_near(reference, first_seq)
        count = ((last_seq - first_seq) & SEQ_MASK) + 1
        return self._abandon(first, first + count)

    def settle_request(self, requested: SeqRange) -> int:
        """After REQUEST_RAW answered (SUCCESS or NO_RECORDS): whatever of `requested` is still
        missing will not come; give it up. Returns how many samples that abandons."""
        return self._abandon(requested.first, requested.last + 1)

    # --- output ------------------------------------------------------------------------------
    def missing(self, limit: int | None = None) -> list[SeqRange]:
        """Holes to request with REQUEST_RAW, oldest first (at most `limit` ranges)."""
        if self._newest is None or self._floor is None:
            return []
        out: list[SeqRange] = []
        for start, end in self._seen.gaps(self._floor, self._newest + 1):
            for a, b in self._lost.gaps(start, end):
                out.append(SeqRange(a, b - 1))
                if limit is not None and len(out) >= limit:
                    return out
        return out

    def missing_count(self) -> int:
        return sum(r.count for r in self.missing())

    @property
    def current_boot(self) -> int | None:
        return self._current

    @property
    def newest(self) -> int | None:
        """Highest useq of the current epoch, received or announced by STATUS."""
        return self._newest

    # --- internals ---------------------------------------------------------------------------
    def _unwrap_packet(self, boot_id: int, seq0: int, backfill: bool) -> int:
        boot = self._boots.get(boot_id)
        if boot is not None:
            u0 = unwrap_near(boot.newest, seq0)
        elif backfill and self._newest is not None:
            # A boot the host never saw live: its samples are still in the current ring.
            u0 = unwrap_near(self._newest, seq0)
            self._register(boot_id, u0)
        else:
            u0 = self._start_boot(boot_id, seq0, live=not backfill)
        return u0

    def _start_boot(self, boot_id: int, seq0: int, *, live: bool) -> int:
        newest = self._newest
        if newest is None:
            # First contact: useq = seq. Older samples unwrap below it, negative only if the
            # counter wrapped just before first contact.
            u0 = seq0
            self._epoch_base = seq0 - _HALF
            self._floor = seq0
        else:
            d = seq_delta(newest & SEQ_MASK, seq0)
            u0 = newest + d if d > 0 else self._restart(newest, seq0)
        self._register(boot_id, u0)
        if live:
            self._current = boot_id
        return u0

    def _restart(self, newest: int, seq0: int) -> int:
        highest = self._seen.highest
        top = newest if highest is None else max(newest, highest)
        base = ((top >> 32) + 1) << 32
        abandoned = self._abandon(self._floor if self._floor is not None else base, top + 1)
        log.warning(
            "device seq restarted at a new boot (seq %d after %d): ring reset, "
            "%d missing samples of the old ring are lost", seq0, top & SEQ_MASK, abandoned,
        )
        self.stats.restarts += 1
        self._epoch_base = base
        self._floor = base + seq0
        self._newest = base + seq0 - 1
        return base + seq0

    def _register(self, boot_id: int, u0: int) -> None:
        self._boots[boot_id] = _Boot(boot_id=boot_id, newest=u0, order=self._order)
        self._order += 1
        self.stats.boots += 1
        if len(self._boots) > self.max_boots:
            oldest = min(self._boots.values(), key=lambda b: b.order)
            del self._boots[oldest.boot_id]

    def _take(self, u0: int, count: int) -> npt.NDArray[np.bool_]:
        """Mark u0..u0+count-1 received; True where a sample is new."""
        end = u0 + count
        fresh = ~self._seen.covered(u0, count)
        if self._horizon is not None and u0 < self._horizon:
            below = min(end, self._horizon) - u0
            fresh[:below] = True
            self.stats.below_horizon += below
            u0 = min(end, self._horizon)
        self._seen.add(u0, end)
        top = end - 1
        if top >= self._epoch_base and (self._newest is None or top > self._newest):
            self._newest = top
        # Holes between an earlier sample that arrives late and the rest are worth asking for;
        # what was already given up stays in _lost, so lowering the floor never re-requests it.
        lowest = max(u0, self._epoch_base, self._horizon if self._horizon is not None else u0)
        if u0 < end and (self._floor is None or lowest < self._floor):
            self._floor = lowest
        return fresh

    def _abandon(self, start: int, end: int) -> int:
        abandoned = 0
        for a, b in self._seen.gaps(start, end):
            abandoned += self._lost.add(a, b)
        self.stats.lost += abandoned
        return abandoned

    def _set_floor(self, floor: int) -> None:
        if self._floor is not None and floor > self._floor:
            self._abandon(self._floor, floor)
        self._floor = floor

    def _prune(self) -> None:
        excess = len(self._seen) - self.max_intervals
        if excess <= 0:
            return
        horizon = self._seen.starts[excess]
        if self._floor is not None and horizon > self._floor:
            self._abandon(self._floor, horizon)
            self._floor = horizon
        self._seen.drop_below(horizon)
        self._lost.drop_below(horizon)
        self._horizon = horizon if self._horizon is None else max(self._horizon, horizon)

    # --- persistence -------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "seen": [list(p) for p in self._seen.pairs()],
            "lost": [list(p) for p in self._lost.pairs()],
            "boots": [[b.boot_id, b.newest, b.order] for b in self._boots.values()],
            "current": self._current,
            "newest": self._newest,
            "floor": self._floor,
            "horizon": self._horizon,
            "epoch_base": self._epoch_base,
            "order": self._order,
            "stats": self.stats.as_dict(),
            "max_intervals": self.max_intervals,
            "max_boots": self.max_boots,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SequenceTracker:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"sequence state version {state.get('version')!r} is not supported")
        tracker = cls(max_intervals=int(state["max_intervals"]), max_boots=int(state["max_boots"]))
        tracker._seen = IntervalSet([(int(a), int(b)) for a, b in state["seen"]])
        tracker._lost = IntervalSet([(int(a), int(b)) for a, b in state["lost"]])
        tracker._boots = {
            int(b): _Boot(boot_id=int(b), newest=int(n), order=int(o))
            for b, n, o in state["boots"]
        }
        tracker._current = _opt_int(state["current"])
        tracker._newest = _opt_int(state["newest"])
        tracker._floor = _opt_int(state["floor"])
        tracker._horizon = _opt_int(state["horizon"])
        tracker._epoch_base = int(state["epoch_base"])
        tracker._order = int(state["order"])
        tracker.stats = SequenceStats(**{k: int(v) for k, v in state["stats"].items()})
        return tracker


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)
