"""The asyncio batcher: spool first, then send in batches, and handle every answer the server gives.

`submit` appends a batch to the spool and returns; nothing is held only in memory. One sender task
takes the oldest unacknowledged records (up to `max_lines` / `max_body_bytes`, one destination at
a time), sends them once there are `max_lines` waiting, the oldest has waited `max_delay`
seconds, or the producer said a batch is complete (`expedite`: the pipeline does after each
processing step, which is a batch already), and acknowledges them in the spool only when they are
dealt with:

* 2xx: written.
* 413: the batch is split in halves, down to single lines; a single line still too large is
  rejected (counted, logged, quarantined), never retried.
* 400/422 about the data (type conflict, parse error): the batch is bisected to find the refused
  lines (InfluxDB has already stored the good ones of a partial write, and re-sending them
  overwrites them with themselves); refused single lines are rejected. If the server says it
  dropped every line, they are rejected at once without bisecting.
* 429/503: wait as long as Retry-After says (capped), else back off; then resend.
* no answer, other 5xx, auth/config errors: back off with jitter up to a cap and resend, forever;
  meanwhile `submit` keeps accepting into the spool until it is full.

One request is in flight at a time, which keeps delivery in order and acknowledgement simple.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass
from types import TracebackType

from neckline.backoff import Backoff
from neckline.store.errors import BatcherClosed, SpoolFull, SpoolWriteError
from neckline.store.lineproto import LineBatch, join_lines, split_lines
from neckline.store.records import EncodeReport, Point, encode_points
from neckline.store.spool import RecoveryReport, Spool
from neckline.store.writer import Outcome, Writer, WriteResult

log = logging.getLogger(__name__)

DEFAULT_MAX_LINES = 5000
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
REFUSAL_LOG_INTERVAL = 60.0

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class StoreStatus:
    """A snapshot for `neckline status`; every count is cumulative since start."""

    state: str  # stopped | idle | sending | waiting | closed
    writer: str
    spool_bytes: int
    spool_max_bytes: int
    pending_batches: int
    pending_lines: int
    written_points: int
    rejected_points: int  # refused by the server; kept in the quarantine
    refused_points: int  # not accepted into the spool (full / I/O error): backpressure
    invalid_points: int  # could not be encoded (schema / line-protocol error)
    retries: int
    consecutive_failures: int
    last_error: str | None
    last_error_at: float | None
    last_write_at: float | None
    recovered_corrupt_bytes: int
    recovered_torn_bytes: int
    quarantine_dropped: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class Batcher:
    def __init__(
        self,
        spool: Spool,
        writer: Writer,
        *,
        max_lines: int = DEFAULT_MAX_LINES,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_delay: float = 1.0,
        backoff: Backoff | None = None,
        retry_after_cap: float = 300.0,
        sleep: Sleep | None = None,
    ) -> None:
        """`sleep` replaces asyncio.sleep for retry delays (tests use it to observe them)."""
        self._spool = spool
        self._writer = writer
        self._max_lines = max_lines
        self._max_body = max_body_bytes
        self._max_delay = max_delay
        self._backoff = backoff or Backoff()
        self._retry_after_cap = retry_after_cap
        self._sleep: Sleep = sleep or asyncio.sleep
        self._task: asyncio.Task[None] | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._closing = False
        self._closed = False
        self._urgent = 0
        self._expedite_upto = -1  # records up to this id are due now (`expedite`)
        self._submitted: deque[tuple[int, float]] = deque()
        self._state = "stopped"
        self._written = 0
        self._rejected = 0
        self._refused = 0
        self._invalid = 0
        self._retries = 0
        self._failures = 0
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._last_write_at: float | None = None
        self._last_refusal_log = -math.inf

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> RecoveryReport:
        """Open the spool (recovering what a previous run left) and start sending."""
        if self._task is not None:
            return self._spool.recovery
        report = self._spool.open()
        self._state = "idle"
        self._task = asyncio.create_task(self._run(), name="neckline-store-sender")
        if self._spool.fsync_interval > 0:
            self._sync_task = asyncio.create_task(self._sync_loop(), name="neckline-store-fsync")
        return report

    async def close(self, timeout: float = 10.0) -> bool:
        """Stop accepting, try for up to `timeout` s to deliver what is pending, then stop.

        Returns True when everything was delivered; otherwise the rest stays in the spool and
        is sent after the next start.
        """
        if self._closed:
            return self._spool.pending_records == 0
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        if self._sync_task is not None:
            self._sync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync_task
        left = self._spool.pending_records
        if left:
            log.info(
                "store: %d batch(es), %d line(s) stay in the spool for the next start",
                left, self._spool.pending_lines,
            )
        self._spool.close()
        await self._writer.close()
        self._closed = True
        self._state = "closed"
        return left == 0

    async def __aenter__(self) -> Batcher:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- input ----------------------------------------------------------------------------------

    def submit(self, batch: LineBatch) -> int:
        """Append a batch to the spool (durably) for sending; returns its record id.

        Raises SpoolFull or SpoolWriteError when the batch could not be stored (its lines are
        counted in `refused_points`), BatcherClosed once closing has begun.
        """
        if self._closing or self._task is None:
            raise BatcherClosed("the store is not running")
        try:
            rec_id = self._spool.append(batch)
        except (SpoolFull, SpoolWriteError) as exc:
            self._refused += batch.lines
            now = time.monotonic()
            if now - self._last_refusal_log >= REFUSAL_LOG_INTERVAL:
                self._last_refusal_log = now
                log.error("store: %s (%d points refused so far)", exc, self._refused)
            raise
        self._submitted.append((rec_id, asyncio.get_running_loop().time()))
        self._drained.clear()
        self._wake.set()
        return rec_id

    def submit_points(self, points: Iterable[Point]) -> EncodeReport:
        """Encode low-rate points (schema-checked) and submit them; returns what was refused.

        Points that cannot be encoded are counted in `invalid_points` and logged; SpoolFull and
        the other `submit` errors propagate.
        """
        report = encode_points(points)
        self._invalid += len(report.refused)
        for batch in report.batches:
            self.submit(batch)
        return report

    def expedite(self) -> None:
        """Make everything submitted so far due now instead of after `max_delay`: the producer
        has finished a batch (the pipeline's processing step) and more will not come soon."""
        if self._submitted:
            self._expedite_upto = self._submitted[-1][0]
            self._wake.set()

    async def flush(self, timeout: float | None = None) -> bool:
        """Send everything pending now; True once the spool is empty, False on timeout."""
        self._urgent += 1
        self._wake.set()
        try:
            await asyncio.wait_for(self._drained.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._urgent -= 1

    # -- status ---------------------------------------------------------------------------------

    def status(self) -> StoreStatus:
        spool = self._spool
        quarantine_dropped = spool.quarantine.dropped if spool.is_open else 0
        return StoreStatus(
            state=self._state,
            writer=self._writer.name,
            spool_bytes=spool.bytes_used,
            spool_max_bytes=spool.max_bytes,
            pending_batches=spool.pending_records,
            pending_lines=spool.pending_lines,
            written_points=self._written,
            rejected_points=self._rejected,
            refused_points=self._refused,
            invalid_points=self._invalid,
            retries=self._retries,
            consecutive_failures=self._failures,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
            last_write_at=self._last_write_at,
            recovered_corrupt_bytes=spool.recovery.corrupt_bytes,
            recovered_torn_bytes=spool.recovery.torn_bytes,
            quarantine_dropped=quarantine_dropped,
        )

    # -- the sender -----------------------------------------------------------------------------

    def _due_at(self) -> float:
        oldest = self._spool.oldest_pending_id
        if self._closing or self._urgent or oldest is None:
            return -math.inf
        if self._spool.pending_lines >= self._max_lines or oldest <= self._expedite_upto:
            return -math.inf
        if not self._submitted or self._submitted[0][0] != oldest:
            return -math.inf  # recovered from a previous run: overdue
        return self._submitted[0][1] + self._max_delay

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                if self._spool.pending_records == 0:
                    self._drained.set()
                    self._state = "idle"
                    if self._closing:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                wait = self._due_at() - loop.time()
                if wait > 0:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), wait)
                    continue
                await self._send_oldest()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Never let the sender die: note the error, wait, try again.
                log.exception("store: sender failed; retrying")
                self._note_error(f"{type(exc).__name__}: {exc}")
                await self._sleep(self._backoff.next())

    async def _send_oldest(self) -> None:
        records = self._spool.peek(self._max_lines, self._max_body)
        dest = records[0].dest
        body = join_lines(r.body for r in records)
        lines = sum(r.lines for r in records)
        self._state = "sending"
        rejected, reason = await self._deliver(dest, body, lines)
        if rejected:
            log.warning(
                "store: %d of %d line(s) for %s rejected by the server (%s); kept in %s",
                rejected, lines, dest, reason, self._spool.quarantine.rejected_path,
            )
        last = records[-1].id
        self._spool.ack(last)
        while self._submitted and self._submitted[0][0] <= last:
            self._submitted.popleft()
        self._state = "idle"

    async def _deliver(self, dest: str, body: bytes, lines: int) -> tuple[int, str]:
        """Deliver or reject every line of `body`; returns (rejected count, first reason)."""
        while True:
            result = await self._writer.write(dest, body)
            outcome = result.outcome
            if outcome is Outcome.OK:
                self._written += lines
                self._failures = 0
                self._backoff.reset()
                self._last_write_at = time.time()
                return 0, ""
            if outcome in (Outcome.TOO_LARGE, Outcome.BAD_DATA):
                self._failures = 0
                self._backoff.reset()
                if lines == 1 or (outcome is Outcome.BAD_DATA and result.dropped == lines):
                    return self._reject(dest, body, lines, result), result.describe()
                parts = split_lines(body)
                mid = len(parts) // 2
                total, first = 0, ""
                for half in (parts[:mid], parts[mid:]):
                    count, why = await self._deliver(dest, join_lines(half), len(half))
                    total += count
                    first = first or why
                return total, first
            self._note_error(result.describe())
            if outcome is Outcome.THROTTLED and result.retry_after is not None:
                delay = result.retry_after
            else:
                delay = self._backoff.next()
            delay = min(delay, self._retry_after_cap)
            self._retries += 1
            self._state = "waiting"
            if self._failures in (1, 10) or self._failures % 100 == 0:
                log.warning(
                    "store: %s answered %s; retry %d in %.1f s (data stays in the spool)",
                    self._writer.name, result.describe(), self._failures, delay,
                )
            await self._sleep(delay)
            self._state = "sending"

    def _reject(self, dest: str, body: bytes, lines: int, result: WriteResult) -> int:
        self._rejected += lines
        self._note_error(result.describe(), failure=False)
        self._spool.quarantine.save_lines(dest, result.describe(), split_lines(body))
        return lines

    def _note_error(self, message: str, *, failure: bool = True) -> None:
        if failure:
            self._failures += 1
        self._last_error = message
        self._last_error_at = time.time()

    async def _sync_loop(self) -> None:
        interval = self._spool.fsync_interval
        while True:
            await asyncio.sleep(interval)
            if self._spool.needs_sync:
                try:
                    self._spool.sync()
                except SpoolWriteError as exc:
                    self._note_error(str(exc))
                    log.error("store: %s", exc)
