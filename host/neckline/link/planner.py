"""What the link asks the pipeline before backfilling: which samples and records it lacks.

The link does not decode samples, so it cannot know the gaps; the pipeline's sequence tracker
does. After every (re)connect, and every `backfill_interval` while connected, the link reads a
fresh status, hands it downstream as a StatusRead notice and then awaits the planner.

Contract: when a planner method is called, every record the link produced before (the
StatusRead notice for this `status` included) has already been handed to the sink. The planner
must account for all of them before answering; with an asyncio.Queue as the sink that is
`await queue.join()` (the consumer calling task_done()), then `tracker.note_status(...)` and
`tracker.missing()`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from neckline.protocol import Status
from neckline.sequence import SeqRange


class BackfillPlanner(Protocol):
    async def missing_ranges(self, device: str, status: Status) -> Sequence[SeqRange]:
        """Raw ranges to ask for with REQUEST_RAW, oldest first (SequenceTracker.missing())."""
        ...

    async def summary_from(self, device: str, status: Status) -> int | None:
        """First summary record index to ask for (one past the newest stored, or
        status.oldest_record when none is); None for no summary backfill."""
        ...


class NoBackfill:
    """A planner that never asks for anything (commands such as `neckline calibrate`)."""

    async def missing_ranges(self, device: str, status: Status) -> Sequence[SeqRange]:
        return ()

    async def summary_from(self, device: str, status: Status) -> int | None:
        return None
