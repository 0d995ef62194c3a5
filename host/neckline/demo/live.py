"""The demo's live part: one virtual wearer, the real service, posture on the terminal.

The chain is the one a user runs, with only the hardware replaced: the firmware (MicroPython
unix port) on a simulated person's IMU trace → the virtual BlueZ (private D-Bus) → `neckline pair`
→ `neckline run` (bleak, the pipeline, the spool) → the local InfluxDB. What the terminal shows
is read back from InfluxDB once a second, so it is what Grafana would show: the newest stored
flexion and lateral bend, how old that sample is, the device's strain flag and how many samples
are stored.

The trace opens with a still, neutral hold in which the device calibrates (its button is pressed
at 20 s device time); angles appear once it has.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

from neckline.config import DevicesConfig
from neckline.demo.workspace import DEMO_DB, Workspace
from neckline.influxql import InfluxQueryError, query, series_values
from neckline.protocol import SampleFlag
from neckline.vsim import SimStack

HOLD_S = 30.0  # the trace's calibration hold (the shortest the button press allows, plus room)
BAR_DEG = 45.0  # the posture bars span +-45 degrees


@dataclass
class LiveResult:
    seconds: float = 0.0
    stored: int = 0  # posture rows of the device in InfluxDB
    calibrated: int = 0  # ... with angles (after calibration)
    device_samples: int = 0  # samples the device made (its next_seq at the end)
    host_exit: int | None = None


def _bar(deg: float | None, width: int = 21) -> str:
    """A centred gauge: '|' marks zero, '#' the angle."""
    cells = [" "] * width
    mid = width // 2
    cells[mid] = "|"
    if deg is not None:
        pos = round(mid + max(-1.0, min(1.0, deg / BAR_DEG)) * mid)
        cells[pos] = "#"
    return "[" + "".join(cells) + "]"


def _angle(v: Any) -> str:
    return "   --  " if v is None else f"{float(v):+6.1f}°"


class LiveView:
    """Reads the newest stored posture and prints it: redrawn in place on a terminal, a line
    every 10 s elsewhere."""

    def __init__(self, url: str, tag: str, out: TextIO) -> None:
        self.url = url
        self.tag = tag
        self.out = out
        self.tty = out.isatty()
        self._last_line = -1e9

    def rows(self, q: str) -> list[dict[str, Any]]:
        try:
            return series_values(query(self.url, q, db=DEMO_DB, timeout=5.0))
        except InfluxQueryError as exc:
            if "not found" in str(exc):  # the service has not created the schema yet
                return []
            raise

    def counts(self) -> tuple[int, int]:
        where = f"WHERE \"device\" = '{self.tag}'"
        total = self.rows(f'SELECT count("seq") FROM "raw"."posture" {where}')
        cal = self.rows(f'SELECT count("flexion") FROM "raw"."posture" {where}')
        return (int(total[0]["count"]) if total else 0, int(cal[0]["count"]) if cal else 0)

    def show(self, elapsed: float, note: str) -> None:
        newest = self.rows(
            'SELECT "flexion", "lateral", "flags" FROM "raw"."posture" '
            f"WHERE \"device\" = '{self.tag}' ORDER BY time DESC LIMIT 1")
        stored, _ = self.counts()
        if newest:
            row = newest[0]
            age = max(0.0, time.time() - int(row["time"]) / 1000.0)
            flags = int(row.get("flags") or 0)
            strain = "STRAIN" if flags & SampleFlag.IN_STRAIN else "ok"
            if not flags & SampleFlag.CALIBRATED:
                strain = "calibrating"
            elif flags & SampleFlag.NOT_WORN:
                strain = "off the neck"
            text = (f"{elapsed:4.0f} s  flexion {_angle(row.get('flexion'))} "
                    f"{_bar(row.get('flexion'))}  lateral {_angle(row.get('lateral'))} "
                    f"{_bar(row.get('lateral'), 11)}  {strain:<11} stored {stored:5d}, "
                    f"newest {age:4.1f} s old")
        else:
            text = f"{elapsed:4.0f} s  {note}"
        if self.tty:
            self.out.write("\r\x1b[2K  " + text)
            self.out.flush()
        elif elapsed - self._last_line >= 10.0:
            self.out.write("  " + text + "\n")
            self.out.flush()
            self._last_line = elapsed

    def done(self) -> None:
        if self.tty:
            self.out.write("\n")
            self.out.flush()


class LiveRun:
    """The virtual stack plus `neckline run`, for `seconds` of live posture."""

    def __init__(self, ws: Workspace, url: str, *, seconds: float, seed: int,
                 out: TextIO) -> None:
        self.ws = ws
        self.url = url
        self.seconds = seconds
        self.seed = seed
        self.out = out
        self.stack = SimStack(ws.sim, speed=1.0, seed=seed, trace_s=seconds + HOLD_S + 120.0)
        self.host: subprocess.Popen[bytes] | None = None

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def run(self) -> LiveResult:
        result = LiveResult()
        try:
            self.stack.start()
            wearer = self.stack.add_wearer(1, hold_s=HOLD_S)
            self.say(f"  virtual wearer {wearer.address} booted (firmware on MicroPython, "
                     f"pid {wearer.pid})")
            self.stack.wait_advertising(1)
            self.stack.pair(1, self.ws.env())
            self.say("  paired and bonded with `neckline pair`; starting `neckline run` "
                     f"(log: {self.ws.host_log})")
            self._start_host()
            tag = DevicesConfig().tag(wearer.address)
            view = LiveView(self.url, tag, self.out)
            t0 = time.monotonic()
            while (elapsed := time.monotonic() - t0) < self.seconds:
                if self.host is not None and self.host.poll() is not None:
                    raise RuntimeError(f"`neckline run` exited with {self.host.returncode}; "
                                       f"see {self.ws.host_log}")
                note = ("connecting, then calibrating (the wearer holds still; the device "
                        "button is pressed at 20 s)")
                view.show(elapsed, note)
                time.sleep(1.0)
            view.done()
            result.seconds = time.monotonic() - t0
            # The newest samples may still sit in the device's packet (up to 250 ms) and the
            # service's batch: give them a moment to arrive before stopping the service.
            result.device_samples = int(wearer.status()["next_seq"])
            deadline = time.monotonic() + 10.0
            while view.counts()[0] < result.device_samples and time.monotonic() < deadline:
                time.sleep(0.5)
            result.host_exit = self._stop_host()
            result.stored, result.calibrated = view.counts()
        finally:
            self._stop_host()
            self.stack.stop()
        return result

    def _start_host(self) -> None:
        env = {**os.environ, **self.ws.env(), **self.stack.env()}
        with self.ws.host_log.open("ab") as log:
            self.host = subprocess.Popen(
                [sys.executable, "-m", "neckline", "run", "--config", str(self.ws.config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                start_new_session=True,
            )

    def _stop_host(self) -> int | None:
        """SIGTERM (the service stores what it has and stops), then the process group."""
        proc = self.host
        if proc is None:
            return None
        code: int | None = None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = proc.wait(60)
        else:
            code = proc.returncode
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        self.host = None
        return code
