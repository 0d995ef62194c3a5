"""Where data that cannot be delivered is kept for a human to look at, instead of vanishing.

Two kinds end up here: lines the server refused (a field type conflict, a line too large even on
its own), appended to `rejected.lp` under a `#` comment that says when, where and why (so the file
can be fixed and replayed with any line-protocol tool), and byte ranges of spool segments that
failed their checksum, each in its own `.bad` file. The directory is bounded; past the limit,
items are counted in `dropped` and logged instead of written.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

REJECTED_FILE = "rejected.lp"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)


def write_private(path: Path, data: bytes, *, append: bool = False) -> None:
    """Write (or append) `data` to a file only this user can read."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    finally:
        os.close(fd)


class Quarantine:
    def __init__(self, directory: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.dropped = 0
        _private_dir(self.directory)
        self.bytes_used = sum(p.stat().st_size for p in self.directory.iterdir() if p.is_file())

    @property
    def rejected_path(self) -> Path:
        return self.directory / REJECTED_FILE

    def _room_for(self, size: int, what: str) -> bool:
        if self.bytes_used + size <= self.max_bytes:
            return True
        self.dropped += 1
        log.error(
            "quarantine %s is full (%d bytes); %s not kept (%d dropped so far)",
            self.directory, self.bytes_used, what, self.dropped,
        )
        return False

    def save_bytes(self, name: str, data: bytes) -> Path | None:
        """Keep a damaged byte range; returns where, or None if the quarantine is full."""
        if not self._room_for(len(data), f"{len(data)} damaged bytes from {name}"):
            return None
        path = self.directory / name
        write_private(path, data)
        self.bytes_used += len(data)
        return path

    def save_lines(self, dest: str, reason: str, lines: Sequence[bytes]) -> Path | None:
        """Append refused lines under a comment giving time, destination and reason."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        why = " ".join(reason.split())[:500]
        blob = f"# {stamp} dest={dest} {why}\n".encode() + b"\n".join(lines) + b"\n"
        if not self._room_for(len(blob), f"{len(lines)} rejected line(s)"):
            return None
        write_private(self.rejected_path, blob, append=True)
        self.bytes_used += len(blob)
        return self.rejected_path
