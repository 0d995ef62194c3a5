"""Durable on-disk spool: every batch is written here before it is sent, and kept until acked.

Layout of the spool directory (0700; every file 0600):

    lock                    flock()ed by the one process that owns the spool
    acked                   highest record id the server has acknowledged (a hint, see below)
    0000000000000001.seg    append-only segment files, numbered in order
    quarantine/             damaged bytes and server-rejected lines (see quarantine.py)

A record is `magic "NLsp" | u32 payload length | u32 CRC32 | payload`, little-endian, where the
payload is `u64 record id | u32 line count | u8 destination length | destination | body` and the
CRC covers the length field and the payload. Record ids increase by one per append, across
segments and restarts.

Recovery (`open`) reads every segment and checks every record. A damaged range followed by a
valid record (a flipped bit) is cut out: its bytes are quarantined, counted and logged, and the
segment is rewritten without it; the records after it are kept. A damaged range that runs to the
end of a segment (a torn write) is quarantined, counted, logged and truncated. Nothing before a
damaged range is ever dropped. After recovery, appends always go to a fresh segment.

Durability: with `fsync_interval=0` (the default) each append is fdatasync()ed before `append`
returns, so a power failure loses nothing that was appended. With `fsync_interval=T > 0` appends
are synced at most every T seconds (group commit; the batcher calls `sync()` on a timer), so a
power failure can lose up to the last T seconds of appends. A crash of the process alone loses
nothing either way: the data is already in the kernel's page cache.

Acknowledgement: `ack(upto)` marks records up to an id as delivered; a segment file is deleted
only when every record in it is acknowledged. The `acked` file is written (atomically, without
fsync) so that a restart can skip records known to be delivered; if it is lost, those records
are simply sent again, which InfluxDB absorbs because identical points overwrite themselves.

When the spool would exceed `max_bytes`, `append` refuses the batch with `SpoolFull` (the
backpressure signal) and keeps everything already stored: the oldest data is never discarded to
make room. The caller counts and reports the refusal.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import struct
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

from neckline.store.errors import SpoolFull, SpoolLocked, SpoolWriteError, StoreError
from neckline.store.lineproto import LineBatch
from neckline.store.quarantine import Quarantine, write_private

log = logging.getLogger(__name__)

MAGIC = b"NLsp"
_HEADER = struct.Struct("<4sII")
_META = struct.Struct("<QIB")
_LEN = struct.Struct("<I")
SEGMENT_SUFFIX = ".seg"
ACK_FILE = "acked"
LOCK_FILE = "lock"
QUARANTINE_DIR = "quarantine"

DEFAULT_MAX_BYTES = 512 * 1024 * 1024
DEFAULT_SEGMENT_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class SpoolRecord:
    id: int
    dest: str
    lines: int
    body: bytes


@dataclass
class RecoveryReport:
    """What `open` found: valid and pending records, and every damaged range it dealt with."""

    segments: int = 0
    records: int = 0
    pending_records: int = 0
    pending_lines: int = 0
    corrupt_regions: int = 0
    corrupt_bytes: int = 0
    torn_bytes: int = 0
    quarantined: list[str] = field(default_factory=list)


class _Entry(NamedTuple):
    id: int
    seg: int
    offset: int  # where the body starts in the segment file
    length: int  # body length
    lines: int
    dest: str


class _Segment:
    __slots__ = ("last_id", "live", "no", "path", "read_fd", "size")

    def __init__(self, no: int, path: Path, size: int) -> None:
        self.no = no
        self.path = path
        self.size = size
        self.live = 0
        self.last_id = 0
        self.read_fd: int | None = None


class _Scanned(NamedTuple):
    start: int
    end: int
    id: int
    lines: int
    dest: str
    body_offset: int
    body_length: int


def _parse_at(data: bytes, pos: int) -> _Scanned | None:
    """The valid record starting at `pos`, or None."""
    if pos + _HEADER.size > len(data):
        return None
    magic, length, crc = _HEADER.unpack_from(data, pos)
    start = pos + _HEADER.size
    if magic != MAGIC or length < _META.size or start + length > len(data):
        return None
    payload = memoryview(data)[start : start + length]
    if zlib.crc32(payload, zlib.crc32(_LEN.pack(length))) != crc:
        return None
    rec_id, lines, dest_len = _META.unpack_from(payload)
    if _META.size + dest_len > length:
        return None
    try:
        dest = bytes(payload[_META.size : _META.size + dest_len]).decode("ascii")
    except UnicodeDecodeError:
        return None
    body_offset = start + _META.size + dest_len
    end = start + length
    return _Scanned(pos, end, rec_id, lines, dest, body_offset, end - body_offset)


def _scan(data: bytes) -> tuple[list[_Scanned], list[tuple[int, int]], int | None]:
    """Valid records, damaged ranges followed by a valid record, and where a damaged tail starts."""
    records: list[_Scanned] = []
    damaged: list[tuple[int, int]] = []
    pos = 0
    while pos < len(data):
        rec = _parse_at(data, pos)
        if rec is not None:
            records.append(rec)
            pos = rec.end
            continue
        nxt = data.find(MAGIC, pos + 1)
        while nxt != -1 and _parse_at(data, nxt) is None:
            nxt = data.find(MAGIC, nxt + 1)
        if nxt == -1:
            return records, damaged, pos
        damaged.append((pos, nxt))
        pos = nxt
    return records, damaged, None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """The append-only spool in `directory`. Not thread-safe: use it from one thread/event loop."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        fsync_interval: float = 0.0,
    ) -> None:
        if segment_bytes <= 0 or max_bytes <= 0:
            raise StoreError("spool sizes must be positive")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync_interval = fsync_interval
        self.recovery = RecoveryReport()
        self._quarantine: Quarantine | None = None
        self._segments: dict[int, _Segment] = {}
        self._pending: deque[_Entry] = deque()
        self._pending_lines = 0
        self._bytes = 0
        self._next_id = 1
        self._next_seg = 1
        self._acked = 0
        self._active: _Segment | None = None
        self._write_fd: int | None = None
        self._dirty = False
        self._last_sync = 0.0
        self._lock_fd: int | None = None

    # -- public state ---------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._lock_fd is not None

    @property
    def quarantine(self) -> Quarantine:
        if self._quarantine is None:
            raise StoreError("the spool is not open")
        return self._quarantine

    @property
    def bytes_used(self) -> int:
        return self._bytes

    @property
    def free_bytes(self) -> int:
        return max(0, self.max_bytes - self._bytes)

    @property
    def pending_records(self) -> int:
        return len(self._pending)

    @property
    def pending_lines(self) -> int:
        return self._pending_lines

    @property
    def oldest_pending_id(self) -> int | None:
        return self._pending[0].id if self._pending else None

    @property
    def needs_sync(self) -> bool:
        return self._dirty

    # -- open / close ---------------------------------------------------------------------------

    def open(self) -> RecoveryReport:
        """Take ownership of the directory and recover every unacknowledged record."""
        if self.is_open:
            return self.recovery
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        lock_fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise SpoolLocked(f"spool {self.directory} is in use by another process") from None
        os.fchmod(lock_fd, 0o600)
        os.ftruncate(lock_fd, 0)
        os.write(lock_fd, f"{os.getpid()}\n".encode())
        self._lock_fd = lock_fd
        try:
            self._quarantine = Quarantine(self.directory / QUARANTINE_DIR)
            self._recover()
        except BaseException:
            self.close()
            raise
        return self.recovery

    def close(self) -> None:
        """Sync and release everything; unacknowledged records stay on disk for the next open."""
        try:
            self.sync()
        except SpoolWriteError as exc:
            log.error("spool: %s; the last appends may not survive a power failure", exc)
        if self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = None
        self._active = None
        for seg in self._segments.values():
            if seg.read_fd is not None:
                os.close(seg.read_fd)
                seg.read_fd = None
        self._segments.clear()
        self._pending.clear()
        self._pending_lines = 0
        self._bytes = 0
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def __enter__(self) -> Spool:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- recovery -------------------------------------------------------------------------------

    def _read_acked(self) -> int:
        try:
            return int((self.directory / ACK_FILE).read_text().strip() or 0)
        except FileNotFoundError:
            return 0
        except (ValueError, OSError) as exc:
            log.warning("spool: unreadable %s (%s); every record will be resent", ACK_FILE, exc)
            return 0

    def _recover(self) -> None:
        report = RecoveryReport()
        self._acked = self._read_acked()
        max_id = self._acked
        for stray in self.directory.glob("*.tmp"):
            stray.unlink()
        entries: list[_Entry] = []
        for path in sorted(self.directory.glob("*" + SEGMENT_SUFFIX)):
            try:
                no = int(path.stem, 16)
            except ValueError:
                log.warning("spool: ignoring unexpected file %s", path)
                continue
            self._next_seg = max(self._next_seg, no + 1)
            found = self._recover_segment(no, path, report)
            for rec in found:
                max_id = max(max_id, rec.id)
                if rec.id > self._acked:
                    entries.append(rec)
        entries.sort(key=lambda e: e.id)
        for entry in entries:
            seg = self._segments[entry.seg]
            seg.live += 1
            seg.last_id = max(seg.last_id, entry.id)
            self._pending.append(entry)
            self._pending_lines += entry.lines
        for seg in list(self._segments.values()):
            if seg.live == 0:
                self._delete_segment(seg)
        self._next_id = max_id + 1
        report.segments = len(self._segments)
        report.pending_records = len(self._pending)
        report.pending_lines = self._pending_lines
        self.recovery = report
        if report.pending_records:
            log.info(
                "spool %s: %d unacknowledged batch(es), %d line(s) to replay",
                self.directory, report.pending_records, report.pending_lines,
            )

    def _recover_segment(self, no: int, path: Path, report: RecoveryReport) -> list[_Entry]:
        data = path.read_bytes()
        records, damaged, tail = _scan(data)
        for start, end in damaged:
            self._quarantine_range(path, data, start, end, report)
            report.corrupt_regions += 1
            report.corrupt_bytes += end - start
            log.error(
                "spool: %s: %d damaged bytes at offset %d failed their checksum; quarantined, "
                "the records after them are kept", path.name, end - start, start,
            )
        if tail is not None:
            self._quarantine_range(path, data, tail, len(data), report)
            report.torn_bytes += len(data) - tail
            log.warning(
                "spool: %s: torn or damaged tail of %d bytes at offset %d; quarantined and "
                "truncated", path.name, len(data) - tail, tail,
            )
        if damaged:
            # Rewrite the segment with only its valid records, so the damage is handled once.
            pieces, moved, pos = [], [], 0
            for rec in records:
                pieces.append(data[rec.start : rec.end])
                shift = pos - rec.start
                moved.append(rec._replace(start=rec.start + shift, end=rec.end + shift,
                                          body_offset=rec.body_offset + shift))
                pos += rec.end - rec.start
            records = moved
            tmp = path.with_suffix(".tmp")
            write_private(tmp, b"".join(pieces))
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            _fsync_dir(self.directory)
            size = pos
        elif tail is not None:
            os.truncate(path, tail)
            with open(path, "rb+") as fh:
                os.fsync(fh.fileno())
            size = tail
        else:
            size = len(data)
        os.chmod(path, 0o600)
        report.records += len(records)
        seg = _Segment(no, path, size)
        self._segments[no] = seg
        self._bytes += size
        return [
            _Entry(r.id, no, r.body_offset, r.body_length, r.lines, r.dest) for r in records
        ]

    def _quarantine_range(
        self, path: Path, data: bytes, start: int, end: int, report: RecoveryReport
    ) -> None:
        saved = self.quarantine.save_bytes(f"{path.stem}-{start:010d}.bad", data[start:end])
        if saved is not None:
            report.quarantined.append(str(saved))

    # -- append ---------------------------------------------------------------------------------

    def append(self, batch: LineBatch) -> int:
        """Store a batch durably (per the fsync policy) and return its record id.

        Raises SpoolFull (nothing stored) when the spool has no room, SpoolWriteError on I/O
        failure (nothing stored either: a partial record is cut off again).
        """
        if not self.is_open:
            raise StoreError("the spool is not open")
        dest = batch.dest.encode("ascii")
        rec_id = self._next_id
        meta = _META.pack(rec_id, batch.lines, len(dest)) + dest
        length = len(meta) + len(batch.body)
        size = _HEADER.size + length
        if self._bytes + size > self.max_bytes:
            raise SpoolFull(
                f"spool {self.directory} is full ({self._bytes} of {self.max_bytes} bytes); "
                f"refused a batch of {batch.lines} line(s)"
            )
        crc = zlib.crc32(batch.body, zlib.crc32(meta, zlib.crc32(_LEN.pack(length))))
        header = _HEADER.pack(MAGIC, length, crc)
        seg, fd = self._writable_segment()
        offset = seg.size
        try:
            written = os.writev(fd, [header, meta, batch.body])
            if written < size:
                blob = (header + meta + batch.body)[written:]
                while blob:
                    blob = blob[os.write(fd, blob):]
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, offset)
            raise SpoolWriteError(f"cannot append to spool {seg.path}: {exc}") from exc
        seg.size += size
        seg.live += 1
        seg.last_id = rec_id
        self._bytes += size
        self._next_id += 1
        self._pending.append(
            _Entry(rec_id, seg.no, offset + size - len(batch.body), len(batch.body), batch.lines,
                   batch.dest)
        )
        self._pending_lines += batch.lines
        self._dirty = True
        if self.fsync_interval <= 0 or time.monotonic() - self._last_sync >= self.fsync_interval:
            self.sync()
        return rec_id

    def _writable_segment(self) -> tuple[_Segment, int]:
        if self._active is not None and self._write_fd is not None:
            if self._active.size < self.segment_bytes:
                return self._active, self._write_fd
            self._retire_active()
        no = self._next_seg
        self._next_seg += 1
        path = self.directory / f"{no:016x}{SEGMENT_SUFFIX}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o600)
        except OSError as exc:
            raise SpoolWriteError(f"cannot create spool segment {path}: {exc}") from exc
        os.fchmod(fd, 0o600)
        _fsync_dir(self.directory)
        seg = _Segment(no, path, 0)
        self._segments[no] = seg
        self._active, self._write_fd = seg, fd
        return seg, fd

    def _retire_active(self) -> None:
        self.sync()
        if self._write_fd is not None:
            os.close(self._write_fd)
        self._active, self._write_fd = None, None

    def sync(self) -> None:
        """Flush appended records to stable storage (called per append or on the group timer)."""
        if self._dirty and self._write_fd is not None:
            try:
                os.fdatasync(self._write_fd)
            except OSError as exc:
                raise SpoolWriteError(f"fsync of spool failed: {exc}") from exc
        self._dirty = False
        self._last_sync = time.monotonic()

    # -- read / acknowledge ---------------------------------------------------------------------

    def peek(self, max_lines: int, max_bytes: int) -> list[SpoolRecord]:
        """The oldest unacknowledged records for one destination, within the limits.

        Always returns at least one record when any is pending, even one over the limits.
        """
        out: list[SpoolRecord] = []
        lines = size = 0
        for entry in self._pending:
            if out and (
                entry.dest != out[0].dest
                or lines + entry.lines > max_lines
                or size + entry.length > max_bytes
            ):
                break
            out.append(SpoolRecord(entry.id, entry.dest, entry.lines, self._read(entry)))
            lines += entry.lines
            size += entry.length
        return out

    def _read(self, entry: _Entry) -> bytes:
        seg = self._segments[entry.seg]
        if seg.read_fd is None:
            seg.read_fd = os.open(seg.path, os.O_RDONLY | os.O_CLOEXEC)
        body = os.pread(seg.read_fd, entry.length, entry.offset)
        if len(body) != entry.length:
            raise StoreError(
                f"spool segment {seg.path} is shorter than its index (record {entry.id})"
            )
        return body

    def ack(self, upto_id: int) -> None:
        """Everything up to `upto_id` was delivered (or dealt with): forget it, free its space."""
        if upto_id <= self._acked:
            return
        while self._pending and self._pending[0].id <= upto_id:
            entry = self._pending.popleft()
            self._segments[entry.seg].live -= 1
            self._pending_lines -= entry.lines
        self._acked = upto_id
        tmp = self.directory / (ACK_FILE + ".tmp")
        write_private(tmp, f"{upto_id}\n".encode())
        os.replace(tmp, self.directory / ACK_FILE)
        for seg in list(self._segments.values()):
            if seg.live == 0 and seg.last_id <= upto_id:
                self._delete_segment(seg)

    def _delete_segment(self, seg: _Segment) -> None:
        if seg is self._active:
            self._retire_active()
        if seg.read_fd is not None:
            os.close(seg.read_fd)
            seg.read_fd = None
        try:
            seg.path.unlink()
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                log.error("spool: cannot delete delivered segment %s: %s", seg.path, exc)
                return
        del self._segments[seg.no]
        self._bytes -= seg.size
