"""Per-device sequence tracking (neckline.sequence): unwrap, duplicates, gaps, reboots, state."""

from __future__ import annotations

import json
import struct
from itertools import pairwise

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from neckline.decode import SampleArrays, decode_samples
from neckline.sequence import (
    SEQ_MODULUS,
    IntervalSet,
    SeqRange,
    SequenceTracker,
    seq_delta,
    unwrap_near,
)

U32 = SEQ_MODULUS


def packet(seq: int, count: int, *, boot: int = 1, t_ms: int = 0, period: int = 100,
           backfill: bool = False) -> list[bytes]:
    """SAMPLES packets per docs/protocol.md §5 for `count` consecutive samples (at most 71 a
    packet); the flexion of each sample encodes its seq, for checking."""
    out = []
    for k in range(0, count, 71):
        n = min(71, count - k)
        head = struct.pack(
            "<BBIIBH", 0x12 if backfill else 0x11, n, (seq + k) % U32,
            (t_ms + k * period) % U32, boot, period,
        )
        body = b"".join(
            struct.pack("<hhhB", (seq + k + i) % 30000, 0, 0, 0x01) for i in range(n)
        )
        out.append(head + body)
    return out


def decode(groups: list[list[bytes]]) -> SampleArrays:
    samples, rejections = decode_samples([p for group in groups for p in group])
    assert rejections.total == 0, rejections.summary()
    return samples


def roundtrip(tracker: SequenceTracker) -> SequenceTracker:
    return SequenceTracker.from_state(json.loads(json.dumps(tracker.to_state())))


def test_seq_delta_and_unwrap() -> None:
    assert seq_delta(U32 - 1, 0) == 1
    assert seq_delta(0, U32 - 1) == -1
    assert seq_delta(5, 5) == 0
    assert unwrap_near(U32 - 3, 2) == U32 + 2
    assert unwrap_near(U32 + 2, U32 - 3) == U32 - 3


def test_interval_set_merges_and_counts() -> None:
    s = IntervalSet()
    assert s.add(10, 20) == 10
    assert s.add(30, 40) == 10
    assert s.add(15, 35) == 10  # only 20..29 was new
    assert s.pairs() == [(10, 40)]
    assert s.add(40, 41) == 1 and s.pairs() == [(10, 41)]  # touching runs merge
    assert s.gaps(0, 50) == [(0, 10), (41, 50)]
    assert s.covered(8, 4).tolist() == [False, False, True, True]


def test_contiguous_stream_has_no_gaps() -> None:
    tracker = SequenceTracker()
    result = tracker.observe(decode([packet(1000 + 5 * k, 5) for k in range(4)]))
    assert result.useq.tolist() == list(range(1000, 1020))
    assert result.fresh.all()
    assert tracker.missing() == []


def test_wrap_inside_a_packet_unwraps_to_64_bits() -> None:
    tracker = SequenceTracker()
    result = tracker.observe(decode([packet(U32 - 3, 6), packet(3, 2)]))
    assert result.useq.tolist() == [U32 - 3 + i for i in range(8)]
    assert tracker.missing() == []


def test_duplicates_live_then_backfill_and_within_a_batch() -> None:
    tracker = SequenceTracker()
    first = tracker.observe(decode([packet(0, 10), packet(5, 10)]))  # overlap inside one batch
    assert first.fresh.tolist() == [True] * 10 + [False] * 5 + [True] * 5
    again = tracker.observe(decode([packet(0, 15, backfill=True)]))
    assert not again.fresh.any()
    assert again.useq.tolist() == list(range(15))
    assert tracker.stats.duplicates == 20
    assert tracker.stats.received == 35


def test_gap_ranges_are_exact_including_across_the_wrap() -> None:
    tracker = SequenceTracker()
    tracker.observe(decode([packet(U32 - 10, 4), packet(U32 - 2, 1), packet(5, 3)]))
    gaps = tracker.missing()
    assert gaps == [SeqRange(U32 - 6, U32 - 3), SeqRange(U32 - 1, U32 + 4)]
    assert [(g.first_seq, g.last_seq, g.count) for g in gaps] == [
        (U32 - 6, U32 - 3, 4),
        (U32 - 1, 4, 6),
    ]
    tracker.observe(decode([packet(U32 - 1, 6, backfill=True)]))
    assert tracker.missing() == [SeqRange(U32 - 6, U32 - 3)]


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[int, list[tuple[int, int, bool]], int]:
    start = draw(st.one_of(st.integers(0, U32 - 1), st.integers(U32 - 300, U32 - 1)))
    total = draw(st.integers(1, 400))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, total - 1)), max_size=40)))
    bounds = [0, *[c for c in cuts if c < total], total]
    packets = [
        (p, min(71, b - p))  # a packet holds at most 71 samples
        for a, b in pairwise(bounds)
        for p in range(a, b, 71)
    ]
    kept = [p for p in packets if draw(st.booleans()) or p is packets[0]]
    dupes = draw(st.lists(st.sampled_from(kept), max_size=10))
    order = draw(st.permutations(kept + dupes))
    flags = [draw(st.booleans()) for _ in order]
    chunk = draw(st.integers(1, 8))
    return start, [(a, n, bf) for (a, n), bf in zip(order, flags, strict=True)], chunk


@settings(max_examples=150, deadline=None)
@given(case=deliveries(), save_at=st.floats(0, 1))
def test_property_unwrap_dedupe_and_gaps(
    case: tuple[int, list[tuple[int, int, bool]], int], save_at: float
) -> None:
    """Any delivery order, duplicates, chunking and a save/restore: exact useq, fresh, gaps."""
    start, plan, chunk = case
    tracker = SequenceTracker()
    first_index = plan[0][0]
    seen: set[int] = set()
    starts = range(0, len(plan), chunk)
    for c, k in enumerate(starts):
        if c == int(save_at * (len(starts) - 1)):
            tracker = roundtrip(tracker)
        group = plan[k : k + chunk]
        result = tracker.observe(
            decode([packet(start + a, n, backfill=bf) for a, n, bf in group])
        )
        index = np.concatenate([np.arange(a, a + n) for a, n, _ in group])
        # The first packet ever seen defines useq = its raw seq; everything else is relative.
        expected = (start + first_index) % U32 - first_index + index
        assert result.useq.tolist() == expected.tolist()
        fresh_expected = []
        for i in index.tolist():
            fresh_expected.append(i not in seen)
            seen.add(i)
        assert result.fresh.tolist() == fresh_expected
    base = (start + first_index) % U32 - first_index
    lo, hi = min(seen), max(seen)
    holes = sorted(set(range(lo, hi + 1)) - seen)
    expected_ranges: list[SeqRange] = []
    for i in holes:
        if expected_ranges and expected_ranges[-1].last == base + i - 1:
            expected_ranges[-1] = SeqRange(expected_ranges[-1].first, base + i)
        else:
            expected_ranges.append(SeqRange(base + i, base + i))
    assert tracker.missing() == expected_ranges
    assert tracker.stats.duplicates == sum(n for _, n, _ in plan) - len(seen)


def test_reboot_with_continuing_seq_requests_the_hole_across_boots() -> None:
    tracker = SequenceTracker()
    tracker.observe(decode([packet(0, 100, boot=7)]))
    result = tracker.observe(decode([packet(150, 10, boot=8, t_ms=50)]))
    assert result.useq.tolist() == list(range(150, 160))
    assert tracker.current_boot == 8
    assert tracker.missing() == [SeqRange(100, 149)]
    # The hole spans both boots; backfill carries each sample's own boot.
    tracker.observe(decode([packet(100, 30, boot=7, backfill=True),
                            packet(130, 20, boot=8, backfill=True)]))
    assert tracker.missing() == []
    assert tracker.stats.restarts == 0


def test_reboot_with_seq_restart_opens_a_new_epoch_and_loses_old_holes() -> None:
    tracker = SequenceTracker()
    tracker.observe(decode([packet(0, 50, boot=7), packet(60, 40, boot=7)]))
    assert tracker.missing() == [SeqRange(50, 59)]
    result = tracker.observe(decode([packet(0, 10, boot=8)]))
    assert result.useq.tolist() == [U32 + i for i in range(10)]
    assert result.fresh.all()
    assert tracker.missing() == []  # the old ring is gone: nothing to ask for
    assert tracker.stats.restarts == 1
    assert tracker.stats.lost == 10
    # Old-boot duplicates still resolve against their own boot.
    old = tracker.observe(decode([packet(90, 10, boot=7)]))
    assert old.useq.tolist() == list(range(90, 100)) and not old.fresh.any()
    later = tracker.observe(decode([packet(20, 5, boot=8)]))
    assert later.useq.tolist() == [U32 + 20 + i for i in range(5)]
    assert tracker.missing() == [SeqRange(U32 + 10, U32 + 19)]


def test_backfill_of_a_boot_never_seen_live_lands_in_the_current_epoch() -> None:
    tracker = SequenceTracker()
    tracker.observe(decode([packet(0, 100, boot=3)]))
    tracker.observe(decode([packet(300, 10, boot=5)]))  # boot 4 happened while the host was away
    assert tracker.missing() == [SeqRange(100, 299)]
    result = tracker.observe(decode([packet(100, 71, boot=4, backfill=True),
                                     packet(171, 71, boot=4, backfill=True),
                                     packet(242, 58, boot=4, backfill=True)]))
    assert result.useq.tolist() == list(range(100, 300))
    assert tracker.missing() == []
    assert tracker.stats.restarts == 0


def test_status_at_first_contact_asks_for_the_whole_ring() -> None:
    tracker = SequenceTracker()
    tracker.note_status(boot_id=2, next_seq=5000, oldest_seq=4000)
    assert tracker.missing() == [SeqRange(4000, 4999)]
    tracker.observe(decode([packet(5000, 5, boot=2)]))
    assert tracker.missing() == [SeqRange(4000, 4999)]


def test_status_after_disconnect_extends_the_tail_and_floor_drops_overwritten() -> None:
    tracker = SequenceTracker()
    tracker.observe(decode([packet(0, 100, boot=2), packet(120, 80, boot=2)]))
    assert tracker.missing() == [SeqRange(100, 119)]
    tracker.note_status(boot_id=2, next_seq=400, oldest_seq=110)
    assert tracker.missing() == [SeqRange(110, 119), SeqRange(200, 399)]
    assert tracker.stats.lost == 10  # 100..109 were overwritten before we asked


def test_status_of_a_new_boot_with_restarted_ring() -> None:
    tracker = SequenceTracker()
    tracker.observe(decode([packet(0, 100, boot=2)]))
    tracker.note_status(boot_id=3, next_seq=40, oldest_seq=0)
    assert tracker.stats.restarts == 1
    assert tracker.missing() == [SeqRange(U32, U32 + 39)]
    result = tracker.observe(decode([packet(0, 40, boot=3, backfill=True)]))
    assert result.useq.tolist() == [U32 + i for i in range(40)]
    assert tracker.missing() == []


def test_mark_lost_and_settle_request_stop_requests() -> None:
    tracker = SequenceTracker()
    tracker.observe(decode([packet(U32 - 20, 5), packet(U32 - 5, 1), packet(10, 5)]))
    assert tracker.missing() == [SeqRange(U32 - 15, U32 - 6), SeqRange(U32 - 4, U32 + 9)]
    assert tracker.mark_lost(U32 - 2, 3) == 6  # a BUFFER_OVERFLOW range across the wrap
    assert tracker.missing() == [
        SeqRange(U32 - 15, U32 - 6), SeqRange(U32 - 4, U32 - 3), SeqRange(U32 + 4, U32 + 9)
    ]
    assert tracker.settle_request(SeqRange(U32 - 15, U32 - 6)) == 10
    assert tracker.missing(limit=1) == [SeqRange(U32 - 4, U32 - 3)]
    assert tracker.stats.lost == 16
    # A late sample from an abandoned range is still accepted as new.
    late = tracker.observe(decode([packet(U32 - 10, 1, backfill=True)]))
    assert late.fresh.tolist() == [True]


def test_bookkeeping_is_bounded_and_old_samples_pass_as_fresh() -> None:
    tracker = SequenceTracker(max_intervals=4)
    tracker.observe(decode([packet(10 * k, 5) for k in range(10)]))  # 10 runs with holes
    assert len(tracker.to_state()["seen"]) == 4
    assert tracker.missing() == [SeqRange(65 + 10 * k, 69 + 10 * k) for k in range(3)]
    assert tracker.stats.lost == 30  # holes below the horizon were given up
    old = tracker.observe(decode([packet(0, 5, backfill=True)]))
    assert old.fresh.all()
    assert tracker.stats.below_horizon == 5


def test_state_roundtrip_is_exact() -> None:
    tracker = SequenceTracker()
    tracker.observe(decode([packet(U32 - 3, 3, boot=1), packet(2, 3, boot=1)]))
    tracker.observe(decode([packet(0, 3, boot=2)]))
    restored = roundtrip(tracker)
    assert restored.to_state() == tracker.to_state()
    a = tracker.observe(decode([packet(4, 4, boot=2)]))
    b = restored.observe(decode([packet(4, 4, boot=2)]))
    assert a.useq.tolist() == b.useq.tolist() and a.fresh.tolist() == b.fresh.tolist()
    assert tracker.missing() == restored.missing()


def test_unknown_state_version_is_refused() -> None:
    state = SequenceTracker().to_state()
    state["version"] = 99
    try:
        SequenceTracker.from_state(state)
    except ValueError as exc:
        assert "version" in str(exc)
    else:
        raise AssertionError("a state of another version was accepted")
