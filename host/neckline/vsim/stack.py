"""The whole virtual world: the virtual BlueZ (own process group, own dbus-daemon) plus N
virtual wearers, each the real firmware fed by its own simulated person.

`SimStack` is what `neckline sim`, the e2e fixtures and bench/e2e.py share. Traces are rendered
up front (cached by seed and length under the stack's root), each wearer gets its own address
(`wearer_address(n)`), filesystem and calibration script, and `stop()` ends the wearers' and the
virtual BlueZ's process groups. A `sim.json` in the root names the control address and the
wearers, so `neckline sim ctl` can find a running stack.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from neckline.vble import VBleClient, VBleProcess, start_vble
from neckline.vsim.traces import (
    HOLD_S,
    TraceTruth,
    calibration_script,
    device_settings,
    write_wearer_trace,
)
from neckline.vsim.wearer import VirtualWearer, WearerOptions

STATE_FILE = "sim.json"
FAKE_BLUETOOTHCTL = """#!/bin/sh
# Stand-in for BlueZ's bluetoothctl: bleak only asks it for the version (5.55..5.x accepted).
echo "bluetoothctl: 5.82"
"""


class SimStackError(RuntimeError):
    pass


def wearer_address(n: int) -> str:
    """The BLE address of virtual wearer n (1-based)."""
    if not 1 <= n <= 0xFFFF:
        raise ValueError("wearer numbers run from 1 to 65535")
    return f"C0:DE:5A:00:{n >> 8:02X}:{n & 0xFF:02X}"


def default_root() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/neckline-{os.getuid()}"
    return Path(base) / "neckline-sim"


def fake_bluetoothctl(bin_dir: Path) -> Path:
    """A `bluetoothctl` reporting 5.82, for PATH: bleak checks the BlueZ version at connect."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / "bluetoothctl"
    path.write_text(FAKE_BLUETOOTHCTL)
    path.chmod(0o755)
    return path


class SimStack:
    def __init__(self, root: Path, *, speed: float = 1.0, seed: int = 1,
                 trace_s: float = 3600.0, vble: VBleProcess | None = None) -> None:
        """`vble`: an already running virtual BlueZ to join (the pytest session's); otherwise
        `start()` starts one and `stop()` stops it."""
        self.root = root
        self.speed = speed
        self.seed = seed
        self.trace_s = trace_s
        self.vble = vble
        self._own_vble = vble is None
        self.wearers: dict[int, VirtualWearer] = {}
        self.truths: dict[int, TraceTruth] = {}
        self._client: VBleClient | None = None

    # -- the virtual BlueZ -------------------------------------------------------------------
    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        fake_bluetoothctl(self.root / "bin")
        if self.vble is None:
            self.vble = start_vble(self.root / "vble", state_file=self.root / "bonds.json")
        self._write_state()

    @property
    def dbus_address(self) -> str:
        return self._process().dbus_address

    @property
    def faults(self) -> VBleClient:
        if self._client is None:
            self._client = VBleClient(self._process().control)
        return self._client

    def _process(self) -> VBleProcess:
        if self.vble is None:
            raise SimStackError("the stack is not started")
        return self.vble

    def env(self) -> dict[str, str]:
        """What a bleak program needs: the private system bus and a bluetoothctl on PATH."""
        return {
            "DBUS_SYSTEM_BUS_ADDRESS": self.dbus_address,
            "PATH": f"{self.root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    # -- wearers -----------------------------------------------------------------------------
    def trace(self, seed: int, seconds: float,
              progress: Callable[[float], None] | None = None, hold_s: float = HOLD_S,
              ) -> tuple[Path, TraceTruth]:
        """The trace of person `seed` (rendered once, then reused from the root)."""
        tdir = self.root / "traces"
        tdir.mkdir(parents=True, exist_ok=True)
        stem = f"seed{seed}-{int(seconds)}s" + ("" if hold_s == HOLD_S else f"-hold{hold_s:g}")
        path, truth_path = tdir / f"{stem}.bin", tdir / f"{stem}.truth.npz"
        if path.exists() and truth_path.exists():
            return path, TraceTruth.load(truth_path)
        truth = write_wearer_trace(path, seed, seconds, progress, hold_s)
        truth.save(truth_path)
        return path, truth

    def add_wearer(self, n: int, *, seed: int | None = None, trace_s: float | None = None,
                   speed: float | None = None, calibrate: bool = True,
                   progress: Callable[[float], None] | None = None,
                   settings: Mapping[str, int] | None = None, fresh: bool = True,
                   hold_s: float = HOLD_S) -> VirtualWearer:
        """Start wearer n (address `wearer_address(n)`) on its person's trace (which opens
        with `hold_s` of still, neutral posture, in which the device calibrates)."""
        if n in self.wearers and self.wearers[n].running():
            raise SimStackError(f"wearer {n} is already running")
        person = self.seed + n - 1 if seed is None else seed
        trace, truth = self.trace(person, trace_s or self.trace_s, progress, hold_s)
        self.truths[n] = truth
        wdir = self.root / f"wearer{n}"
        fs = wdir / "fs"
        if fresh and fs.exists():
            import shutil

            shutil.rmtree(fs)
        fs.mkdir(parents=True, exist_ok=True)
        if not (fs / "settings.json").exists():
            (fs / "settings.json").write_text(device_settings(**dict(settings or {})))
        script = None
        if calibrate:
            script = wdir / "calibrate.txt"
            script.write_text(calibration_script())
        wearer = VirtualWearer(WearerOptions(
            address=wearer_address(n), data_dir=fs, bridge=self._process().bridge, trace=trace,
            speed=self.speed if speed is None else speed, script=script,
        ))
        self.wearers[n] = wearer
        try:
            wearer.start()
        except Exception:
            wearer.stop()
            raise
        self._write_state()
        return wearer

    def wait_advertising(self, n: int, timeout: float = 30.0) -> None:
        self.faults.wait_for(self.wearers[n].address, "advertising", timeout=timeout)

    def pair(self, n: int, env: Mapping[str, str] | None = None, timeout: float = 90.0
             ) -> subprocess.CompletedProcess[str]:
        """`neckline pair` wearer n: bonded in the virtual BlueZ and on the device, and on the
        allow-list of the configuration `env` names (NECKLINE_CONFIG)."""
        cmd = [sys.executable, "-m", "neckline", "pair", self.wearers[n].address,
               "--timeout", "30"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {}), **self.env()}, check=False)
        if done.returncode != 0:
            raise SimStackError(f"neckline pair {self.wearers[n].address} failed "
                                f"({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    def stop_wearer(self, n: int) -> None:
        wearer = self.wearers.pop(n, None)
        if wearer is not None:
            wearer.stop()
        self._write_state()

    # -- state and shutdown ------------------------------------------------------------------
    def pids(self) -> list[int]:
        """Process-group leaders this stack started (wearers, the virtual BlueZ)."""
        pids = [w.pid for w in self.wearers.values() if w.pid is not None and w.running()]
        if self.vble is not None and self._own_vble and self.vble.process.poll() is None:
            pids.append(self.vble.pid)
        return pids

    def _write_state(self) -> None:
        if self.vble is None:
            return
        doc: dict[str, Any] = {
            "pid": os.getpid(),
            "dbus_address": self.vble.dbus_address,
            "bridge": self.vble.bridge,
            "control": self.vble.control,
            "speed": self.speed,
            "wearers": {str(n): {"address": w.address, "pid": w.pid}
                        for n, w in sorted(self.wearers.items())},
        }
        tmp = self.root / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        tmp.replace(self.root / STATE_FILE)

    def stop(self) -> None:
        for n in list(self.wearers):
            self.wearers.pop(n).stop()
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.vble is not None and self._own_vble:
            self.vble.stop()
        (self.root / STATE_FILE).unlink(missing_ok=True)

    def __enter__(self) -> SimStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def read_state(root: Path) -> dict[str, Any]:
    """The `sim.json` of a running `neckline sim`."""
    path = root / STATE_FILE
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise SimStackError(f"no running `neckline sim` found ({path} is missing)") from None
    return doc
