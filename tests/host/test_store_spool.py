"""The on-disk spool: replay, acknowledgement, permissions, torn and corrupt data, full policy."""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

import pytest

from neckline.store import LineBatch, Spool, SpoolFull, SpoolLocked
from neckline.store.spool import ACK_FILE, MAGIC, SEGMENT_SUFFIX


def _batch(i: int, lines: int = 3, dest: str = "raw") -> LineBatch:
    return LineBatch.from_lines(dest, [f"m,d=x v={i}i,k={j}i {i * 1000 + j}" for j in range(lines)])


def _segments(path: Path) -> list[Path]:
    return sorted(path.glob("*" + SEGMENT_SUFFIX))


def _record_offsets(data: bytes) -> list[int]:
    """Start of each record, found by walking the framing (independent of the spool's reader)."""
    offsets, pos = [], 0
    while pos < len(data):
        magic, length, _crc = struct.unpack_from("<4sII", data, pos)
        assert magic == MAGIC
        offsets.append(pos)
        pos += 12 + length
    return offsets


def test_records_survive_reopen_in_order_until_acked(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    with Spool(spool_dir) as spool:
        ids = [spool.append(_batch(i)) for i in range(4)]
        assert ids == [1, 2, 3, 4]
        assert spool.pending_records == 4 and spool.pending_lines == 12
    with Spool(spool_dir) as spool:
        assert spool.recovery.pending_records == 4
        records = spool.peek(max_lines=100, max_bytes=1 << 20)
        assert [r.id for r in records] == ids
        assert [r.body for r in records] == [_batch(i).body for i in range(4)]
        spool.ack(2)
        assert spool.pending_records == 2
        assert spool.append(_batch(9)) == 5, "ids keep increasing across restarts"
    with Spool(spool_dir) as spool:
        assert [r.id for r in spool.peek(100, 1 << 20)] == [3, 4, 5]


def test_peek_respects_limits_and_destinations(tmp_path: Path) -> None:
    with Spool(tmp_path / "s") as spool:
        spool.append(_batch(0, lines=3))
        spool.append(_batch(1, lines=3))
        spool.append(_batch(2, lines=3, dest="forever"))
        spool.append(_batch(3, lines=50))
        assert [r.id for r in spool.peek(max_lines=5, max_bytes=1 << 20)] == [1]
        assert [r.id for r in spool.peek(max_lines=6, max_bytes=1 << 20)] == [1, 2]
        spool.ack(2)
        assert [r.dest for r in spool.peek(100, 1 << 20)] == ["forever"]
        spool.ack(3)
        # A single record over the limits is still returned, alone.
        assert [r.lines for r in spool.peek(max_lines=5, max_bytes=10)] == [50]


def test_acked_segments_are_deleted_and_space_returned(tmp_path: Path) -> None:
    spool_dir = tmp_path / "s"
    with Spool(spool_dir, segment_bytes=200) as spool:
        for i in range(12):
            spool.append(_batch(i))
        assert len(_segments(spool_dir)) >= 4
        used = spool.bytes_used
        assert used == sum(p.stat().st_size for p in _segments(spool_dir))
        spool.ack(6)
        assert spool.bytes_used < used
        assert spool.bytes_used == sum(p.stat().st_size for p in _segments(spool_dir))
        spool.ack(12)
        assert _segments(spool_dir) == [] and spool.bytes_used == 0
        assert spool.append(_batch(99)) == 13
    assert (spool_dir / ACK_FILE).read_text().strip() == "12"


def test_files_are_private(tmp_path: Path) -> None:
    spool_dir = tmp_path / "s"
    spool_dir.mkdir(mode=0o755)
    os.chmod(spool_dir, 0o755)
    old_umask = os.umask(0o000)
    try:
        with Spool(spool_dir) as spool:
            spool.append(_batch(1))
            spool.append(_batch(2))
            spool.ack(1)
            spool.quarantine.save_lines("raw", "test", [b"m f=1 1"])
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(spool_dir.stat().st_mode) == 0o700
    files = [p for p in spool_dir.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"lock", ACK_FILE, "rejected.lp"}
    assert any(p.suffix == SEGMENT_SUFFIX for p in files)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((spool_dir / "quarantine").stat().st_mode) == 0o700


def test_torn_tail_is_truncated_counted_and_quarantined(tmp_path: Path) -> None:
    spool_dir = tmp_path / "s"
    with Spool(spool_dir) as spool:
        for i in range(5):
            spool.append(_batch(i))
    (seg,) = _segments(spool_dir)
    data = seg.read_bytes()
    last = _record_offsets(data)[-1]
    cut = last + 20  # mid-record: header and part of the payload of record 5
    seg.write_bytes(data[:cut])
    with Spool(spool_dir) as spool:
        report = spool.recovery
        assert report.torn_bytes == 20 and report.corrupt_regions == 0
        assert [r.id for r in spool.peek(100, 1 << 20)] == [1, 2, 3, 4]
        assert len(report.quarantined) == 1
        assert Path(report.quarantined[0]).read_bytes() == data[last:cut]
        assert seg.stat().st_size == last
        spool.append(_batch(7))
    with Spool(spool_dir) as spool:
        assert spool.recovery.torn_bytes == 0, "damage is dealt with once"
        assert [r.id for r in spool.peek(100, 1 << 20)] == [1, 2, 3, 4, 5]


def test_flipped_bytes_lose_only_the_damaged_record(tmp_path: Path) -> None:
    spool_dir = tmp_path / "s"
    with Spool(spool_dir) as spool:
        for i in range(6):
            spool.append(_batch(i))
    (seg,) = _segments(spool_dir)
    data = bytearray(seg.read_bytes())
    offsets = _record_offsets(bytes(data))
    data[offsets[2] + 30] ^= 0xFF  # inside the body of record 3
    data[offsets[4] + 5] ^= 0x01  # the length field of record 5
    seg.write_bytes(bytes(data) + MAGIC + b"\x01")  # and a torn start of a 7th record
    with Spool(spool_dir) as spool:
        report = spool.recovery
        assert report.corrupt_regions == 2
        assert report.corrupt_bytes == (offsets[3] - offsets[2]) + (offsets[5] - offsets[4])
        assert report.torn_bytes == 5
        records = spool.peek(100, 1 << 20)
        assert [r.id for r in records] == [1, 2, 4, 6]
        assert [r.body for r in records] == [_batch(i).body for i in (0, 1, 3, 5)]
        assert len(report.quarantined) == 3
    with Spool(spool_dir) as spool:
        assert spool.recovery.corrupt_regions == 0, "the segment was rewritten without damage"
        assert spool.recovery.torn_bytes == 0
        assert [r.id for r in spool.peek(100, 1 << 20)] == [1, 2, 4, 6]


def test_garbage_after_the_last_record_and_an_empty_segment(tmp_path: Path) -> None:
    spool_dir = tmp_path / "s"
    with Spool(spool_dir) as spool:
        spool.append(_batch(0))
    (seg,) = _segments(spool_dir)
    with open(seg, "ab") as fh:
        fh.write(MAGIC + b"\xff" * 40)
    (spool_dir / f"{0xFF:016x}{SEGMENT_SUFFIX}").write_bytes(b"")
    with Spool(spool_dir) as spool:
        assert spool.recovery.torn_bytes == 44
        assert [r.id for r in spool.peek(100, 1 << 20)] == [1]
    assert len(_segments(spool_dir)) == 1


def test_full_spool_refuses_new_batches_and_keeps_the_old(tmp_path: Path) -> None:
    with Spool(tmp_path / "s", max_bytes=1000) as spool:
        stored = 0
        with pytest.raises(SpoolFull, match="full"):
            for i in range(100):
                spool.append(_batch(i))
                stored += 1
        assert 0 < stored < 100
        assert spool.bytes_used <= 1000
        assert [r.id for r in spool.peek(1000, 1 << 20)] == list(range(1, stored + 1))
        with pytest.raises(SpoolFull):
            spool.append(_batch(100))
        spool.ack(stored)
        assert spool.append(_batch(101)) == stored + 1


def test_one_owner_at_a_time(tmp_path: Path) -> None:
    with Spool(tmp_path / "s"), pytest.raises(SpoolLocked):
        Spool(tmp_path / "s").open()
    with Spool(tmp_path / "s") as again:
        assert again.is_open


def test_group_commit_defers_fsync_until_sync(tmp_path: Path) -> None:
    with Spool(tmp_path / "g", fsync_interval=3600.0) as spool:
        spool.append(_batch(1))  # the first append syncs: no sync has happened yet
        spool.append(_batch(2))
        assert spool.needs_sync
        spool.sync()
        assert not spool.needs_sync
    with Spool(tmp_path / "e") as spool:
        spool.append(_batch(1))
        assert not spool.needs_sync, "fsync_interval=0 syncs every append"
