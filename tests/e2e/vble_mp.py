"""Start a MicroPython peripheral as a long-running process on the virtual-BLE bridge.

tests/firmware/mp.py runs scripts to completion; a peripheral has to keep running while bleak
talks to it, so this starts it with Popen (same interpreter and import path: the shims first)
in its own process group, and stops it by that group.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.firmware.mp import micropython_binary, micropython_path


class MicroPythonPeripheral:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self._buf = b""

    def read_json(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next JSON line the script printed (non-JSON lines are skipped)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                while b"\n" in self._buf:
                    line, self._buf = self._buf.split(b"\n", 1)
                    with contextlib.suppress(ValueError):
                        obj = json.loads(line)
                        if isinstance(obj, dict):
                            return obj
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the MicroPython peripheral printed nothing in time")
                if sel.select(left):
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        raise EOFError(f"MicroPython exited with {self.proc.wait()}")
                    self._buf += chunk

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@contextlib.contextmanager
def micropython_peripheral(
    script: Path, env: dict[str, str], stderr_path: Path
) -> Iterator[MicroPythonPeripheral]:
    binary = micropython_binary()
    if binary is None:
        raise RuntimeError("micropython binary not found")
    with open(stderr_path, "ab") as err:
        proc = subprocess.Popen(
            [binary, str(script)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            env={**os.environ, **env, "MICROPYPATH": micropython_path()},
            start_new_session=True,
        )
    peripheral = MicroPythonPeripheral(proc)
    try:
        yield peripheral
    finally:
        peripheral.stop()
