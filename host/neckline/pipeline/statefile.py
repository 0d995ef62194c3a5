"""The pipeline's persisted state: one JSON file, replaced atomically, owner-only.

Written to a temporary file in the same directory (created 0600), optionally fdatasync'ed, then
renamed over the old one (and the directory fsync'ed), so a reader, or a restart after SIGKILL or
a power cut, sees either the old or the new state, never a mixture. A file that cannot be read is
moved aside (never deleted) with an error in the log, and the pipeline starts afresh.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from neckline.paths import ensure_private_dir

log = logging.getLogger(__name__)


def write_json_atomic(path: Path, data: Any, *, fsync: bool = False) -> None:
    """Replace `path` with `data` as JSON, atomically, readable by the owner only."""
    ensure_private_dir(path.parent)
    text = json.dumps(data, separators=(",", ":"))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            if fsync:
                os.fdatasync(fh.fileno())
        os.chmod(tmp, 0o600)  # O_CREAT keeps the mode of a leftover temp file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if fsync:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class StateFile:
    """Load and save the pipeline state document."""

    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.path = path
        self.fsync = fsync
        self.writes = 0

    def load(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            return data
        except ValueError as exc:
            aside = self.path.with_name(f"{self.path.name}.bad-{int(time.time())}")
            os.replace(self.path, aside)
            log.error("pipeline state %s is unreadable (%s); moved to %s, starting afresh",
                      self.path, exc, aside)
            return None

    def save(self, data: dict[str, Any]) -> None:
        write_json_atomic(self.path, data, fsync=self.fsync)
        self.writes += 1
