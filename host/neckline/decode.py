"""Decoders for every device→host payload of the Neckline protocol v1 (docs/protocol.md).

Posture packets are decoded in bulk: headers are checked one packet at a time with struct, then the
samples (or summary records) of all accepted packets are read in a single numpy pass over their
concatenated bytes. Events, status, config and control-point responses come one at a time and decode
into the typed records of neckline.protocol.

No decoder raises on malformed bytes. A bad payload is dropped whole and counted in a Rejections
object under a reason from the closed set RejectReason, with a few examples kept for the log.
"""

from __future__ import annotations

import logging
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from neckline.protocol import (
    CP_RESPONSE_HEADER_SIZE,
    CP_SUCCESS_DATA_SIZE,
    EVENT_HEADER_SIZE,
    EVENT_PAYLOAD_SIZE,
    MAX_PAYLOAD,
    MAX_SAMPLES,
    MAX_SUMMARY_RECORDS,
    NO_VALUE_CDEG,
    PROTOCOL_VERSION,
    SAMPLE_FLAG_MASK,
    SAMPLE_HEADER_SIZE,
    SAMPLE_SIZE,
    STATE_FLAG_MASK,
    STATUS_SIZE,
    SUMMARY_FLAG_MASK,
    SUMMARY_HEADER_SIZE,
    SUMMARY_RECORD_SIZE,
    BufferOverflow,
    CalibrationOutcome,
    CalibrationResult,
    Config,
    ConfigKey,
    CPResponse,
    CPResponseData,
    CPStatus,
    Event,
    EventCode,
    EventData,
    HeadacheMarker,
    LowBattery,
    Opcode,
    PayloadType,
    ProtocolError,
    RawBackfillResult,
    RejectReason,
    StateFlag,
    Status,
    StrainEnd,
    StrainStart,
    SummaryBackfillResult,
    SummaryFlag,
    SummaryRecord,
    TimeAnchor,
    UnsupportedProtocolVersion,
    config_value_ok,
    version_message,
)

Payload = bytes | bytearray | memoryview

log = logging.getLogger(__name__)

_SAMPLE_TYPES = frozenset({PayloadType.SAMPLES_LIVE, PayloadType.SAMPLES_BACKFILL})
_SUMMARY_TYPES = frozenset({PayloadType.SUMMARY})
_POSTURE_TYPES = _SAMPLE_TYPES | _SUMMARY_TYPES

_SAMPLE_HEADER = struct.Struct("<BBIIBH")
_SUMMARY_HEADER = struct.Struct("<BBI")
_EVENT_HEADER = struct.Struct("<BBHBI")
_STATUS = struct.Struct("<BBIIIIIHBBH")
_CONFIG_ENTRY = struct.Struct("<Bi")

# Explicit offsets keep the dtypes packed exactly like the wire (numpy would not pad them anyway).
_SAMPLE_DTYPE = np.dtype(
    {
        "names": ["flexion", "lateral", "rotation", "flags"],
        "formats": ["<i2", "<i2", "<i2", "u1"],
        "offsets": [0, 2, 4, 6],
        "itemsize": SAMPLE_SIZE,
    }
)
_RECORD_DTYPE = np.dtype(
    {
        "names": ["start", "boot_id", "wear_s", "mean", "max", "strain_s", "episodes", "flags"],
        "formats": ["<u4", "u1", "u1", "<i2", "<i2", "u1", "u1", "u1"],
        "offsets": [0, 4, 5, 6, 8, 10, 11, 12],
        "itemsize": SUMMARY_RECORD_SIZE,
    }
)

_EXAMPLE_BYTES = 32


# --- rejection bookkeeping ------------------------------------------------------------------
@dataclass(frozen=True)
class RejectionExample:
    reason: RejectReason
    detail: str
    length: int
    hex: str  # the first bytes of the payload, enough to recognise it


class Rejections:
    """Counts of rejected payloads per reason, plus the first few examples of each reason."""

    def __init__(self, max_examples_per_reason: int = 5) -> None:
        self.max_examples_per_reason = max_examples_per_reason
        self.counts: Counter[RejectReason] = Counter()
        self.examples: list[RejectionExample] = []

    def add(self, reason: RejectReason, detail: str, payload: Payload) -> None:
        self.counts[reason] += 1
        if self.counts[reason] <= self.max_examples_per_reason:
            head = bytes(payload[:_EXAMPLE_BYTES]).hex()
            self.examples.append(RejectionExample(reason, detail, len(payload), head))

    def merge(self, other: Rejections) -> None:
        kept = Counter(e.reason for e in self.examples)
        for example in other.examples:
            if kept[example.reason] < self.max_examples_per_reason:
                self.examples.append(example)
                kept[example.reason] += 1
        self.counts.update(other.counts)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def count(self, reason: RejectReason) -> int:
        return self.counts[reason]

    def as_dict(self) -> dict[str, int]:
        return {str(reason): n for reason, n in sorted(self.counts.items())}

    def summary(self) -> str:
        if not self.counts:
            return "no payloads rejected"
        parts = ", ".join(f"{reason}={n}" for reason, n in sorted(self.counts.items()))
        return f"{self.total} payloads rejected: {parts}"

    def log(self, logger: logging.Logger = log, level: int = logging.WARNING) -> None:
        if not self.counts:
            return
        logger.log(level, "%s", self.summary())
        for example in self.examples:
            logger.log(
                level, "rejected (%s) %s: %d bytes %s",
                example.reason, example.detail, example.length, example.hex,
            )


def _as_bytes(payload: Payload) -> bytes | bytearray:
    if isinstance(payload, bytes | bytearray):
        return payload
    return payload.tobytes()


def _precheck(
    payload: bytes | bytearray,
    accepted: frozenset[PayloadType],
    rejections: Rejections,
) -> PayloadType | None:
    """The checks every payload goes through (spec §12, steps 1-5)."""
    if not payload:
        rejections.add(RejectReason.EMPTY, "empty payload", payload)
        return None
    version, type_nibble = payload[0] >> 4, payload[0] & 0x0F
    if version != PROTOCOL_VERSION:
        rejections.add(RejectReason.UNSUPPORTED_VERSION, version_message(version), payload)
        return None
    try:
        payload_type = PayloadType(type_nibble)
    except ValueError:
        rejections.add(RejectReason.UNKNOWN_TYPE, f"payload type {type_nibble}", payload)
        return None
    if payload_type not in accepted:
        expected = "/".join(sorted(t.name for t in accepted))
        rejections.add(
            RejectReason.WRONG_TYPE, f"{payload_type.name} where {expected} belongs", payload
        )
        return None
    if len(payload) > MAX_PAYLOAD:
        rejections.add(
            RejectReason.OVERSIZED, f"{len(payload)} bytes, limit {MAX_PAYLOAD}", payload
        )
        return None
    return payload_type


def _cdeg_or_none(value: int) -> int | None:
    return None if value == NO_VALUE_CDEG else value


def _degrees(cdeg: npt.NDArray[np.int16]) -> npt.NDArray[np.float32]:
    out = cdeg.astype(np.float32) / np.float32(100.0)
    out[cdeg == NO_VALUE_CDEG] = np.nan
    return out


def _offsets_within(counts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """For items grouped in runs of `counts`, each item's position inside its run."""
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    return np.arange(total, dtype=np.int64) - np.repeat(starts, counts)


def _screen(
    packets: Sequence[Payload], accepted: frozenset[PayloadType], rejections: Rejections
) -> list[tuple[int, PayloadType, bytes | bytearray]]:
    """(input position, type, bytes) of every payload that passes the common checks."""
    out: list[tuple[int, PayloadType, bytes | bytearray]] = []
    for i, payload in enumerate(packets):
        data = _as_bytes(payload)
        kind = _precheck(data, accepted, rejections)
        if kind is not None:
            out.append((i, kind, data))
    return out


def _counted(
    packet: bytes | bytearray,
    header: struct.Struct,
    max_count: int,
    item_size: int,
    what: str,
    rejections: Rejections,
) -> tuple[int, ...] | None:
    """The header fields of a packet of `count` (the header's second field) items of
    `item_size` bytes, or None after counting why its size and count do not fit."""
    size = len(packet)
    if size < header.size:
        rejections.add(
            RejectReason.TRUNCATED, f"{size} bytes, header needs {header.size}", packet
        )
        return None
    fields: tuple[int, ...] = header.unpack_from(packet)
    count = fields[1]
    if count == 0:
        rejections.add(RejectReason.COUNT_ZERO, f"{what} count 0", packet)
        return None
    if count > max_count:
        rejections.add(
            RejectReason.OVERSIZED, f"{what} count {count} > {max_count}", packet
        )
        return None
    expected = header.size + item_size * count
    if size != expected:
        rejections.add(
            RejectReason.INCONSISTENT_COUNT,
            f"count {count} needs {expected} bytes, got {size}",
            packet,
        )
        return None
    return fields


# --- samples --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SampleArrays:
    """Decoded samples, one element per sample across all accepted packets.

    t_ms keeps the device's u32 meaning, (t_ms + i * period_ms) mod 2^32, in an int64 so later
    unwrapping arithmetic does not overflow. flags has the reserved bits cleared. packet_index is
    the position of the sample's packet in the decoder's input.
    """

    seq: npt.NDArray[np.uint32]
    t_ms: npt.NDArray[np.int64]
    boot_id: npt.NDArray[np.uint8]
    period_ms: npt.NDArray[np.uint16]
    flexion_deg: npt.NDArray[np.float32]
    lateral_deg: npt.NDArray[np.float32]
    rotation_deg: npt.NDArray[np.float32]
    flags: npt.NDArray[np.uint8]
    backfill: npt.NDArray[np.bool_]
    packet_index: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.seq.shape[0])

    @classmethod
    def empty(cls) -> SampleArrays:
        return cls(
            seq=np.empty(0, np.uint32),
            t_ms=np.empty(0, np.int64),
            boot_id=np.empty(0, np.uint8),
            period_ms=np.empty(0, np.uint16),
            flexion_deg=np.empty(0, np.float32),
            lateral_deg=np.empty(0, np.float32),
            rotation_deg=np.empty(0, np.float32),
            flags=np.empty(0, np.uint8),
            backfill=np.empty(0, np.bool_),
            packet_index=np.empty(0, np.int64),
        )


def _decode_sample_packets(
    items: Iterable[tuple[int, bytes | bytearray]], rejections: Rejections
) -> SampleArrays:
    index: list[int] = []
    counts: list[int] = []
    seq0: list[int] = []
    t0: list[int] = []
    boots: list[int] = []
    periods: list[int] = []
    backfill: list[bool] = []
    bodies: list[memoryview] = []
    for i, packet in items:
        fields = _counted(packet, _SAMPLE_HEADER, MAX_SAMPLES, SAMPLE_SIZE, "sample", rejections)
        if fields is None:
            continue
        vt, count, seq, t_ms, boot_id, period = fields
        if period == 0:
            rejections.add(RejectReason.PERIOD_ZERO, "period_ms 0", packet)
            continue
        index.append(i)
        counts.append(count)
        seq0.append(seq)
        t0.append(t_ms)
        boots.append(boot_id)
        periods.append(period)
        backfill.append((vt & 0x0F) == PayloadType.SAMPLES_BACKFILL)
        bodies.append(memoryview(packet)[SAMPLE_HEADER_SIZE:])
    if not index:
        return SampleArrays.empty()

    raw = np.frombuffer(b"".join(bodies), dtype=_SAMPLE_DTYPE)
    n = np.asarray(counts, dtype=np.int64)
    within = _offsets_within(n)
    period_each = np.repeat(np.asarray(periods, dtype=np.int64), n)
    seq_each = (np.repeat(np.asarray(seq0, dtype=np.int64), n) + within) & 0xFFFFFFFF
    t_each = (np.repeat(np.asarray(t0, dtype=np.int64), n) + within * period_each) & 0xFFFFFFFF
    return SampleArrays(
        seq=seq_each.astype(np.uint32),
        t_ms=t_each,
        boot_id=np.repeat(np.asarray(boots, dtype=np.uint8), n),
        period_ms=period_each.astype(np.uint16),
        flexion_deg=_degrees(raw["flexion"]),
        lateral_deg=_degrees(raw["lateral"]),
        rotation_deg=_degrees(raw["rotation"]),
        flags=raw["flags"] & np.uint8(SAMPLE_FLAG_MASK),
        backfill=np.repeat(np.asarray(backfill, dtype=np.bool_), n),
        packet_index=np.repeat(np.asarray(index, dtype=np.int64), n),
    )


def decode_samples(
    packets: Sequence[Payload], rejections: Rejections | None = None
) -> tuple[SampleArrays, Rejections]:
    """Decode SAMPLES_LIVE/SAMPLES_BACKFILL packets; anything else is rejected and counted."""
    rej = Rejections() if rejections is None else rejections
    accepted = [(i, data) for i, _, data in _screen(packets, _SAMPLE_TYPES, rej)]
    return _decode_sample_packets(accepted, rej), rej


# --- summaries -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SummaryArrays:
    """Decoded summary records, one element per minute; angles in degrees, NaN for none."""

    record_index: npt.NDArray[np.uint32]
    start: npt.NDArray[np.uint32]
    boot_id: npt.NDArray[np.uint8]
    wear_s: npt.NDArray[np.uint8]
    mean_flexion_deg: npt.NDArray[np.float32]
    max_flexion_deg: npt.NDArray[np.float32]
    strain_s: npt.NDArray[np.uint8]
    episodes: npt.NDArray[np.uint8]
    flags: npt.NDArray[np.uint8]
    packet_index: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.record_index.shape[0])

    @classmethod
    def empty(cls) -> SummaryArrays:
        return cls(
            record_index=np.empty(0, np.uint32),
            start=np.empty(0, np.uint32),
            boot_id=np.empty(0, np.uint8),
            wear_s=np.empty(0, np.uint8),
            mean_flexion_deg=np.empty(0, np.float32),
            max_flexion_deg=np.empty(0, np.float32),
            strain_s=np.empty(0, np.uint8),
            episodes=np.empty(0, np.uint8),
            flags=np.empty(0, np.uint8),
            packet_index=np.empty(0, np.int64),
        )

    def to_records(self) -> list[SummaryRecord]:
        def cdeg(deg: float) -> int | None:
            return None if np.isnan(deg) else round(deg * 100)

        return [
            SummaryRecord(
                index=int(self.record_index[k]),
                start=int(self.start[k]),
                boot_id=int(self.boot_id[k]),
                wear_s=int(self.wear_s[k]),
                mean_flexion_cdeg=cdeg(float(self.mean_flexion_deg[k])),
                max_flexion_cdeg=cdeg(float(self.max_flexion_deg[k])),
                strain_s=int(self.strain_s[k]),
                episodes=int(self.episodes[k]),
                flags=SummaryFlag(int(self.flags[k])),
            )
            for k in range(len(self))
        ]


def _decode_summary_packets(
    items: Iterable[tuple[int, bytes | bytearray]], rejections: Rejections
) -> SummaryArrays:
    packets: list[bytes | bytearray] = []
    index: list[int] = []
    counts: list[int] = []
    first: list[int] = []
    for i, packet in items:
        fields = _counted(
            packet, _SUMMARY_HEADER, MAX_SUMMARY_RECORDS, SUMMARY_RECORD_SIZE, "record", rejections
        )
        if fields is None:
            continue
        _, count, first_index = fields
        packets.append(packet)
        index.append(i)
        counts.append(count)
        first.append(first_index)
    if not index:
        return SummaryArrays.empty()

    raw = np.frombuffer(
        b"".join(memoryview(p)[SUMMARY_HEADER_SIZE:] for p in packets), dtype=_RECORD_DTYPE
    )
    n = np.asarray(counts, dtype=np.int64)
    bad = (raw["wear_s"] > 60) | (raw["strain_s"] > raw["wear_s"])
    packet_bad = np.logical_or.reduceat(bad, np.cumsum(n) - n)
    for k in np.flatnonzero(packet_bad):
        rejections.add(
            RejectReason.INVALID_VALUE, "record with wear_s > 60 or strain_s > wear_s", packets[k]
        )
    keep = ~np.repeat(packet_bad, n)
    within = _offsets_within(n)
    record_index = (np.repeat(np.asarray(first, dtype=np.int64), n) + within) & 0xFFFFFFFF
    raw = raw[keep]
    return SummaryArrays(
        record_index=record_index[keep].astype(np.uint32),
        start=raw["start"].astype(np.uint32),
        boot_id=raw["boot_id"].copy(),
        wear_s=raw["wear_s"].copy(),
        mean_flexion_deg=_degrees(raw["mean"]),
        max_flexion_deg=_degrees(raw["max"]),
        strain_s=raw["strain_s"].copy(),
        episodes=raw["episodes"].copy(),
        flags=raw["flags"] & np.uint8(SUMMARY_FLAG_MASK),
        packet_index=np.repeat(np.asarray(index, dtype=np.int64), n)[keep],
    )


def decode_summaries(
    packets: Sequence[Payload], rejections: Rejections | None = None
) -> tuple[SummaryArrays, Rejections]:
    """Decode SUMMARY packets; anything else is rejected and counted."""
    rej = Rejections() if rejections is None else rejections
    accepted = [(i, data) for i, _, data in _screen(packets, _SUMMARY_TYPES, rej)]
    return _decode_summary_packets(accepted, rej), rej


def decode_posture(
    packets: Sequence[Payload], rejections: Rejections | None = None
) -> tuple[SampleArrays, SummaryArrays, Rejections]:
    """Decode what arrived on the posture characteristic: samples of both kinds and summaries."""
    rej = Rejections() if rejections is None else rejections
    screened = _screen(packets, _POSTURE_TYPES, rej)
    samples = [(i, data) for i, kind, data in screened if kind is not PayloadType.SUMMARY]
    summaries = [(i, data) for i, kind, data in screened if kind is PayloadType.SUMMARY]
    return _decode_sample_packets(samples, rej), _decode_summary_packets(summaries, rej), rej


# --- events --------------------------------------------------------------------------------
def _event_data(code: EventCode, body: bytes | bytearray) -> EventData | str:
    """The payload of an event, or why its values are invalid."""
    if code is EventCode.STRAIN_START:
        (flexion,) = struct.unpack_from("<h", body)
        return StrainStart(_cdeg_or_none(flexion))
    if code is EventCode.STRAIN_END:
        duration, peak = struct.unpack_from("<Hh", body)
        return StrainEnd(duration, _cdeg_or_none(peak))
    if code is EventCode.HEADACHE_MARKER:
        return HeadacheMarker()
    if code is EventCode.CALIBRATION:
        result, pitch, roll = struct.unpack_from("<Bhh", body)
        try:
            outcome = CalibrationResult(result)
        except ValueError:
            return f"calibration result {result}"
        return CalibrationOutcome(outcome, _cdeg_or_none(pitch), _cdeg_or_none(roll))
    if code is EventCode.BUFFER_OVERFLOW:
        first, last = struct.unpack_from("<II", body)
        return BufferOverflow(first, last)
    millivolts, percent = struct.unpack_from("<HB", body)
    if percent > 100:
        return f"battery percent {percent}"
    return LowBattery(millivolts, percent)


def decode_event(payload: Payload, rejections: Rejections) -> Event | None:
    """Decode one events-characteristic payload, or count it in `rejections` and return None."""
    data = _as_bytes(payload)
    if _precheck(data, frozenset({PayloadType.EVENT}), rejections) is None:
        return None
    if len(data) < EVENT_HEADER_SIZE:
        rejections.add(
            RejectReason.TRUNCATED, f"{len(data)} bytes, header needs {EVENT_HEADER_SIZE}", data
        )
        return None
    _, raw_code, event_seq, boot_id, t_ms = _EVENT_HEADER.unpack_from(data)
    try:
        code = EventCode(raw_code)
    except ValueError:
        rejections.add(RejectReason.UNKNOWN_EVENT_CODE, f"event code {raw_code}", data)
        return None
    body = data[EVENT_HEADER_SIZE:]
    if len(body) != EVENT_PAYLOAD_SIZE[code]:
        rejections.add(
            RejectReason.BAD_EVENT_LENGTH,
            f"{code.name} payload {len(body)} bytes, expected {EVENT_PAYLOAD_SIZE[code]}",
            data,
        )
        return None
    event_data = _event_data(code, body)
    if isinstance(event_data, str):
        rejections.add(RejectReason.INVALID_VALUE, event_data, data)
        return None
    return Event(code, event_seq, boot_id, t_ms, event_data)


def decode_events(
    payloads: Sequence[Payload], rejections: Rejections | None = None
) -> tuple[list[Event], Rejections]:
    rej = Rejections() if rejections is None else rejections
    events = [e for e in (decode_event(p, rej) for p in payloads) if e is not None]
    return events, rej


# --- status -------------------------------------------------------------------------------
def decode_status(payload: Payload, rejections: Rejections) -> Status | None:
    """Decode a status read, or count it in `rejections` and return None."""
    data = _as_bytes(payload)
    if _precheck(data, frozenset({PayloadType.STATUS}), rejections) is None:
        return None
    if len(data) < STATUS_SIZE:
        rejections.add(
            RejectReason.TRUNCATED, f"{len(data)} bytes, status is {STATUS_SIZE}", data
        )
        return None
    if len(data) > STATUS_SIZE:
        rejections.add(
            RejectReason.BAD_LENGTH, f"{len(data)} bytes, status is {STATUS_SIZE}", data
        )
        return None
    (vt, boot_id, t_ms, next_seq, oldest_seq, next_record, oldest_record, battery_mv,
     battery_pct, state, period_ms) = _STATUS.unpack_from(data)
    if period_ms == 0:
        rejections.add(RejectReason.PERIOD_ZERO, "status period_ms 0", data)
        return None
    if battery_pct > 100:
        rejections.add(RejectReason.INVALID_VALUE, f"battery percent {battery_pct}", data)
        return None
    return Status(
        version=vt >> 4,
        boot_id=boot_id,
        t_ms=t_ms,
        next_seq=next_seq,
        oldest_seq=oldest_seq,
        next_record=next_record,
        oldest_record=oldest_record,
        battery_mv=battery_mv,
        battery_pct=battery_pct,
        state=StateFlag(state & STATE_FLAG_MASK),
        period_ms=period_ms,
    )


def require_supported_version(status_payload: Payload) -> Status:
    """The connect-time check: the device's status, or a ProtocolError meant for the user.

    Raises UnsupportedProtocolVersion (with the message from docs/protocol.md §2) when the device
    speaks another protocol version, ProtocolError when its status is otherwise unusable.
    """
    data = _as_bytes(status_payload)
    if data and data[0] >> 4 != PROTOCOL_VERSION:
        raise UnsupportedProtocolVersion(data[0] >> 4)
    rejections = Rejections()
    status = decode_status(data, rejections)
    if status is None:
        example = rejections.examples[0]
        raise ProtocolError(f"device status unreadable ({example.reason}: {example.detail})")
    return status


# --- config --------------------------------------------------------------------------------
def decode_config(payload: Payload, rejections: Rejections) -> Config | None:
    """Decode a config read; keys unknown to v1 go to Config.unknown (forward compatible)."""
    data = _as_bytes(payload)
    if _precheck(data, frozenset({PayloadType.CONFIG}), rejections) is None:
        return None
    if (len(data) - 1) % 5:
        rejections.add(
            RejectReason.BAD_LENGTH, f"{len(data)} bytes is not 1 + 5 per entry", data
        )
        return None
    values: dict[ConfigKey, int] = {}
    unknown: dict[int, int] = {}
    for offset in range(1, len(data), 5):
        key, value = _CONFIG_ENTRY.unpack_from(data, offset)
        if key in values or key in unknown:
            rejections.add(RejectReason.INVALID_VALUE, f"config key {key} repeated", data)
            return None
        try:
            known = ConfigKey(key)
        except ValueError:
            unknown[key] = value
            continue
        if not config_value_ok(known, value):
            rejections.add(
                RejectReason.INVALID_VALUE, f"{known.name}={value} out of range", data
            )
            return None
        values[known] = value
    return Config(values=values, unknown=unknown)


# --- control-point responses -------------------------------------------------------------
def decode_cp_response(payload: Payload, rejections: Rejections) -> CPResponse | None:
    """Decode a control-point indication, or count it in `rejections` and return None."""
    data = _as_bytes(payload)
    if _precheck(data, frozenset({PayloadType.CP_RESPONSE}), rejections) is None:
        return None
    if len(data) < CP_RESPONSE_HEADER_SIZE:
        rejections.add(
            RejectReason.TRUNCATED,
            f"{len(data)} bytes, header needs {CP_RESPONSE_HEADER_SIZE}",
            data,
        )
        return None
    opcode, raw_status = data[1], data[2]
    try:
        status = CPStatus(raw_status)
    except ValueError:
        rejections.add(RejectReason.INVALID_VALUE, f"response status {raw_status}", data)
        return None
    body = data[CP_RESPONSE_HEADER_SIZE:]
    expected = 0
    if status is CPStatus.SUCCESS:
        try:
            expected = CP_SUCCESS_DATA_SIZE[Opcode(opcode)]
        except ValueError:
            rejections.add(RejectReason.INVALID_VALUE, f"SUCCESS for opcode {opcode}", data)
            return None
    if len(body) != expected:
        rejections.add(
            RejectReason.BAD_LENGTH,
            f"{status.name} for opcode {opcode}: {len(body)} data bytes, expected {expected}",
            data,
        )
        return None
    result: CPResponseData = None
    if status is CPStatus.SUCCESS and opcode == Opcode.SET_TIME:
        result = TimeAnchor(*struct.unpack_from("<BI", body))
    elif status is CPStatus.SUCCESS and opcode == Opcode.REQUEST_RAW:
        result = RawBackfillResult(*struct.unpack_from("<II", body))
    elif status is CPStatus.SUCCESS and opcode == Opcode.REQUEST_SUMMARY:
        result = SummaryBackfillResult(*struct.unpack_from("<II", body))
    return CPResponse(request_opcode=opcode, status=status, data=result)
