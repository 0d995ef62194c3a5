"""Neckline wire protocol v1, host side: constants, enums and decoded record types.

docs/protocol.md is the normative spec. The device-side twin is firmware/wearable/proto.py; a test
checks that the two agree on every constant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag, StrEnum

from neckline.errors import NecklineError

PROTOCOL_VERSION = 1
MAX_PAYLOAD = 512  # ATT caps attribute values at 512 bytes, below MTU 517 - 3
ATT_MTU_DEFAULT = 23
ATT_MTU_MAX = 517
NO_VALUE_CDEG = -32768
# Above this, a SET_TIME could not be stored as the u32 seconds of a summary minute start.
MAX_UTC_EPOCH_MS = (1 << 32) * 1000

# --- GATT profile -----------------------------------------------------------------------------
SERVICE_UUID = "6e6b0001-8a3c-4b5e-9f1d-2c7a4e0b5d10"
POSTURE_UUID = "6e6b0002-8a3c-4b5e-9f1d-2c7a4e0b5d10"
CONTROL_POINT_UUID = "6e6b0003-8a3c-4b5e-9f1d-2c7a4e0b5d10"
EVENTS_UUID = "6e6b0004-8a3c-4b5e-9f1d-2c7a4e0b5d10"
STATUS_UUID = "6e6b0005-8a3c-4b5e-9f1d-2c7a4e0b5d10"
CONFIG_UUID = "6e6b0006-8a3c-4b5e-9f1d-2c7a4e0b5d10"

BATTERY_SERVICE_UUID16 = 0x180F
BATTERY_LEVEL_UUID16 = 0x2A19
DEVICE_INFO_SERVICE_UUID16 = 0x180A
MANUFACTURER_NAME_UUID16 = 0x2A29
MODEL_NUMBER_UUID16 = 0x2A24
FIRMWARE_REVISION_UUID16 = 0x2A26
HARDWARE_REVISION_UUID16 = 0x2A27
MANUFACTURER_NAME = "Neckline"


def uuid16_to_128(uuid16: int) -> str:
    """The full UUID bleak reports for a 16-bit SIG UUID."""
    return f"0000{uuid16:04x}-0000-1000-8000-00805f9b34fb"


BATTERY_SERVICE_UUID = uuid16_to_128(BATTERY_SERVICE_UUID16)
BATTERY_LEVEL_UUID = uuid16_to_128(BATTERY_LEVEL_UUID16)
DEVICE_INFO_SERVICE_UUID = uuid16_to_128(DEVICE_INFO_SERVICE_UUID16)
MANUFACTURER_NAME_UUID = uuid16_to_128(MANUFACTURER_NAME_UUID16)
MODEL_NUMBER_UUID = uuid16_to_128(MODEL_NUMBER_UUID16)
FIRMWARE_REVISION_UUID = uuid16_to_128(FIRMWARE_REVISION_UUID16)
HARDWARE_REVISION_UUID = uuid16_to_128(HARDWARE_REVISION_UUID16)

ADV_NAME_PREFIX = "Neckline-"
ADV_FLAGS = 0x06
ADV_APPEARANCE = 0x0540

# --- sizes ------------------------------------------------------------------------------------
SAMPLE_HEADER_SIZE = 13
SAMPLE_SIZE = 7
MAX_SAMPLES = 71
SUMMARY_HEADER_SIZE = 6
SUMMARY_RECORD_SIZE = 13
MAX_SUMMARY_RECORDS = 38
EVENT_HEADER_SIZE = 9
STATUS_SIZE = 28
CONFIG_ENTRY_SIZE = 5
CP_RESPONSE_HEADER_SIZE = 3


class PayloadType(IntEnum):
    """Low nibble of the ver_type byte."""

    SAMPLES_LIVE = 1
    SAMPLES_BACKFILL = 2
    SUMMARY = 3
    EVENT = 4
    STATUS = 5
    CONFIG = 6
    CP_RESPONSE = 7


def ver_type(payload_type: PayloadType, version: int = PROTOCOL_VERSION) -> int:
    return (version << 4) | int(payload_type)


class SampleFlag(IntFlag):
    CALIBRATED = 0x01
    NOT_WORN = 0x02
    HIGH_MOTION = 0x04
    IN_STRAIN = 0x08
    ROTATION_UNRELIABLE = 0x10


class SummaryFlag(IntFlag):
    TIME_VALID = 0x01
    CALIBRATED = 0x02
    PARTIAL = 0x04
    ALERTED = 0x08


class StateFlag(IntFlag):
    CALIBRATED = 0x01
    WORN = 0x02
    TIME_SET = 0x04
    BONDED = 0x08
    HAPTICS_ON = 0x10
    STREAMING = 0x20


SAMPLE_FLAG_MASK = 0x1F
SUMMARY_FLAG_MASK = 0x0F
STATE_FLAG_MASK = 0x3F


class EventCode(IntEnum):
    STRAIN_START = 1
    STRAIN_END = 2
    HEADACHE_MARKER = 3
    CALIBRATION = 4
    BUFFER_OVERFLOW = 5
    LOW_BATTERY = 6


EVENT_PAYLOAD_SIZE: dict[EventCode, int] = {
    EventCode.STRAIN_START: 2,
    EventCode.STRAIN_END: 4,
    EventCode.HEADACHE_MARKER: 0,
    EventCode.CALIBRATION: 5,
    EventCode.BUFFER_OVERFLOW: 8,
    EventCode.LOW_BATTERY: 3,
}


class CalibrationResult(IntEnum):
    OK = 0
    MOVING = 1
    NOT_WORN = 2
    NO_IMU = 3
    TIMEOUT = 4


class Opcode(IntEnum):
    CALIBRATE = 0x01
    SET_TIME = 0x02
    SET_CONFIG = 0x03
    REQUEST_RAW = 0x04
    REQUEST_SUMMARY = 0x05
    ABORT = 0x06
    GET_STATUS = 0x07


class CPStatus(IntEnum):
    SUCCESS = 0x01
    UNSUPPORTED = 0x02
    INVALID_PARAMETER = 0x03
    BUSY = 0x04
    NOT_AUTHORISED = 0x05
    NO_RECORDS = 0x06
    REFUSED = 0x07


# Response data length on SUCCESS; every other status carries none.
CP_SUCCESS_DATA_SIZE: dict[Opcode, int] = {
    Opcode.CALIBRATE: 0,
    Opcode.SET_TIME: 5,
    Opcode.SET_CONFIG: 0,
    Opcode.REQUEST_RAW: 8,
    Opcode.REQUEST_SUMMARY: 8,
    Opcode.ABORT: 0,
    Opcode.GET_STATUS: 0,
}


class ConfigKey(IntEnum):
    STRAIN_THRESHOLD_CDEG = 1
    STRAIN_HOLD_S = 2
    HYSTERESIS_CDEG = 3
    CLEAR_HOLD_S = 4
    STREAM_PERIOD_MS = 5
    HAPTICS_ENABLED = 6
    QUIET_START_MIN = 7
    QUIET_END_MIN = 8
    SNOOZE_S = 9
    EXTENSION_THRESHOLD_CDEG = 10
    LATERAL_THRESHOLD_CDEG = 11


CONFIG_DEFAULTS: dict[ConfigKey, int] = {
    ConfigKey.STRAIN_THRESHOLD_CDEG: 2500,
    ConfigKey.STRAIN_HOLD_S: 60,
    ConfigKey.HYSTERESIS_CDEG: 500,
    ConfigKey.CLEAR_HOLD_S: 5,
    ConfigKey.STREAM_PERIOD_MS: 100,
    ConfigKey.HAPTICS_ENABLED: 1,
    ConfigKey.QUIET_START_MIN: -1,
    ConfigKey.QUIET_END_MIN: -1,
    ConfigKey.SNOOZE_S: 900,
    ConfigKey.EXTENSION_THRESHOLD_CDEG: -1500,
    ConfigKey.LATERAL_THRESHOLD_CDEG: 2000,
}

# Inclusive ranges; part of v1, checked by the device parser and the host encoder alike.
CONFIG_RANGES: dict[ConfigKey, tuple[int, int]] = {
    ConfigKey.STRAIN_THRESHOLD_CDEG: (100, 9000),
    ConfigKey.STRAIN_HOLD_S: (1, 3600),
    ConfigKey.HYSTERESIS_CDEG: (0, 3000),
    ConfigKey.CLEAR_HOLD_S: (0, 600),
    ConfigKey.STREAM_PERIOD_MS: (10, 60000),
    ConfigKey.HAPTICS_ENABLED: (0, 1),
    ConfigKey.QUIET_START_MIN: (-1, 1439),
    ConfigKey.QUIET_END_MIN: (-1, 1439),
    ConfigKey.SNOOZE_S: (0, 86400),
    ConfigKey.EXTENSION_THRESHOLD_CDEG: (-9000, -100),
    ConfigKey.LATERAL_THRESHOLD_CDEG: (100, 9000),
}


def config_value_ok(key: int, value: int) -> bool:
    """True if `key` is a v1 config key and `value` lies in its range."""
    if key not in CONFIG_RANGES:
        return False
    low, high = CONFIG_RANGES[ConfigKey(key)]
    return low <= value <= high


class RejectReason(StrEnum):
    """Why a payload was rejected (docs/protocol.md §12). The set is closed."""

    EMPTY = "empty"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_TYPE = "unknown_type"
    WRONG_TYPE = "wrong_type"
    OVERSIZED = "oversized"
    TRUNCATED = "truncated"
    COUNT_ZERO = "count_zero"
    INCONSISTENT_COUNT = "inconsistent_count"
    PERIOD_ZERO = "period_zero"
    UNKNOWN_EVENT_CODE = "unknown_event_code"
    BAD_EVENT_LENGTH = "bad_event_length"
    BAD_LENGTH = "bad_length"
    INVALID_VALUE = "invalid_value"


# --- capacity per MTU -------------------------------------------------------------------------
def payload_max(mtu: int) -> int:
    """Largest payload one notification may carry at this ATT_MTU (MTUs below 23 count as 23)."""
    return min(max(mtu, ATT_MTU_DEFAULT) - 3, MAX_PAYLOAD)


def samples_per_packet(mtu: int) -> int:
    return (payload_max(mtu) - SAMPLE_HEADER_SIZE) // SAMPLE_SIZE


def summary_records_per_packet(mtu: int) -> int:
    return (payload_max(mtu) - SUMMARY_HEADER_SIZE) // SUMMARY_RECORD_SIZE


def config_entries_per_write(mtu: int) -> int:
    return (payload_max(mtu) - 1) // CONFIG_ENTRY_SIZE


# --- errors -----------------------------------------------------------------------------------
def version_message(device_version: int) -> str:
    return (
        f"device speaks Neckline protocol v{device_version}, this host speaks "
        f"v{PROTOCOL_VERSION}; update neckline or the firmware"
    )


class ProtocolError(NecklineError):
    """The device sent something this host cannot work with."""


class UnsupportedProtocolVersion(ProtocolError):
    """The device speaks a protocol version this host does not."""

    def __init__(self, device_version: int) -> None:
        super().__init__(version_message(device_version))
        self.device_version = device_version


# --- decoded records --------------------------------------------------------------------------
def cdeg_to_deg(cdeg: int | None) -> float:
    return math.nan if cdeg is None else cdeg / 100.0


@dataclass(frozen=True)
class StrainStart:
    flexion_cdeg: int | None


@dataclass(frozen=True)
class StrainEnd:
    duration_s: int
    peak_flexion_cdeg: int | None


@dataclass(frozen=True)
class HeadacheMarker:
    pass


@dataclass(frozen=True)
class CalibrationOutcome:
    result: CalibrationResult
    pitch_cdeg: int | None
    roll_cdeg: int | None


@dataclass(frozen=True)
class BufferOverflow:
    first_lost_seq: int
    last_lost_seq: int

    @property
    def lost(self) -> int:
        return ((self.last_lost_seq - self.first_lost_seq) & 0xFFFFFFFF) + 1


@dataclass(frozen=True)
class LowBattery:
    millivolts: int
    percent: int


EventData = (
    StrainStart | StrainEnd | HeadacheMarker | CalibrationOutcome | BufferOverflow | LowBattery
)


@dataclass(frozen=True)
class Event:
    code: EventCode
    event_seq: int
    boot_id: int
    t_ms: int
    data: EventData


@dataclass(frozen=True)
class SummaryRecord:
    """One minute of summary, with angles as on the wire (cdeg, None for no value)."""

    index: int
    start: int
    boot_id: int
    wear_s: int
    mean_flexion_cdeg: int | None
    max_flexion_cdeg: int | None
    strain_s: int
    episodes: int
    flags: SummaryFlag


@dataclass(frozen=True)
class Status:
    version: int
    boot_id: int
    t_ms: int
    next_seq: int
    oldest_seq: int
    next_record: int
    oldest_record: int
    battery_mv: int
    battery_pct: int
    state: StateFlag
    period_ms: int


@dataclass(frozen=True)
class Config:
    """A config read. Keys this host does not know are kept apart in `unknown`, never applied."""

    values: dict[ConfigKey, int] = field(default_factory=dict)
    unknown: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class TimeAnchor:
    """SET_TIME response: the device clock (boot_id, t_ms) when the UTC time was applied."""

    boot_id: int
    t_ms: int


@dataclass(frozen=True)
class RawBackfillResult:
    samples_sent: int
    oldest_available_seq: int


@dataclass(frozen=True)
class SummaryBackfillResult:
    records_sent: int
    next_record: int


CPResponseData = TimeAnchor | RawBackfillResult | SummaryBackfillResult | None


@dataclass(frozen=True)
class CPResponse:
    """A control-point response. request_opcode stays an int: the device echoes unknown opcodes."""

    request_opcode: int
    status: CPStatus
    data: CPResponseData = None

    @property
    def opcode(self) -> Opcode | None:
        try:
            return Opcode(self.request_opcode)
        except ValueError:
            return None
