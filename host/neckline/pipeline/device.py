"""One wearer's pipeline state and stages: decode -> sequence -> order -> align -> filter -> detect.

A DeviceState takes the link's records for one device (`take`) and then produces what to store
(`release`): posture rows and Points. It does no I/O; the driver persists `to_state()` and submits
the output. docs/pipeline.md explains the ordering, the clock placement and the exactly-once
argument; in short:

* every payload is decoded; rejected payloads are counted per reason and logged, never raised;
* the SequenceTracker gives each sample its 64-bit `useq` and drops duplicates;
* fresh samples wait in a buffer ordered by useq and are released strictly in that order, up to
  the first range the device still owes (it will come by backfill), so the filters and the strain
  detector see one stream in device order whatever order BLE delivered it in. A range that does
  not come within `hole_wait_ms` of flowing data (or with `max_held_samples` waiting behind it) is
  passed; if its samples arrive later they are "late": stored, filtered on their own, but not
  part of strain detection (their `strain` field is the device's IN_STRAIN flag);
* released samples are placed in UTC by the ClockAligner; samples still PENDING there stop the
  release (in order) until clock evidence after them has arrived;
* the ordered stream goes through one StreamFilter and the StrainDetector (raw centidegrees,
  UTC milliseconds); late samples through a second StreamFilter;
* device summary records become `exposure` rows with source=2 only for minutes the host has no
  exposure row for and will not get one (see `_decide_summaries`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from neckline.align import ClockAligner, Placement
from neckline.decode import (
    Rejections,
    SampleArrays,
    SummaryArrays,
    decode_cp_response,
    decode_event,
    decode_posture,
)
from neckline.filters import StreamFilter
from neckline.link.records import (
    ConfigRead,
    Kind,
    LinkRecord,
    RawBackfilled,
    Received,
    SessionDown,
    SessionUp,
    StatusRead,
    SummaryBackfilled,
    TimeSynced,
)
from neckline.pipeline.held import HeldSamples, Rows, as_samples, rows_from, sort_unique
from neckline.pipeline.points import (
    SummaryRow,
    episode_points,
    event_points,
    exposure_points,
    round_minute,
    summary_point,
)
from neckline.pipeline.settings import PipelineSettings
from neckline.protocol import (
    BufferOverflow,
    Event,
    LowBattery,
    RejectReason,
    SampleFlag,
    Status,
    SummaryFlag,
)
from neckline.sequence import IntervalSet, SeqRange, SequenceTracker, seq_delta
from neckline.store.lineproto import LineBatch
from neckline.store.posture_lines import encode_posture
from neckline.store.records import Point
from neckline.strain import MINUTE_MS, StrainDetector, cdeg_from_deg

log = logging.getLogger(__name__)

STATE_VERSION = 1
_T_MASK = 0xFFFFFFFF
_IN_STRAIN = int(SampleFlag.IN_STRAIN)
PLACEMENT_WHY = {
    Placement.NO_CLOCK: "no clock for its boot", Placement.EXPIRED: "older than the clock model",
}
_NOT_WORN = int(SampleFlag.NOT_WORN)


@dataclass
class DeviceStats:
    """Cumulative counters of one device, persisted with its state."""

    payloads: int = 0
    samples: int = 0  # decoded
    duplicates: int = 0
    stored: int = 0  # posture rows handed to the store
    late: int = 0  # stored after their place in the ordered stream had passed
    no_clock: int = 0  # could not be placed in UTC: dropped
    expired: int = 0
    holes_passed: int = 0  # missing ranges the ordered stream stopped waiting for
    samples_passed: int = 0
    events: int = 0
    events_dropped: int = 0
    summaries: int = 0
    summaries_stored: int = 0  # written as exposure with source=2
    summaries_superseded: int = 0  # the host had its own exposure row for the minute
    summaries_dropped: int = 0
    minutes: int = 0  # host exposure rows
    episodes: int = 0
    reopened_minutes: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class LinkInfo:
    """What the link's notices said about the device (for status and `link` points)."""

    state: str = "unknown"  # connected | disconnected | unknown
    name: str | None = None
    mtu: int | None = None
    battery_pct: int | None = None
    battery_mv: int | None = None
    sessions: int = 0
    last_down: str | None = None
    config_differences: dict[str, list[int | None]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class StepOutput:
    posture: list[LineBatch] = field(default_factory=list)  # each at most max_lines lines
    points: list[Point] = field(default_factory=list)
    span: tuple[int, int] | None = None  # UTC ms of the oldest and newest posture row

    @property
    def rows(self) -> int:
        return sum(b.lines for b in self.posture)


class DeviceState:
    def __init__(self, address: str, tag: str, settings: PipelineSettings) -> None:
        self.address = address
        self.tag = tag
        self.settings = settings
        self.tracker = SequenceTracker()
        self.aligner = ClockAligner(settings.align)
        self.ordered_filter = StreamFilter(settings.filters)
        self.late_filter = StreamFilter(settings.filters)
        self.detector = StrainDetector(settings.strain, settings.min_wear_s)
        self.held = HeldSamples()
        self.frontier: int | None = None  # next useq the ordered stream expects
        self.block_key: list[int] | None = None  # the range being waited for, and its size
        self.blocked_since: int | None = None  # input time when that wait began
        self.events: list[list[Any]] = []  # [payload hex, receive utc]
        self.summaries: list[list[Any]] = []  # [record fields..., receive utc]
        self.summary_next: int | None = None  # record index after the newest received
        self.covered = IntervalSet()  # minutes (epoch minutes) with a host exposure row
        self.input_clock: int | None = None  # newest host receive time of any payload
        self.last_sample_utc: int | None = None  # newest ordered sample placed
        # Per boot, the device time (wire t_ms) of the newest sample placed: events and
        # summary records of the current boot wait until the samples' placement reached them,
        # so they never commit a clock mapping earlier or differently than the samples would.
        self.boot_hi: dict[int, int] = {}
        self.stats = DeviceStats()
        self.rejections = Rejections()
        self.link = LinkInfo()
        self._late: list[Rows] = []

    # --- input -------------------------------------------------------------------------------
    def take(self, records: Sequence[LinkRecord]) -> bool:
        """Apply the device's records in order; returns True if the device is disconnected
        after them (its session went down and no new one came up in the same records)."""
        step_rej = Rejections()
        i, n = 0, len(records)
        while i < n:
            record = records[i]
            if isinstance(record, Received) and record.kind is Kind.POSTURE:
                j = i + 1
                while j < n:
                    nxt = records[j]
                    if not (isinstance(nxt, Received) and nxt.kind is Kind.POSTURE):
                        break
                    j += 1
                self._posture(records[i:j], step_rej)  # type: ignore[arg-type]
                i = j
                continue
            self._one(record, step_rej)
            i += 1
        if step_rej.total:
            self.rejections.merge(step_rej)
            step_rej.log(log)
        return any(isinstance(r, SessionDown) for r in records) and (
            self.link.state == "disconnected")

    def _clock(self, utc_ms: int) -> None:
        self.input_clock = utc_ms if self.input_clock is None else max(self.input_clock, utc_ms)

    def _posture(self, records: Sequence[Received], rej: Rejections) -> None:
        payloads = [r.data for r in records]
        receive = np.fromiter((r.utc_ms for r in records), np.int64, len(records))
        self._clock(int(receive.max()))
        self.stats.payloads += len(records)
        samples, summaries, _ = decode_posture(payloads, rej)
        if len(summaries):
            self._take_summaries(summaries, receive)
        if not len(samples):
            return
        seq = self.tracker.observe(_runs(samples))
        self.aligner.observe(samples, receive)
        self.stats.samples += len(samples)
        self.stats.duplicates += seq.duplicates
        fresh = seq.fresh
        if self.frontier is not None:
            late = fresh & (seq.useq < self.frontier)
            if late.any():
                self._late.append(rows_from(samples, seq.useq, late))
                fresh = fresh & ~late
        if fresh.any():
            self.held.add(rows_from(samples, seq.useq, fresh))

    def _take_summaries(self, s: SummaryArrays, receive: npt.NDArray[np.int64]) -> None:
        recv = receive[s.packet_index]
        for k, rec in enumerate(s.to_records()):
            self.summaries.append([
                rec.index, rec.start, rec.boot_id, rec.wear_s, rec.mean_flexion_cdeg,
                rec.max_flexion_cdeg, rec.strain_s, rec.episodes, int(rec.flags), int(recv[k]),
            ])
            following = (rec.index + 1) & _T_MASK
            if self.summary_next is None or seq_delta(self.summary_next, following) > 0:
                self.summary_next = following
        self.stats.summaries += len(s)
        excess = len(self.summaries) - self.settings.max_pending_summaries
        if excess > 0:
            del self.summaries[:excess]
            self.stats.summaries_dropped += excess
            log.warning("%s: %d summary records dropped: too many waiting for placement",
                        self.tag, excess)

    def _one(self, record: LinkRecord, rej: Rejections) -> None:
        if isinstance(record, Received):
            self._clock(record.utc_ms)
            self.stats.payloads += 1
            if record.kind is Kind.EVENT:
                self._event(record, rej)
            elif record.kind is Kind.CP:
                # The link acts on control-point responses (TimeSynced, RawBackfilled...);
                # here they are only checked, so malformed ones are counted like any payload.
                decode_cp_response(record.data, rej)
            return
        if isinstance(record, SessionUp):
            self.link.state = "connected"
            self.link.name = record.name or self.link.name
            self.link.mtu = record.mtu
            self.link.sessions += 1
            self._status(record.status)
        elif isinstance(record, StatusRead):
            self._status(record.status)
        elif isinstance(record, TimeSynced):
            self.aligner.add_anchor(record.boot_id, record.t_ms, record.sent_utc_ms,
                                    record.response_utc_ms)
        elif isinstance(record, RawBackfilled):
            if record.settled:
                given_up = self.tracker.settle_request(record.requested)
                if given_up:
                    log.info("%s: %d samples of %d..%d are not on the device any more",
                             self.tag, given_up, record.requested.first_seq,
                             record.requested.last_seq)
        elif isinstance(record, SummaryBackfilled):
            log.debug("%s: summary backfill from %d ended: %s", self.tag, record.from_record,
                      record.status.name)
        elif isinstance(record, ConfigRead):
            self.link.config_differences = {
                key.name: [ours, theirs] for key, (ours, theirs) in record.differences.items()
            }
        elif isinstance(record, SessionDown):
            self.link.state = "disconnected"
            self.link.last_down = record.reason
        else:
            log.warning("%s: ignoring an unknown link record %s", self.tag, type(record).__name__)

    def _status(self, status: Status) -> None:
        self.tracker.note_status(status.boot_id, status.next_seq, status.oldest_seq)
        self.link.battery_pct = status.battery_pct
        self.link.battery_mv = status.battery_mv

    def _event(self, record: Received, rej: Rejections) -> None:
        event = decode_event(record.data, rej)
        if event is None:
            return
        self.stats.events += 1
        if isinstance(event.data, BufferOverflow):
            lost = self.tracker.mark_lost(event.data.first_lost_seq, event.data.last_lost_seq)
            log.warning("%s: the device overwrote %d unsent samples (seq %d..%d)", self.tag,
                        lost, event.data.first_lost_seq, event.data.last_lost_seq)
        elif isinstance(event.data, LowBattery):
            self.link.battery_pct = event.data.percent
            self.link.battery_mv = event.data.millivolts
        self.events.append([bytes(record.data).hex(), record.utc_ms])
        if len(self.events) > self.settings.max_pending_events:
            del self.events[0]
            self.stats.events_dropped += 1
            log.warning("%s: an event was dropped: too many waiting for placement", self.tag)

    # --- output ------------------------------------------------------------------------------
    def release(self, now_utc_ms: int | None, *, flush: bool = False,
                max_lines: int = 5000) -> StepOutput:
        """Place, filter, detect and encode whatever may go out now.

        `now_utc_ms` is the time the aligner compares evidence arrival with (PENDING while
        evidence is still flowing); `flush` places everything regardless (session ended).
        """
        now = None if flush else now_utc_ms
        out = StepOutput()
        parts: list[dict[str, Any]] = []
        ordered = self._release_ordered(now)
        if ordered is not None:
            rows, utc = ordered
            parts.append(self._ordered_columns(rows, utc, out))
        late = self._release_late()
        if late is not None:
            parts.append(late)
        if parts:
            cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
            n = int(cols["seq"].size)
            for a in range(0, n, max_lines):
                batch = encode_posture(self.tag, decimals=self.settings.decimals,
                                       **{k: v[a : a + max_lines] for k, v in cols.items()})
                if batch is not None:
                    out.posture.append(batch)
            out.span = (int(cols["time_ms"].min()), int(cols["time_ms"].max()))
            self.stats.stored += n
        out.points.extend(self._release_events(now))
        out.points.extend(self._decide_summaries(now))
        return out

    def _known_boots(self) -> npt.NDArray[np.int64]:
        return np.asarray(self.aligner.boots, np.int64)

    def _blocking(self) -> tuple[int | None, int]:
        """Where the ordered stream must stop (the first range still owed at or after the
        frontier), and how many samples are owed from there up to the first held sample."""
        lo = self.frontier
        first_held = self.held.first_useq
        limit: int | None = None
        owed = 0
        for r in self.tracker.missing():
            if lo is not None and r.last < lo:
                continue
            start = r.first if lo is None else max(r.first, lo)
            if limit is None:
                limit = start
            if first_held is None or start >= first_held:
                break
            owed += min(r.last + 1, first_held) - start
        return limit, owed

    def _release_ordered(
        self, now: int | None
    ) -> tuple[Rows, npt.NDArray[np.int64]] | None:
        if not len(self.held):
            self.block_key = self.blocked_since = None
            return None
        limit, owed = self._blocking()
        first = self.held.first_useq
        assert first is not None
        if limit is not None and first >= limit:
            key = [limit, owed]
            if key != self.block_key:
                self.block_key, self.blocked_since = key, self.input_clock
            waited = 0 if self.input_clock is None or self.blocked_since is None else (
                self.input_clock - self.blocked_since)
            crowded = len(self.held) > self.settings.max_held_samples
            if waited >= self.settings.hole_wait_ms or crowded:
                log.warning(
                    "%s: passing %d missing samples (useq %d..%d) after waiting %.0f s with %d "
                    "samples behind them; if they come later they are stored as late samples",
                    self.tag, owed, limit, first - 1, waited / 1000, len(self.held),
                )
                self.stats.holes_passed += 1
                self.stats.samples_passed += owed
                self.frontier = first
                self.block_key = self.blocked_since = None
                limit, owed = self._blocking()
        else:
            self.block_key = self.blocked_since = None
        n = self.held.count_below(limit)
        if n == 0:
            return None
        cand = self.held.rows[:n]
        boots = cand["boot"].astype(np.int64)
        unknown = ~np.isin(boots, self._known_boots())
        cut = n
        current = self.tracker.current_boot
        if current is not None and unknown.any():
            # The clock of the device's current boot becomes known (live evidence or SET_TIME);
            # its samples wait for that. Other boots without a clock never will be placed.
            waiting = np.flatnonzero(unknown & (boots == current))
            if waiting.size:
                cut = int(waiting[0])
        status = np.full(cut, Placement.NO_CLOCK, np.uint8)
        utc = np.zeros(cut, np.int64)
        known = np.flatnonzero(~unknown[:cut])
        if known.size:
            placed = self.aligner.place(boots[known], cand["t_ms"][known], now)
            status[known] = placed.status
            utc[known] = placed.utc_ms
        pending = np.flatnonzero(status == Placement.PENDING)
        stop = int(pending[0]) if pending.size else cut
        if stop == 0:
            return None
        rows = self.held.pop_front(stop)
        self.frontier = int(rows["useq"][-1]) + 1
        status, utc = status[:stop], utc[:stop]
        self._count_unplaced(status, rows, unknown[:stop])
        good = status == Placement.PLACED
        if not good.any():
            return None
        rows, utc = rows[good], utc[good]
        for boot_id, t_ms in zip(rows["boot"].tolist(), rows["t_ms"].tolist(), strict=True):
            self.boot_hi[boot_id] = t_ms  # rows are in device order: the last one is newest
        return rows, utc

    def _count_unplaced(self, status: npt.NDArray[np.uint8], rows: Rows,
                        unknown: npt.NDArray[np.bool_]) -> None:
        no_clock = int(np.count_nonzero(status == Placement.NO_CLOCK))
        expired = int(np.count_nonzero(status == Placement.EXPIRED))
        self.stats.no_clock += no_clock
        self.stats.expired += expired
        if unknown.any():
            boots = sorted(set(rows["boot"][unknown].tolist()))
            log.warning("%s: %d samples of boot(s) %s dropped: the host never saw that boot's "
                        "clock (no live data, no SET_TIME)", self.tag,
                        int(np.count_nonzero(unknown)), boots)

    def _ordered_columns(self, rows: Rows, utc: npt.NDArray[np.int64], out: StepOutput
                         ) -> dict[str, Any]:
        samples = as_samples(rows)
        filtered = self.ordered_filter.process(samples)
        flex_cd = cdeg_from_deg(samples.flexion_deg)
        result = self.detector.feed(
            utc, samples.period_ms, flex_cd, cdeg_from_deg(samples.lateral_deg), samples.flags,
            samples.boot_id,
        )
        self.last_sample_utc = int(utc[-1]) if self.last_sample_utc is None else max(
            self.last_sample_utc, int(utc[-1]))
        minutes = result.minutes
        if len(minutes):
            out.points.extend(exposure_points(self.tag, minutes))
            for m in minutes.minute.tolist():
                self.covered.add(m, m + 1)
            self._prune_covered()
            self.stats.minutes += len(minutes)
        if self.detector.reopened_minutes != self.stats.reopened_minutes:
            log.warning("%s: exposure of an already stored minute was computed again (the "
                        "clock went backwards across a reboot); the later row replaces it",
                        self.tag)
            self.stats.reopened_minutes = self.detector.reopened_minutes
        episodes = episode_points(self.tag, result.episodes)
        out.points.extend(episodes)
        self.stats.episodes += len(episodes)
        return _columns(rows, utc, filtered.values, result.in_strain)

    def _release_late(self) -> dict[str, Any] | None:
        if not self._late:
            return None
        rows = sort_unique(np.concatenate(self._late))
        self._late = []
        boots = rows["boot"].astype(np.int64)
        unknown = ~np.isin(boots, self._known_boots())
        status = np.full(rows.size, Placement.NO_CLOCK, np.uint8)
        utc = np.zeros(rows.size, np.int64)
        known = np.flatnonzero(~unknown)
        if known.size:
            placed = self.aligner.place(boots[known], rows["t_ms"][known], None)
            status[known], utc[known] = placed.status, placed.utc_ms
        self._count_unplaced(status, rows, unknown)
        good = status == Placement.PLACED
        if not good.any():
            return None
        rows, utc = rows[good], utc[good]
        filtered = self.late_filter.process(as_samples(rows))
        self.stats.late += int(rows.size)
        log.info("%s: %d late samples stored outside strain detection", self.tag, rows.size)
        in_strain = (rows["flags"].astype(np.int64) & _IN_STRAIN) != 0
        return _columns(rows, utc, filtered.values, in_strain)

    def _place_one(self, boot_id: int, t_ms: int, received: int, now: int | None
                   ) -> Placement | tuple[Placement, int]:
        """Place one device time of an event or summary record: (PLACED, utc), or why not yet
        (PENDING) or never (NO_CLOCK, EXPIRED)."""
        expired = self._expired(received)
        if boot_id not in set(self.aligner.boots):
            return Placement.NO_CLOCK if expired else Placement.PENDING
        if now is not None and not expired and boot_id == self.tracker.current_boot:
            hi = self.boot_hi.get(boot_id)
            if hi is None or ((t_ms - hi + (1 << 31)) & _T_MASK) - (1 << 31) > 0:
                return Placement.PENDING
        placed = self.aligner.place([boot_id], [t_ms], None if expired else now)
        status = Placement(int(placed.status[0]))
        if status is Placement.PLACED:
            return status, int(placed.utc_ms[0])
        return status

    def _release_events(self, now: int | None) -> list[Point]:
        if not self.events:
            return []
        points: list[Point] = []
        keep: list[list[Any]] = []
        for entry in self.events:
            event = decode_event(bytes.fromhex(entry[0]), Rejections())
            assert event is not None  # checked when it arrived
            placed = self._place_one(event.boot_id, event.t_ms, int(entry[1]), now)
            if isinstance(placed, tuple):
                points.extend(event_points(self.tag, event, placed[1]))
            elif placed is Placement.PENDING:
                keep.append(entry)
            else:
                self._drop_event(event, PLACEMENT_WHY[placed])
        self.events = keep
        return points

    def _drop_event(self, event: Event, why: str) -> None:
        self.stats.events_dropped += 1
        log.warning("%s: %s event (boot %d, t_ms %d) cannot be placed in time (%s); dropped",
                    self.tag, event.code.name, event.boot_id, event.t_ms, why)

    def _expired(self, received_utc: int) -> bool:
        return (self.input_clock is not None
                and self.input_clock - received_utc > self.settings.pending_ttl_ms)

    def _decide_summaries(self, now: int | None) -> list[Point]:
        """Device summary records -> exposure rows (source=2) for minutes the host lacks.

        A record's minute is decided once it is placed in UTC (rounded to the nearest UTC
        minute; boot-relative device minutes are not aligned):
        * the host has an exposure row for it: superseded (the host's stands);
        * the host's detector still holds that minute open: wait;
        * the ordered stream has passed the minute's end, or the device owes nothing (no
          missing range, nothing held) so no raw sample of the minute can still come: stored;
        * otherwise wait (raw samples for it may still arrive by backfill).
        """
        if not self.summaries:
            return []
        points: list[Point] = []
        keep: list[list[Any]] = []
        caught_up = not len(self.held) and not self.tracker.missing(limit=1)
        for entry in self.summaries:
            index, start, boot, wear, mean, peak, strain, episodes, flags, recv = entry
            if flags & SummaryFlag.TIME_VALID:
                utc = int(start) * 1000
            else:
                placed = self._place_one(boot, (int(start) * 1000) & _T_MASK, recv, now)
                if isinstance(placed, tuple):
                    utc = placed[1]
                elif placed is Placement.PENDING:
                    keep.append(entry)
                    continue
                else:
                    self._drop_summary(index, PLACEMENT_WHY[placed])
                    continue
            minute_ms = round_minute(utc)
            minute = minute_ms // MINUTE_MS
            if self.covered.covered(minute, 1)[0]:
                self.stats.summaries_superseded += 1
                continue
            if self.detector.may_report(minute):
                keep.append(entry)
                continue
            passed = self.last_sample_utc is not None and minute_ms + MINUTE_MS <= (
                self.last_sample_utc)
            if passed or caught_up:
                row = SummaryRow(minute_ms, wear, strain, mean, peak, episodes, flags)
                points.append(summary_point(self.tag, row, self.settings.min_wear_s))
                self.stats.summaries_stored += 1
            else:
                keep.append(entry)
        self.summaries = keep
        return points

    def _drop_summary(self, index: int, why: str) -> None:
        self.stats.summaries_dropped += 1
        log.warning("%s: summary record %d cannot be placed in time (%s); dropped", self.tag,
                    index, why)

    def _prune_covered(self) -> None:
        excess = len(self.covered) - self.settings.max_covered_intervals
        if excess > 0:
            self.covered.drop_below(self.covered.starts[excess])

    # --- for the link's backfill planner -------------------------------------------------------
    def missing_ranges(self) -> list[SeqRange]:
        return self.tracker.missing()

    def summary_from(self, status: Status) -> int | None:
        if not self.settings.summaries:
            return None
        nxt = self.summary_next
        if nxt is None:
            return status.oldest_record
        if seq_delta(status.oldest_record, nxt) < 0 or seq_delta(nxt, status.next_record) < 0:
            return status.oldest_record  # behind the device's oldest, or the device's log reset
        return nxt

    # --- status ------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        missing = self.tracker.missing()
        return {
            "address": self.address,
            "device": self.tag,
            "link": self.link.as_dict(),
            "last_sample_utc_ms": self.last_sample_utc,
            "last_receive_utc_ms": self.input_clock,
            "backlog": sum(r.count for r in missing),
            "missing_ranges": len(missing),
            "held": len(self.held),
            "pending_events": len(self.events),
            "pending_summaries": len(self.summaries),
            "rejected": self.rejections.as_dict(),
            "rejected_total": self.rejections.total,
            "stats": self.stats.as_dict(),
            "sequence": self.tracker.stats.as_dict(),
            "clock": self.aligner.stats.as_dict(),
        }

    # --- persistence -------------------------------------------------------------------------
    def to_state(self, *, aligner: bool = True) -> dict[str, Any]:
        """Everything of the device (`aligner=False`: all but the clock aligner, which the
        driver keeps in its own file)."""
        if self._late:
            raise RuntimeError("late samples must be released before the state is saved")
        state = {
            "version": STATE_VERSION,
            "address": self.address,
            "sequence": self.tracker.to_state(),
            "filters": {"ordered": self.ordered_filter.to_state(),
                        "late": self.late_filter.to_state()},
            "strain": self.detector.to_state(),
            "held": self.held.to_state(),
            "frontier": self.frontier,
            "block_key": self.block_key,
            "blocked_since": self.blocked_since,
            "events": self.events,
            "summaries": self.summaries,
            "summary_next": self.summary_next,
            "covered": [list(p) for p in self.covered.pairs()],
            "input_clock": self.input_clock,
            "last_sample_utc": self.last_sample_utc,
            "boot_hi": [[b, t] for b, t in sorted(self.boot_hi.items())],
            "stats": self.stats.as_dict(),
            "rejected": self.rejections.as_dict(),
            "link": self.link.as_dict(),
        }
        if aligner:
            state["aligner"] = self.aligner.to_state()
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any], tag: str, settings: PipelineSettings
                   ) -> DeviceState:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"device state version {state.get('version')!r} is not supported")
        dev = cls(str(state["address"]), tag, settings)
        dev.tracker = SequenceTracker.from_state(state["sequence"])
        dev.aligner = ClockAligner.from_state(state["aligner"], settings.align)
        dev.ordered_filter = StreamFilter.from_state(state["filters"]["ordered"], settings.filters)
        dev.late_filter = StreamFilter.from_state(state["filters"]["late"], settings.filters)
        dev.detector = StrainDetector.from_state(state["strain"], settings.strain,
                                                 settings.min_wear_s)
        dev.held = HeldSamples.from_state(state["held"])
        dev.frontier = _opt_int(state["frontier"])
        key = state["block_key"]
        dev.block_key = None if key is None else [int(v) for v in key]
        dev.blocked_since = _opt_int(state["blocked_since"])
        dev.events = [[str(h), int(t)] for h, t in state["events"]]
        dev.summaries = [list(e) for e in state["summaries"]]
        dev.summary_next = _opt_int(state["summary_next"])
        dev.covered = IntervalSet([(int(a), int(b)) for a, b in state["covered"]])
        dev.input_clock = _opt_int(state["input_clock"])
        dev.last_sample_utc = _opt_int(state["last_sample_utc"])
        dev.boot_hi = {int(b): int(t) for b, t in state["boot_hi"]}
        dev.stats = DeviceStats(**{k: int(v) for k, v in state["stats"].items()})
        for reason, count in state["rejected"].items():
            dev.rejections.counts[RejectReason(reason)] = int(count)
        link = dict(state["link"])
        link["state"] = "unknown"  # a new process has no session yet
        dev.link = LinkInfo(**link)
        return dev


def _runs(samples: SampleArrays) -> SampleArrays:
    """The samples with consecutive packets that continue each other (same boot and kind, seq
    + 1) numbered as one packet. The tracker unwraps and de-duplicates per packet, and a run
    of continuing packets unwraps exactly as its first packet does, so this only saves its
    per-packet work (a live packet holds a handful of samples). The aligner still gets the
    real packets: each one is a piece of clock evidence."""
    n = len(samples)
    if n < 2:
        return samples
    seq = samples.seq.astype(np.int64)
    joins = (
        (samples.packet_index[1:] != samples.packet_index[:-1])
        & (samples.boot_id[1:] == samples.boot_id[:-1])
        & (samples.backfill[1:] == samples.backfill[:-1])
        & (((seq[1:] - seq[:-1]) & _T_MASK) == 1)
    )
    starts = np.r_[True, (samples.packet_index[1:] != samples.packet_index[:-1]) & ~joins]
    return replace(samples, packet_index=np.cumsum(starts) - 1)


def _columns(rows: Rows, utc: npt.NDArray[np.int64], filtered: npt.NDArray[np.float64],
             in_strain: npt.NDArray[np.bool_]) -> dict[str, Any]:
    flags = rows["flags"].astype(np.int64)
    return {
        "time_ms": utc,
        "flexion": filtered[:, 0],
        "lateral": filtered[:, 1],
        "rotation": filtered[:, 2],
        "flexion_raw": rows["flexion"].astype(np.float64),
        "lateral_raw": rows["lateral"].astype(np.float64),
        "seq": rows["useq"],
        "boot": rows["boot"].astype(np.int64),
        "flags": flags,
        "worn": ((flags & _NOT_WORN) == 0).astype(np.int64),
        "strain": in_strain.astype(np.int64),
        "backfill": rows["backfill"].astype(np.int64),
    }


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)

