"""The pipeline: the link's records in, durable line protocol out, state saved so nothing is lost.

    pipeline = Pipeline(batcher, data_dir / "pipeline", PipelineSettings.from_config(cfg))
    supervisor = LinkSupervisor(sink=pipeline.put, planner=pipeline, ...)
    task = asyncio.create_task(pipeline.run(stop))   # consumes the records in steps

One step takes every record that arrived (in order), lets each device's DeviceState take its
records and release what may go out, then commits:

1. **clocks** (`clocks.json`): the aligner state of every device, written when any changed (it is
   kept there only, not again in the state file). The
   clock mapping is append-only, so saving it *before* the points it placed reach the spool means a
   crash at any later moment only leads to the same samples being placed again at the same
   milliseconds (docs/alignment.md, "Why storage is idempotent").
2. **spool**: the step's posture rows and points, as batches of at most `max_lines` lines
   (Batcher.submit: appended and fdatasync'ed before it returns, by default).
3. **state** (`state.json`): everything else of every device (sequence tracker, filters, strain
   detector, held samples, pending events and summaries, counters).

A crash before 3 leaves the old state: the link backfills the same samples again (they are missing
for the restored tracker), they get the same timestamps and values, and InfluxDB overwrites the
points with themselves. A crash after 3 has everything spooled. So every sample is stored exactly
once, also after SIGKILL. If the spool refuses a step (full, I/O error) the step's devices are
rolled back to their saved state (keeping their clocks) and the link fetches the samples again
later: backpressure, nothing dropped.

The planner side (`missing_ranges`, `summary_from`) first waits until every record the link
produced for that device has been processed, as neckline.link.planner requires.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from neckline.align import ClockAligner
from neckline.config import default_device_tag
from neckline.link.records import LinkRecord
from neckline.pipeline.device import DeviceState, StepOutput
from neckline.pipeline.settings import PipelineSettings
from neckline.pipeline.statefile import StateFile
from neckline.protocol import Status
from neckline.sequence import SeqRange
from neckline.store.errors import StoreError
from neckline.store.lineproto import LineBatch, split_lines
from neckline.store.records import Point, encode_points

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
CLOCKS_FILE = "clocks.json"
DOC_VERSION = 1
# The rollup continuous query recomputes the last 15 minutes (store/schema.py CQ_RESAMPLE);
# posture older than this when stored needs an explicit rollup_range.
ROLLUP_WINDOW_MS = 14 * 60_000


class BatchSink(Protocol):
    """Where line protocol goes: neckline.store.Batcher (or anything with its `submit`).

    A sink that also has `expedite()` (the Batcher) is told after each step that the step's
    batches are complete, so they are sent at once instead of after the store's `max_delay`:
    the step already gathered `batch_interval` of input, waiting again would only add latency.
    """

    def submit(self, batch: LineBatch) -> int: ...


@dataclass
class PipelineStats:
    steps: int = 0
    records: int = 0
    refused_steps: int = 0  # the store refused a step's output: rolled back, fetched again later
    errors: int = 0  # unexpected errors while processing a device (rolled back, logged)
    invalid_points: int = 0  # points the schema refused (a bug; logged)
    state_writes: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


_Outputs = tuple[dict[str, StepOutput], dict[str, int]]  # per device: output, records taken


@dataclass
class _Prepared:
    outputs: dict[str, StepOutput]
    counts: dict[str, int]
    clocks: dict[str, Any]
    batches: list[LineBatch]
    refused: StoreError | None = field(default=None)


class Pipeline:
    def __init__(
        self,
        sink: BatchSink,
        state_dir: Path,
        settings: PipelineSettings | None = None,
        *,
        tag_for: Callable[[str], str] = default_device_tag,
        max_lines: int = 5000,
        batch_interval: float = 0.5,
        max_step_records: int = 40_000,
        step_records_per_device: int = 2_000,
    ) -> None:
        self.sink = sink
        self.settings = settings or PipelineSettings()
        self.tag_for = tag_for
        self.max_lines = max_lines
        self.batch_interval = batch_interval
        self.max_step_records = max_step_records
        self.step_records_per_device = step_records_per_device
        self._lock = threading.RLock()  # device states: one step at a time, in any thread
        self._step_lock: asyncio.Lock | None = None
        self._last_snapshot: dict[str, Any] = {"devices": {}, "stats": {}, "broken_states": []}
        self.stats = PipelineStats()
        self.devices: dict[str, DeviceState] = {}
        self._state = StateFile(state_dir / STATE_FILE, fsync=self.settings.fsync)
        self._clocks = StateFile(state_dir / CLOCKS_FILE, fsync=self.settings.fsync)
        self._committed: dict[str, dict[str, Any]] = {}  # device -> state as last saved
        self._clock_states: dict[str, dict[str, Any]] = {}  # device -> aligner as last saved
        self._broken: dict[str, Any] = {}  # device states that could not be restored: kept
        self._inbox: deque[LinkRecord] = deque()
        self._put: Counter[str] = Counter()
        self._done: Counter[str] = Counter()
        self._wake: asyncio.Event | None = None
        self._progress: asyncio.Condition | None = None
        self._urgent = 0
        self._rollups: list[list[int]] = []  # [start, end) UTC ms of backfill to roll up
        self._load()

    # --- state --------------------------------------------------------------------------------
    def _load(self) -> None:
        doc = self._state.load()
        clocks = self._clocks.load() or {}
        if doc is None:
            return
        if doc.get("version") != DOC_VERSION:
            log.error("pipeline state %s has version %r; starting afresh", self._state.path,
                      doc.get("version"))
            return
        self._broken = dict(doc.get("broken", {}))
        self._rollups = [[int(a), int(b)] for a, b in doc.get("rollups", [])]
        newer_clocks = clocks.get("devices", {}) if clocks.get("version") == DOC_VERSION else {}
        for address, state in doc.get("devices", {}).items():
            # The aligner lives in clocks.json, which is never older than state.json (files of
            # earlier versions also kept it in the state: then the newer one wins).
            aligner = newer_clocks.get(address, state.get("aligner"))
            state = {**state, "aligner": ClockAligner(self.settings.align).to_state()
                     if aligner is None else aligner}
            try:
                dev = DeviceState.from_state(state, self.tag_for(address), self.settings)
            except (ValueError, KeyError, TypeError) as exc:
                log.error("%s: saved pipeline state unusable (%s); kept aside in %s under "
                          "'broken', the device starts afresh", address, exc, self._state.path)
                self._broken[address] = state
                continue
            self.devices[address] = dev
            self._commit(address, state)
        if self.devices:
            log.info("pipeline state restored for %d device(s) from %s", len(self.devices),
                     self._state.path)

    def _device(self, address: str) -> DeviceState:
        dev = self.devices.get(address)
        if dev is None:
            dev = DeviceState(address, self.tag_for(address), self.settings)
            self.devices[address] = dev
            self._commit(address, dev.to_state())
        return dev

    def _commit(self, address: str, state: dict[str, Any]) -> None:
        """Note a device's state as saved: its aligner for clocks.json, the rest for state.json."""
        rest = dict(state)
        self._clock_states[address] = rest.pop("aligner")
        self._committed[address] = rest

    def _save_state(self) -> None:
        self._state.save({"version": DOC_VERSION, "devices": self._committed,
                          "broken": self._broken, "rollups": self._rollups})
        self.stats.state_writes += 1

    def _save_clocks(self, clocks: dict[str, Any]) -> None:
        self._clocks.save({"version": DOC_VERSION, "devices": clocks})
        self.stats.state_writes += 1

    # --- the link's side ----------------------------------------------------------------------
    def put(self, record: LinkRecord) -> None:
        """The link's sink: queue a record (never blocks, never raises)."""
        self._inbox.append(record)
        self._put[record.device] += 1
        if self._wake is not None:
            self._wake.set()

    async def _caught_up(self, device: str) -> None:
        target = self._put[device]
        if self._done[device] >= target or self._progress is None:
            return
        self._urgent += 1
        if self._wake is not None:
            self._wake.set()
        try:
            async with self._progress:
                await self._progress.wait_for(lambda: self._done[device] >= target)
        finally:
            self._urgent -= 1

    async def missing_ranges(self, device: str, status: Status) -> Sequence[SeqRange]:
        await self._caught_up(device)
        with self._lock:
            dev = self.devices.get(device)
            return [] if dev is None else dev.missing_ranges()

    async def summary_from(self, device: str, status: Status) -> int | None:
        await self._caught_up(device)
        with self._lock:
            dev = self.devices.get(device)
            return None if dev is None else dev.summary_from(status)

    # --- processing ---------------------------------------------------------------------------
    def process(self, records: Iterable[LinkRecord]) -> None:
        """One step over `records` (in arrival order): take, release, commit. Synchronous; the
        service uses `run`, which does the same with the CPU work off the event loop."""
        items = list(records)
        self._finish(self._submit(self._prepare(lambda: self._take(items))))

    def tick(self, now_ms: int | None = None) -> None:
        """Release what only waited for time to pass (clock placement after the data stopped,
        events and summary records)."""
        self._finish(self._submit(self._prepare(lambda: self._waiting(now_ms, flush=False))))

    def flush(self) -> None:
        """Place and store everything that only waits for clock evidence (shutdown)."""
        self._finish(self._submit(self._prepare(lambda: self._waiting(None, flush=True))))

    async def atick(self, now_ms: int | None = None) -> None:
        """`tick` for the service: serialised with the steps of `run`, off the event loop."""
        await self._astep(lambda: self._waiting(now_ms, flush=False))

    async def _astep(self, compute: Callable[[], _Outputs]) -> None:
        if self._step_lock is None:
            self._step_lock = asyncio.Lock()
        async with self._step_lock:
            prepared = await asyncio.to_thread(self._prepare, compute)
            done = self._submit(prepared)  # the spool belongs to the event loop
            await asyncio.to_thread(self._finish, done)

    def _take(self, records: list[LinkRecord]) -> _Outputs:
        by_device: dict[str, list[LinkRecord]] = {}
        for record in records:
            by_device.setdefault(record.device, []).append(record)
        outputs: dict[str, StepOutput] = {}
        for address, items in by_device.items():
            dev = self._device(address)
            try:
                down = dev.take(items)
                outputs[address] = dev.release(dev.input_clock, flush=down,
                                               max_lines=self.max_lines)
            except Exception:
                self.stats.errors += 1
                log.exception("%s: processing %d records failed; the device's state is rolled "
                              "back and the samples will be fetched again", dev.tag, len(items))
                self._rollback(address, dev.aligner.to_state())
        counts = {a: len(v) for a, v in by_device.items()}
        self.stats.steps += 1
        self.stats.records += len(records)
        return outputs, counts

    def _waiting(self, now_ms: int | None, *, flush: bool) -> _Outputs:
        now = None if flush else (wall_ms() if now_ms is None else now_ms)
        outputs: dict[str, StepOutput] = {}
        for address, dev in self.devices.items():
            if len(dev.held) or dev.events or dev.summaries:
                try:
                    outputs[address] = dev.release(now, flush=flush, max_lines=self.max_lines)
                except Exception:
                    self.stats.errors += 1
                    log.exception("%s: releasing waiting samples failed; rolled back", dev.tag)
                    self._rollback(address, dev.aligner.to_state())
        return outputs, {}

    def _rollback(self, address: str, aligner: dict[str, Any]) -> None:
        state = {**self._committed[address], "aligner": aligner}
        self.devices[address] = DeviceState.from_state(state, self.tag_for(address),
                                                       self.settings)
        self._commit(address, state)

    def _prepare(self, compute: Callable[[], _Outputs]) -> _Prepared:
        """CPU work and the clocks: everything before the spool (any thread)."""
        with self._lock:
            outputs, counts = compute()
            clocks = dict(self._clock_states)
            changed = False
            for address in outputs:
                new = self.devices[address].aligner.to_state()
                if new != clocks.get(address):
                    clocks[address] = new
                    changed = True
            if changed:
                self._save_clocks(clocks)
            return _Prepared(outputs, counts, clocks, self._batches(outputs.values()))

    def _submit(self, prepared: _Prepared) -> _Prepared:
        """Hand the step's batches to the store (the event loop's thread, if there is one)."""
        try:
            for batch in prepared.batches:
                self.sink.submit(batch)
        except StoreError as exc:
            prepared.refused = exc
        expedite = getattr(self.sink, "expedite", None)
        if prepared.batches and callable(expedite):
            expedite()
        return prepared

    def _finish(self, prepared: _Prepared) -> None:
        """After the spool: save the state, or roll back what the store refused (any thread)."""
        with self._lock:
            outputs = prepared.outputs
            if prepared.refused is not None:
                self.stats.refused_steps += 1
                log.error("store refused the output of %d device(s): %s; their state is rolled "
                          "back and the samples will be fetched again", len(outputs),
                          prepared.refused)
                for address in outputs:
                    self._rollback(address, prepared.clocks[address])
            elif outputs:
                for address in outputs:
                    self._committed[address] = self.devices[address].to_state(aligner=False)
                    self._clock_states[address] = prepared.clocks[address]
                self._note_rollups(outputs.values())
                self._save_state()
            for address, n in prepared.counts.items():
                self._done[address] += n

    def _note_rollups(self, outputs: Iterable[StepOutput]) -> None:
        old = wall_ms() - ROLLUP_WINDOW_MS
        for out in outputs:
            if out.span is not None and out.span[0] < old:
                self._rollups.append([out.span[0], out.span[1] + 1])
        if len(self._rollups) > 1:
            merged: list[list[int]] = []
            for start, end in sorted(self._rollups):
                if merged and start <= merged[-1][1] + 60_000:
                    merged[-1][1] = max(merged[-1][1], end)
                else:
                    merged.append([start, end])
            self._rollups = merged

    def take_rollups(self) -> list[tuple[int, int]]:
        """Ranges of posture stored too late for the rollup continuous query, for
        store.rollup_range once the store has delivered them (call `return_rollups` on failure).
        """
        with self._lock:
            out = [(a, b) for a, b in self._rollups]
            self._rollups = []
            return out

    def return_rollups(self, ranges: Iterable[tuple[int, int]]) -> None:
        with self._lock:
            self._rollups.extend([a, b] for a, b in ranges)

    def _batches(self, outputs: Iterable[StepOutput]) -> list[LineBatch]:
        """The step's line protocol as batches of at most max_lines lines per destination."""
        pieces: dict[str, list[tuple[bytes, int]]] = {}
        points: list[Point] = []
        for out in outputs:
            for batch in out.posture:
                pieces.setdefault(batch.dest, []).append((batch.body, batch.lines))
            points.extend(out.points)
        if points:
            report = encode_points(points)
            self.stats.invalid_points += len(report.refused)
            for batch in report.batches:
                pieces.setdefault(batch.dest, []).append((batch.body, batch.lines))
        batches: list[LineBatch] = []
        for dest, parts in pieces.items():
            body: list[bytes] = []
            count = 0
            for chunk, lines in _split(parts, self.max_lines):
                if count and count + lines > self.max_lines:
                    batches.append(LineBatch(dest, b"\n".join(body), count))
                    body, count = [], 0
                body.append(chunk)
                count += lines
            if count:
                batches.append(LineBatch(dest, b"\n".join(body), count))
        return batches

    # --- the asyncio side ---------------------------------------------------------------------
    def step_size(self) -> int:
        """Records per step at most: enough per device that its fixed per-step work (state,
        clock fit, filter set-up) is small, few enough that the store gets work early and
        often while a backlog floods in."""
        per = self.step_records_per_device * max(1, len(self.devices))
        return min(self.max_step_records, per)

    async def run(self, stop: asyncio.Event) -> None:
        """Process records in steps until `stop` is set and everything queued is processed.

        A step takes at most `step_size()` records; its CPU work and state files run in a
        worker thread, so bleak's callbacks and the store's sender keep running meanwhile.
        """
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()
        stopper = asyncio.ensure_future(stop.wait())
        try:
            while True:
                if not self._inbox:
                    if stop.is_set():
                        break
                    self._wake.clear()
                    waker = asyncio.ensure_future(self._wake.wait())
                    await asyncio.wait({waker, stopper}, return_when=asyncio.FIRST_COMPLETED)
                    waker.cancel()
                    continue
                size = self.step_size()
                full = len(self._inbox) >= size
                if self.batch_interval > 0 and not (self._urgent or full or stop.is_set()):
                    # Gather a little: fewer, larger steps (each saves the state once).
                    await asyncio.wait({stopper}, timeout=self.batch_interval)
                take = min(len(self._inbox), size)
                records = [self._inbox.popleft() for _ in range(take)]
                await self._astep(partial(self._take, records))
                async with self._progress:
                    self._progress.notify_all()
        finally:
            stopper.cancel()
            if self._progress is not None:
                async with self._progress:
                    self._progress.notify_all()

    # --- status -------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Per device status and counters. Never waits for a running step: while one holds
        the state, the previous snapshot is returned (with the current queue length)."""
        if self._lock.acquire(blocking=False):
            try:
                self._last_snapshot = {
                    "devices": {a: d.snapshot() for a, d in sorted(self.devices.items())},
                    "stats": self.stats.as_dict(),
                    "broken_states": sorted(self._broken),
                }
            finally:
                self._lock.release()
        return {**self._last_snapshot, "queued": len(self._inbox)}


def _split(parts: list[tuple[bytes, int]], max_lines: int) -> Iterable[tuple[bytes, int]]:
    """Each (body, lines) as pieces of at most max_lines lines."""
    for body, lines in parts:
        if lines <= max_lines:
            yield body, lines
            continue
        all_lines = split_lines(body)
        for i in range(0, len(all_lines), max_lines):
            piece = all_lines[i : i + max_lines]
            yield b"\n".join(piece), len(piece)
