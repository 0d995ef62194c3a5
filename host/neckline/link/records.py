"""What the link hands downstream: raw payloads as received, and notices about the session.

The link decodes only what it needs for control (status, config, control-point responses). Every
notification and indication goes downstream untouched as a `Received`, stamped when bleak's
callback ran; facts the pipeline needs that are not in any payload (the SET_TIME round trip, the
end of a backfill range, the session coming up or going down) go as notices. Both travel through
one sink, in the order they happened, so a `RawBackfilled` notice always follows the backfill
packets it concludes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from neckline.protocol import (
    Config,
    ConfigKey,
    CPStatus,
    RawBackfillResult,
    Status,
    SummaryBackfillResult,
)
from neckline.sequence import SeqRange


class Kind(StrEnum):
    """Which characteristic a payload arrived on."""

    POSTURE = "posture"  # SAMPLES_LIVE, SAMPLES_BACKFILL, SUMMARY
    EVENT = "event"
    CP = "cp"  # control-point responses


@dataclass(frozen=True, slots=True)
class Received:
    """One payload from the device, exactly as received."""

    device: str  # the wearer's address, upper case
    utc_ms: int  # host wall clock when bleak's callback ran (time.time_ns() // 1_000_000)
    mono_ns: int  # host monotonic clock at the same moment (time.monotonic_ns())
    kind: Kind
    data: bytes


@dataclass(frozen=True, slots=True)
class SessionUp:
    """Connected, version checked, link encrypted, subscribed."""

    device: str
    utc_ms: int
    name: str | None
    mtu: int
    status: Status


@dataclass(frozen=True, slots=True)
class StatusRead:
    """A fresh status value (after GET_STATUS); the pipeline feeds it to its sequence tracker."""

    device: str
    utc_ms: int
    status: Status


@dataclass(frozen=True, slots=True)
class ConfigRead:
    """The device's configuration after the host pushed its own (`differences` empty when the
    device took every value)."""

    device: str
    utc_ms: int
    config: Config
    differences: dict[ConfigKey, tuple[int, int | None]]


@dataclass(frozen=True, slots=True)
class TimeSynced:
    """SET_TIME answered: the device clock (boot_id, t_ms) when it applied `sent_utc_ms`.

    The true UTC of the anchor lies between sent_utc_ms and response_utc_ms; feed all four to
    ClockAligner.add_anchor.
    """

    device: str
    boot_id: int
    t_ms: int
    sent_utc_ms: int
    response_utc_ms: int

    @property
    def round_trip_ms(self) -> int:
        return self.response_utc_ms - self.sent_utc_ms


@dataclass(frozen=True, slots=True)
class RawBackfilled:
    """A REQUEST_RAW ended; every SAMPLES_BACKFILL packet it sent came before this notice.

    `settled` is True when the device answered SUCCESS or NO_RECORDS to a request the host did
    not abort: whatever of `requested` is still missing will never come, so give it up
    (SequenceTracker.settle_request). An aborted request (shutdown) settles nothing: the rest of
    the range stays missing and is asked for again at the next connection.
    """

    device: str
    requested: SeqRange
    status: CPStatus
    result: RawBackfillResult | None
    aborted: bool = False

    @property
    def settled(self) -> bool:
        return not self.aborted and self.status in (CPStatus.SUCCESS, CPStatus.NO_RECORDS)


@dataclass(frozen=True, slots=True)
class SummaryBackfilled:
    """A REQUEST_SUMMARY ended; its SUMMARY packets came before this notice."""

    device: str
    from_record: int
    status: CPStatus
    result: SummaryBackfillResult | None
    aborted: bool = False


@dataclass(frozen=True, slots=True)
class SessionDown:
    """The connection ended (link loss, watchdog, error or shutdown)."""

    device: str
    utc_ms: int
    reason: str


Notice = SessionUp | StatusRead | ConfigRead | TimeSynced | RawBackfilled | SummaryBackfilled | (
    SessionDown
)
LinkRecord = Received | Notice
Sink = Callable[[LinkRecord], None]


def utc_ms_now() -> int:
    return time.time_ns() // 1_000_000
