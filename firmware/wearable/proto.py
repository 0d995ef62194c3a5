"""Neckline wire protocol v1, device side (docs/protocol.md is the normative spec).

Runs under MicroPython and CPython. Three parts:

* Constants for everything on the wire: UUIDs, GATT flags, payload types, flag bits, event codes,
  opcodes, status codes and config keys (names mirror host/neckline/protocol.py; a test checks
  that they agree).
* Encoders. Each writes a payload at offset 0 of a caller-owned, preallocated buffer (bytearray or a
  memoryview of one) with struct.pack_into and returns the payload length, so sending costs no heap
  allocation per sample. Counters are reduced modulo their width here, so callers may pass seq + i
  or a growing millisecond clock without masking. Angles are clamped to -32767..32767 so nothing but
  NO_VALUE can become the "no value" marker. Bad packet-level arguments (count, period, codes) raise
  ValueError: they are firmware bugs, not wire input.
* parse_request(), the control-point request parser. It never raises: garbage yields
  (ST_INVALID_PARAMETER or ST_UNSUPPORTED, opcode, ()).

Typical live streaming:

    buf = bytearray(MAX_PAYLOAD)
    n = samples_per_packet(mtu)
    for i in range(n):
        pack_sample(buf, i, flex, lat, rot, flags)
    size = pack_samples_header(buf, False, n, seq0, t0, boot_id, period_ms)
    ble.gatts_notify(conn, handle, memoryview(buf)[:size])
"""

import struct

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


VERSION = const(1)
MAX_PAYLOAD = const(512)  # ATT caps attribute values at 512 bytes, below MTU 517 - 3
ATT_MTU_DEFAULT = const(23)
ATT_MTU_MAX = const(517)
NO_VALUE = const(-32768)  # i16 angle reserved for "no value"
# SET_TIME above this could not be expressed as the u32 seconds of a summary minute start.
MAX_UTC_EPOCH_MS = const(4294967296000)

# --- GATT profile -----------------------------------------------------------------------------
SERVICE_UUID = const("6e6b0001-8a3c-4b5e-9f1d-2c7a4e0b5d10")
POSTURE_UUID = const("6e6b0002-8a3c-4b5e-9f1d-2c7a4e0b5d10")
CONTROL_POINT_UUID = const("6e6b0003-8a3c-4b5e-9f1d-2c7a4e0b5d10")
EVENTS_UUID = const("6e6b0004-8a3c-4b5e-9f1d-2c7a4e0b5d10")
STATUS_UUID = const("6e6b0005-8a3c-4b5e-9f1d-2c7a4e0b5d10")
CONFIG_UUID = const("6e6b0006-8a3c-4b5e-9f1d-2c7a4e0b5d10")

BATTERY_SERVICE_UUID16 = const(0x180F)
BATTERY_LEVEL_UUID16 = const(0x2A19)
DEVICE_INFO_SERVICE_UUID16 = const(0x180A)
MANUFACTURER_NAME_UUID16 = const(0x2A29)
MODEL_NUMBER_UUID16 = const(0x2A24)
FIRMWARE_REVISION_UUID16 = const(0x2A26)
HARDWARE_REVISION_UUID16 = const(0x2A27)
MANUFACTURER_NAME = const("Neckline")

ADV_NAME_PREFIX = const("Neckline-")
ADV_FLAGS = const(0x06)  # LE General Discoverable, BR/EDR not supported
ADV_APPEARANCE = const(0x0540)  # generic sensor

# MicroPython bluetooth characteristic flags.
GATT_READ = const(0x0002)
GATT_WRITE_NO_RESPONSE = const(0x0004)
GATT_WRITE = const(0x0008)
GATT_NOTIFY = const(0x0010)
GATT_INDICATE = const(0x0020)
GATT_READ_ENCRYPTED = const(0x0200)
GATT_WRITE_ENCRYPTED = const(0x1000)

# READ_ENCRYPTED on notify-only characteristics: stacks that guard the subscription descriptor by
# the value's permission then refuse unencrypted subscriptions (the firmware checks too).
POSTURE_FLAGS = const(GATT_NOTIFY | GATT_READ_ENCRYPTED)
CONTROL_POINT_FLAGS = const(GATT_WRITE | GATT_INDICATE | GATT_WRITE_ENCRYPTED)
EVENTS_FLAGS = const(GATT_NOTIFY | GATT_INDICATE | GATT_READ_ENCRYPTED)
STATUS_FLAGS = const(GATT_READ)  # readable before pairing, for the version check
CONFIG_FLAGS = const(GATT_READ | GATT_READ_ENCRYPTED)

# --- payload types (low nibble of ver_type) ---------------------------------------------------
T_SAMPLES_LIVE = const(1)
T_SAMPLES_BACKFILL = const(2)
T_SUMMARY = const(3)
T_EVENT = const(4)
T_STATUS = const(5)
T_CONFIG = const(6)
T_CP_RESPONSE = const(7)

SAMPLE_HEADER_SIZE = const(13)
SAMPLE_SIZE = const(7)
MAX_SAMPLES = const(71)
SUMMARY_HEADER_SIZE = const(6)
SUMMARY_RECORD_SIZE = const(13)
MAX_SUMMARY_RECORDS = const(38)
EVENT_HEADER_SIZE = const(9)
STATUS_SIZE = const(28)
CONFIG_ENTRY_SIZE = const(5)
CP_RESPONSE_HEADER_SIZE = const(3)

# --- sample flags -----------------------------------------------------------------------------
SF_CALIBRATED = const(0x01)
SF_NOT_WORN = const(0x02)
SF_HIGH_MOTION = const(0x04)
SF_IN_STRAIN = const(0x08)
SF_ROTATION_UNRELIABLE = const(0x10)
SF_MASK = const(0x1F)

# --- summary record flags ---------------------------------------------------------------------
RF_TIME_VALID = const(0x01)
RF_CALIBRATED = const(0x02)
RF_PARTIAL = const(0x04)
RF_ALERTED = const(0x08)
RF_MASK = const(0x0F)

# --- status state flags -----------------------------------------------------------------------
STATE_CALIBRATED = const(0x01)
STATE_WORN = const(0x02)
STATE_TIME_SET = const(0x04)
STATE_BONDED = const(0x08)
STATE_HAPTICS_ON = const(0x10)
STATE_STREAMING = const(0x20)
STATE_MASK = const(0x3F)

# --- events -----------------------------------------------------------------------------------
EV_STRAIN_START = const(1)
EV_STRAIN_END = const(2)
EV_HEADACHE_MARKER = const(3)
EV_CALIBRATION = const(4)
EV_BUFFER_OVERFLOW = const(5)
EV_LOW_BATTERY = const(6)
# Payload length by event code (index 0 is not a code).
EVENT_PAYLOAD_SIZE = (-1, 2, 4, 0, 5, 8, 3)

CAL_OK = const(0)
CAL_MOVING = const(1)
CAL_NOT_WORN = const(2)
CAL_NO_IMU = const(3)
CAL_TIMEOUT = const(4)

# --- control point ----------------------------------------------------------------------------
OP_CALIBRATE = const(0x01)
OP_SET_TIME = const(0x02)
OP_SET_CONFIG = const(0x03)
OP_REQUEST_RAW = const(0x04)
OP_REQUEST_SUMMARY = const(0x05)
OP_ABORT = const(0x06)
OP_GET_STATUS = const(0x07)

ST_SUCCESS = const(0x01)
ST_UNSUPPORTED = const(0x02)
ST_INVALID_PARAMETER = const(0x03)
ST_BUSY = const(0x04)
ST_NOT_AUTHORISED = const(0x05)
ST_NO_RECORDS = const(0x06)
ST_REFUSED = const(0x07)

# --- config keys ------------------------------------------------------------------------------
KEY_STRAIN_THRESHOLD_CDEG = const(1)
KEY_STRAIN_HOLD_S = const(2)
KEY_HYSTERESIS_CDEG = const(3)
KEY_CLEAR_HOLD_S = const(4)
KEY_STREAM_PERIOD_MS = const(5)
KEY_HAPTICS_ENABLED = const(6)
KEY_QUIET_START_MIN = const(7)
KEY_QUIET_END_MIN = const(8)
KEY_SNOOZE_S = const(9)
KEY_EXTENSION_THRESHOLD_CDEG = const(10)
KEY_LATERAL_THRESHOLD_CDEG = const(11)
MAX_CONFIG_KEY = const(11)

# Indexed by key; index 0 is not a key.
CONFIG_DEFAULTS = (0, 2500, 60, 500, 5, 100, 1, -1, -1, 900, -1500, 2000)
CONFIG_MIN = (0, 100, 1, 0, 0, 10, 0, -1, -1, 0, -9000, 100)
CONFIG_MAX = (0, 9000, 3600, 3000, 600, 60000, 1, 1439, 1439, 86400, -100, 9000)


def config_value_ok(key, value):
    """True if `key` is a v1 config key and `value` lies in its range."""
    if key < 1 or key > MAX_CONFIG_KEY:
        return False
    return CONFIG_MIN[key] <= value <= CONFIG_MAX[key]


# --- capacity per MTU -------------------------------------------------------------------------
def payload_max(mtu):
    """Largest payload a notification may carry at this ATT_MTU."""
    if mtu < ATT_MTU_DEFAULT:
        mtu = ATT_MTU_DEFAULT
    n = mtu - 3
    return n if n < MAX_PAYLOAD else MAX_PAYLOAD


def samples_per_packet(mtu):
    return (payload_max(mtu) - SAMPLE_HEADER_SIZE) // SAMPLE_SIZE


def summary_records_per_packet(mtu):
    return (payload_max(mtu) - SUMMARY_HEADER_SIZE) // SUMMARY_RECORD_SIZE


def config_entries_per_write(mtu):
    return (payload_max(mtu) - 1) // CONFIG_ENTRY_SIZE


# --- encoders ---------------------------------------------------------------------------------
def _cdeg(v):
    if v > 32767:
        return 32767
    if v < -32767 and v != NO_VALUE:
        return -32767
    return v


def pack_samples_header(buf, backfill, count, seq, t_ms, boot_id, period_ms):
    """Write the 13-byte samples header; returns the whole packet length 13 + 7*count."""
    if count < 1 or count > MAX_SAMPLES:
        raise ValueError("sample count")
    if period_ms < 1 or period_ms > 0xFFFF:
        raise ValueError("period_ms")
    vt = 0x12 if backfill else 0x11
    struct.pack_into(
        "<BBIIBH", buf, 0, vt, count, seq & 0xFFFFFFFF, t_ms & 0xFFFFFFFF, boot_id & 0xFF, period_ms
    )
    return SAMPLE_HEADER_SIZE + SAMPLE_SIZE * count


def pack_sample(buf, i, flexion_cdeg, lateral_cdeg, rotation_cdeg, flags):
    """Write sample `i` (0-based) of a samples packet; returns the offset just after it."""
    off = SAMPLE_HEADER_SIZE + SAMPLE_SIZE * i
    struct.pack_into(
        "<hhhB", buf, off, _cdeg(flexion_cdeg), _cdeg(lateral_cdeg), _cdeg(rotation_cdeg),
        flags & SF_MASK,
    )
    return off + SAMPLE_SIZE


def pack_summary_header(buf, count, first_index):
    """Write the 6-byte summary header; returns the whole packet length 6 + 13*count."""
    if count < 1 or count > MAX_SUMMARY_RECORDS:
        raise ValueError("record count")
    struct.pack_into("<BBI", buf, 0, 0x13, count, first_index & 0xFFFFFFFF)
    return SUMMARY_HEADER_SIZE + SUMMARY_RECORD_SIZE * count


def pack_summary_record(buf, i, start, boot_id, wear_s, mean_flexion_cdeg, max_flexion_cdeg,
                        strain_s, episodes, flags):
    """Write record `i` of a summary packet; returns the offset just after it."""
    if wear_s < 0 or wear_s > 60 or strain_s < 0 or strain_s > wear_s:
        raise ValueError("wear_s/strain_s")
    off = SUMMARY_HEADER_SIZE + SUMMARY_RECORD_SIZE * i
    struct.pack_into(
        "<IBBhhBBB", buf, off, start & 0xFFFFFFFF, boot_id & 0xFF, wear_s,
        _cdeg(mean_flexion_cdeg), _cdeg(max_flexion_cdeg), strain_s,
        episodes if episodes < 255 else 255, flags & RF_MASK,
    )
    return off + SUMMARY_RECORD_SIZE


def pack_event(buf, code, event_seq, boot_id, t_ms, a=0, b=0, c=0):
    """Write an event; returns its length. Payload operands by code:

    STRAIN_START a=flexion_cdeg; STRAIN_END a=duration_s b=peak_flexion_cdeg; HEADACHE_MARKER none;
    CALIBRATION a=result b=pitch_cdeg c=roll_cdeg; BUFFER_OVERFLOW a=first_lost_seq b=last_lost_seq;
    LOW_BATTERY a=millivolts b=percent.
    """
    if code < 1 or code > EV_LOW_BATTERY:
        raise ValueError("event code")
    struct.pack_into(
        "<BBHBI", buf, 0, 0x14, code, event_seq & 0xFFFF, boot_id & 0xFF, t_ms & 0xFFFFFFFF
    )
    o = EVENT_HEADER_SIZE
    if code == EV_STRAIN_START:
        struct.pack_into("<h", buf, o, _cdeg(a))
    elif code == EV_STRAIN_END:
        struct.pack_into("<Hh", buf, o, a if a < 0xFFFF else 0xFFFF, _cdeg(b))
    elif code == EV_CALIBRATION:
        struct.pack_into("<Bhh", buf, o, a, _cdeg(b), _cdeg(c))
    elif code == EV_BUFFER_OVERFLOW:
        struct.pack_into("<II", buf, o, a & 0xFFFFFFFF, b & 0xFFFFFFFF)
    elif code == EV_LOW_BATTERY:
        struct.pack_into("<HB", buf, o, a, b)
    return o + EVENT_PAYLOAD_SIZE[code]


def pack_status(buf, boot_id, t_ms, next_seq, oldest_seq, next_record, oldest_record, battery_mv,
                battery_pct, state, period_ms):
    """Write the 28-byte status value; returns 28."""
    struct.pack_into(
        "<BBIIIIIHBBH", buf, 0, 0x15, boot_id & 0xFF, t_ms & 0xFFFFFFFF, next_seq & 0xFFFFFFFF,
        oldest_seq & 0xFFFFFFFF, next_record & 0xFFFFFFFF, oldest_record & 0xFFFFFFFF,
        battery_mv, battery_pct, state & STATE_MASK, period_ms,
    )
    return STATUS_SIZE


def pack_config(buf, entries):
    """Write the config value from (key, value) pairs; returns its length 1 + 5*K."""
    buf[0] = 0x16
    off = 1
    for key, value in entries:
        struct.pack_into("<Bi", buf, off, key, value)
        off += CONFIG_ENTRY_SIZE
    return off


def pack_cp_response(buf, opcode, status, a=0, b=0):
    """Write a control-point response; returns its length.

    Data is written only on ST_SUCCESS: SET_TIME a=boot_id b=t_ms; REQUEST_RAW a=samples_sent
    b=oldest_available_seq; REQUEST_SUMMARY a=records_sent b=next_record.
    """
    struct.pack_into("<BBB", buf, 0, 0x17, opcode & 0xFF, status)
    if status != ST_SUCCESS:
        return CP_RESPONSE_HEADER_SIZE
    if opcode == OP_SET_TIME:
        struct.pack_into("<BI", buf, 3, a & 0xFF, b & 0xFFFFFFFF)
        return 8
    if opcode == OP_REQUEST_RAW or opcode == OP_REQUEST_SUMMARY:
        struct.pack_into("<II", buf, 3, a & 0xFFFFFFFF, b & 0xFFFFFFFF)
        return 11
    return CP_RESPONSE_HEADER_SIZE


# --- control-point request parser -------------------------------------------------------------
def parse_request(buf, n=-1):
    """Check one control-point write. Returns (status, opcode, operands) and never raises.

    status is ST_SUCCESS, ST_UNSUPPORTED or ST_INVALID_PARAMETER; opcode is what to echo in the
    response (0 for an empty write). operands on success: SET_TIME (utc_epoch_ms,);
    SET_CONFIG ((key, value), ...); REQUEST_RAW (first_seq, last_seq); REQUEST_SUMMARY
    (from_record,); otherwise ().
    """
    size = len(buf)
    if 0 <= n < size:
        size = n
    if size == 0:
        return ST_INVALID_PARAMETER, 0, ()
    op = buf[0]
    if op < OP_CALIBRATE or op > OP_GET_STATUS:
        return ST_UNSUPPORTED, op, ()
    if op == OP_CALIBRATE or op == OP_ABORT or op == OP_GET_STATUS:
        if size != 1:
            return ST_INVALID_PARAMETER, op, ()
        return ST_SUCCESS, op, ()
    if op == OP_SET_TIME:
        if size != 9:
            return ST_INVALID_PARAMETER, op, ()
        ms = struct.unpack_from("<Q", buf, 1)[0]
        if ms >= MAX_UTC_EPOCH_MS:
            return ST_INVALID_PARAMETER, op, ()
        return ST_SUCCESS, op, (ms,)
    if op == OP_REQUEST_RAW:
        if size != 9:
            return ST_INVALID_PARAMETER, op, ()
        return ST_SUCCESS, op, struct.unpack_from("<II", buf, 1)
    if op == OP_REQUEST_SUMMARY:
        if size != 5:
            return ST_INVALID_PARAMETER, op, ()
        return ST_SUCCESS, op, struct.unpack_from("<I", buf, 1)
    # SET_CONFIG
    if size < 6 or (size - 1) % CONFIG_ENTRY_SIZE:
        return ST_INVALID_PARAMETER, op, ()
    entries = []
    seen = 0
    for off in range(1, size, CONFIG_ENTRY_SIZE):
        key, value = struct.unpack_from("<Bi", buf, off)
        if not config_value_ok(key, value) or seen & (1 << key):
            return ST_INVALID_PARAMETER, op, ()
        seen |= 1 << key
        entries.append((key, value))
    return ST_SUCCESS, op, tuple(entries)
