"""Helpers for the link tests: the synthetic wearer process and a small stand-in pipeline.

`WearerProcess` runs tests/e2e/link_device.py (the real NecklineBLE, RawRing and FlashLog) under
the real MicroPython binary on the virtual BlueZ's bridge and talks to it over stdin/stdout.

`Pipeline` is the part of `neckline run` the link feeds, reduced to what the tests check: it
consumes the link's queue in order, decodes posture packets with neckline.decode, tracks seqs
with the real SequenceTracker, and answers the link's backfill questions (BackfillPlanner) the
way the production pipeline must: first drain the queue, then note the status, then report the
tracker's gaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neckline.decode import Rejections, decode_event, decode_posture
from neckline.link import (
    Kind,
    LinkRecord,
    RawBackfilled,
    Received,
    StatusRead,
)
from neckline.protocol import Event, Status
from neckline.sequence import SeqRange, SequenceTracker
from tests.firmware.mp import FIRMWARE, popen_firmware

DEVICE_SCRIPT = Path(__file__).with_name("link_device.py")
FIRMWARE_MAIN = FIRMWARE / "main.py"


def expected_angles(seq: int) -> tuple[int, int, int]:
    """link_device.py's sample content for seq, in centidegrees."""
    return ((seq * 37) % 6000) - 1000, ((seq * 11) % 2000) - 1000, (seq * 7) % 500


class WearerProcess:
    """One synthetic wearer: a MicroPython process on the bridge."""

    def __init__(
        self, workdir: Path, bridge: str, address: str, *, period_ms: int = 50, batch: int = 2,
        summary_ms: int = 1000, boot_id: int = 3, prefill: int = 0,
        interpreter: str = "micropython", app: bool = False,
    ) -> None:
        """link_device.py with its arguments, or (`app=True`) the firmware's own entry point,
        firmware/main.py, which runs the real app on the unix port's simulated hardware."""
        workdir.mkdir(parents=True, exist_ok=True)
        self.address = address
        self.quit = "stop" if app else "quit"
        env = {"NECKLINE_VBLE_BRIDGE": bridge, "NECKLINE_VBLE_ADDR": address.lower()}
        if app:
            self.proc = popen_firmware(interpreter, FIRMWARE_MAIN, "--data", str(workdir),
                                       cwd=workdir, env=env)
        else:
            self.proc = popen_firmware(
                interpreter, DEVICE_SCRIPT, str(period_ms), str(batch), str(summary_ms),
                str(boot_id), str(prefill), cwd=workdir, env=env,
            )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.text: list[str] = []
        self.stderr: list[str] = []
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        ready = self.next_json(30)
        if "ready" not in ready and "vdevice" not in ready:
            raise RuntimeError(f"the wearer did not start: {ready} {self.stderr}")
        self.name: str = ready.get("ready", "")

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                obj = json.loads(line)
            except ValueError:
                self.text.append(line.rstrip())
                continue
            if isinstance(obj, dict):
                self.lines.put(obj)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip())

    def next_json(self, timeout: float = 10.0) -> dict[str, Any]:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(
                f"the wearer said nothing in {timeout} s; stderr: {self.stderr[-20:]}; "
                f"stdout: {self.text[-20:]}"
            ) from None

    def command(self, line: str, timeout: float = 10.0) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.next_json(timeout)

    async def acommand(self, line: str, timeout: float = 10.0) -> dict[str, Any]:
        return await asyncio.to_thread(self.command, line, timeout)

    def stats(self) -> dict[str, Any]:
        return self.command("stats")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                assert self.proc.stdin is not None
                self.proc.stdin.write(self.quit + "\n")
                self.proc.stdin.flush()
            try:
                self.proc.wait(10)  # the app stores what is open first
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for thread in self._threads:  # they end at EOF, now that the process is gone
            thread.join(5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(OSError, ValueError):
                if stream is not None:
                    stream.close()


@dataclass
class DeviceView:
    """What the stand-in pipeline learned about one wearer."""

    tracker: SequenceTracker = field(default_factory=SequenceTracker)
    useqs: list[np.ndarray] = field(default_factory=list)
    live_useqs: list[np.ndarray] = field(default_factory=list)
    content_errors: int = 0
    summary_indices: set[int] = field(default_factory=set)
    events: list[Event] = field(default_factory=list)
    notices: list[Any] = field(default_factory=list)
    received: dict[Kind, int] = field(default_factory=lambda: dict.fromkeys(Kind, 0))
    settled: list[SeqRange] = field(default_factory=list)
    last_receive_mono: float = 0.0

    def seqs(self) -> np.ndarray:
        if not self.useqs:
            return np.empty(0, np.int64)
        return np.unique(np.concatenate(self.useqs))

    def of(self, kind: type) -> list[Any]:
        return [n for n in self.notices if isinstance(n, kind)]


class Pipeline:
    """Consumes link records in order; answers BackfillPlanner questions."""

    def __init__(self, check_content: bool = True) -> None:
        # link_device.py's samples are a function of seq; the firmware app's are not.
        self.check_content = check_content
        self.queue: asyncio.Queue[LinkRecord] = asyncio.Queue()
        self.devices: dict[str, DeviceView] = {}
        self.rejections = Rejections()
        self.order: list[str] = []  # record types, for ordering assertions
        self.received_log: list[Received] = []
        self.errors: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self.changed = asyncio.Event()

    def sink(self, record: LinkRecord) -> None:
        self.queue.put_nowait(record)

    def view(self, device: str) -> DeviceView:
        return self.devices.setdefault(device, DeviceView())

    def start(self) -> None:
        self._task = asyncio.create_task(self._consume())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _consume(self) -> None:
        while True:
            record = await self.queue.get()
            try:
                self._handle(record)
            except Exception as exc:  # kept for the test to fail on; the queue keeps draining
                self.errors.append(f"{type(record).__name__}: {type(exc).__name__}: {exc}")
            finally:
                self.queue.task_done()
                self.changed.set()

    def _handle(self, record: LinkRecord) -> None:
        view = self.view(record.device)
        self.order.append(type(record).__name__ if not isinstance(record, Received)
                          else f"Received:{record.kind}")
        if isinstance(record, Received):
            self.received_log.append(record)
            view.received[record.kind] += 1
            view.last_receive_mono = time.monotonic()
            if record.kind is Kind.POSTURE:
                samples, summaries, _ = decode_posture([record.data], self.rejections)
                if len(samples):
                    result = view.tracker.observe(samples)
                    view.useqs.append(result.useq)
                    if not samples.backfill[0]:
                        view.live_useqs.append(result.useq)
                    for k in range(len(samples) if self.check_content else 0):
                        want = np.asarray(expected_angles(int(samples.seq[k])), np.float64)
                        got = np.array([samples.flexion_deg[k], samples.lateral_deg[k],
                                        samples.rotation_deg[k]], np.float64) * 100
                        if not np.allclose(got, want, atol=0.01):  # NaN never matches
                            view.content_errors += 1
                view.summary_indices.update(int(i) for i in summaries.record_index)
            elif record.kind is Kind.EVENT:
                event = decode_event(record.data, self.rejections)
                if event is not None:
                    view.events.append(event)
            return
        view.notices.append(record)
        if isinstance(record, StatusRead):
            status = record.status
            view.tracker.note_status(status.boot_id, status.next_seq, status.oldest_seq)
        elif isinstance(record, RawBackfilled) and record.settled:
            view.tracker.settle_request(record.requested)
            view.settled.append(record.requested)

    # --- BackfillPlanner ------------------------------------------------------------------
    async def missing_ranges(self, device: str, status: Status) -> Sequence[SeqRange]:
        await self.queue.join()  # every record before (the StatusRead included) is handled
        return self.view(device).tracker.missing()

    async def summary_from(self, device: str, status: Status) -> int | None:
        await self.queue.join()
        seen = self.view(device).summary_indices
        return max(seen) + 1 if seen else status.oldest_record

    # --- waiting helpers ------------------------------------------------------------------
    async def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 0.2))

