"""Start and stop the virtual BlueZ process from Python (pytest fixtures, demos, tools).

The process gets a session (and so a process group) of its own; it starts its private
dbus-daemon as a child in that group. `stop()` signals exactly that group, so nothing of the
stack survives it, and nothing outside it is touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neckline.vble.client import VBleClient


class VBleStartError(RuntimeError):
    """The virtual BlueZ did not come up; the message carries the end of its log."""


@dataclass
class VBleProcess:
    process: subprocess.Popen[bytes]
    dbus_address: str
    bridge: str
    control: str
    dbus_pid: int | None
    log_path: Path
    _clients: list[VBleClient] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def client(self) -> VBleClient:
        c = VBleClient(self.control)
        self._clients.append(c)
        return c

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the server (it stops its own dbus-daemon), then SIGKILL whatever is left
        of its process group."""
        for c in self._clients:
            c.close()
        proc = self.process
        pgid = proc.pid  # start_new_session made it the group leader
        if proc.poll() is None:
            proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
        if proc.stdout is not None:
            proc.stdout.close()


def start_vble(
    runtime_dir: Path,
    *,
    state_file: Path | None = None,
    timeout: float = 20.0,
    log_level: str = "INFO",
    env: dict[str, str] | None = None,
) -> VBleProcess:
    """Start `python -m neckline.vble serve` with its own private bus; wait for its ready line."""
    runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_path = runtime_dir / "vble.log"
    cmd = [sys.executable, "-m", "neckline.vble", "serve", "--runtime-dir", str(runtime_dir),
           "--log-level", log_level]
    if state_file is not None:
        cmd += ["--state-file", str(state_file)]
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log_file,
            start_new_session=True,
            env=env,
        )
    try:
        ready = _read_ready(proc, timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return VBleProcess(
        process=proc,
        dbus_address=ready["dbus_address"],
        bridge=ready["bridge"],
        control=ready["control"],
        dbus_pid=ready.get("dbus_pid"),
        log_path=log_path,
    )


def _read_ready(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise VBleStartError(f"virtual BlueZ not ready within {timeout} s")
            if sel.select(left):
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise VBleStartError(f"virtual BlueZ exited with status {proc.wait()}")
                buf += chunk
    ready: dict[str, Any] = json.loads(buf.split(b"\n", 1)[0])
    return ready


@contextlib.contextmanager
def running_vble(runtime_dir: Path, **kwargs: object) -> Iterator[VBleProcess]:
    """`start_vble` as a context manager that always stops the whole process group."""
    vble = start_vble(runtime_dir, **kwargs)  # type: ignore[arg-type]
    try:
        yield vble
    finally:
        vble.stop()
