"""Write the golden protocol vectors (tests/vectors/*.json) from docs/protocol.md.

This script is a third, independent reading of the spec: it uses only struct and json and imports
neither the firmware (firmware/wearable/proto.py) nor the host (host/neckline/) code. Every byte
string below is built straight from the tables in docs/protocol.md, and its meaning is written next
to it.

    python tests/vectors/make_vectors.py            # rewrite the committed files
    python tests/vectors/make_vectors.py --out DIR  # write elsewhere (the reproducibility test)

Output is deterministic: running it again reproduces the files byte for byte.
"""

from __future__ import annotations

import argparse
import json
import struct
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

NO_VALUE = -32768
TYPE_NAMES = {
    1: "SAMPLES_LIVE", 2: "SAMPLES_BACKFILL", 3: "SUMMARY", 4: "EVENT", 5: "STATUS", 6: "CONFIG",
    7: "CP_RESPONSE",
}
SAMPLE_FLAGS = [
    (0x01, "CALIBRATED"), (0x02, "NOT_WORN"), (0x04, "HIGH_MOTION"), (0x08, "IN_STRAIN"),
    (0x10, "ROTATION_UNRELIABLE"),
]
SUMMARY_FLAGS = [(0x01, "TIME_VALID"), (0x02, "CALIBRATED"), (0x04, "PARTIAL"), (0x08, "ALERTED")]
STATE_FLAGS = [
    (0x01, "CALIBRATED"), (0x02, "WORN"), (0x04, "TIME_SET"), (0x08, "BONDED"),
    (0x10, "HAPTICS_ON"), (0x20, "STREAMING"),
]
EVENT_NAMES = {
    1: "STRAIN_START", 2: "STRAIN_END", 3: "HEADACHE_MARKER", 4: "CALIBRATION",
    5: "BUFFER_OVERFLOW", 6: "LOW_BATTERY",
}
CAL_RESULTS = {0: "OK", 1: "MOVING", 2: "NOT_WORN", 3: "NO_IMU", 4: "TIMEOUT"}
OPCODES = {
    1: "CALIBRATE", 2: "SET_TIME", 3: "SET_CONFIG", 4: "REQUEST_RAW", 5: "REQUEST_SUMMARY",
    6: "ABORT", 7: "GET_STATUS",
}
STATUSES = {
    1: "SUCCESS", 2: "UNSUPPORTED", 3: "INVALID_PARAMETER", 4: "BUSY", 5: "NOT_AUTHORISED",
    6: "NO_RECORDS", 7: "REFUSED",
}
CONFIG_KEYS = {
    1: "STRAIN_THRESHOLD_CDEG", 2: "STRAIN_HOLD_S", 3: "HYSTERESIS_CDEG", 4: "CLEAR_HOLD_S",
    5: "STREAM_PERIOD_MS", 6: "HAPTICS_ENABLED", 7: "QUIET_START_MIN", 8: "QUIET_END_MIN",
    9: "SNOOZE_S", 10: "EXTENSION_THRESHOLD_CDEG", 11: "LATERAL_THRESHOLD_CDEG",
}
CONFIG_DEFAULTS = [
    (1, 2500), (2, 60), (3, 500), (4, 5), (5, 100), (6, 1), (7, -1), (8, -1), (9, 900),
    (10, -1500), (11, 2000),
]
MTUS = (23, 27, 185, 247, 517)


def payload_max(mtu: int) -> int:
    return min(mtu - 3, 512)


def names(value: int, table: list[tuple[int, str]]) -> list[str]:
    return [name for bit, name in table if value & bit]


def wire_angle(cdeg: int | None) -> int:
    return NO_VALUE if cdeg is None else cdeg


def angle_pattern(i: int) -> tuple[int, int, int]:
    """Spread-out but reproducible angles for filler samples (cdeg)."""
    return ((i * 977) % 9001) - 4500, ((i * 613) % 6001) - 3000, ((i * 389) % 18001) - 9000


# --- samples --------------------------------------------------------------------------------
def samples_vector(
    name: str, description: str, *, ptype: int = 1, seq: int, t_ms: int, boot_id: int,
    period_ms: int, samples: list[tuple[int | None, int | None, int | None, int]],
    mtu: int | None = None, device_encodes: bool = True,
) -> dict[str, Any]:
    raw = struct.pack("<BBIIBH", 0x10 | ptype, len(samples), seq, t_ms, boot_id, period_ms)
    decoded_samples = []
    for i, (flex, lat, rot, flags) in enumerate(samples):
        raw += struct.pack("<hhhB", wire_angle(flex), wire_angle(lat), wire_angle(rot), flags)
        meaning = flags & 0x1F  # reserved bits 5..7 are ignored by v1 hosts
        decoded_samples.append({
            "seq": (seq + i) % 2**32,
            "t_ms": (t_ms + i * period_ms) % 2**32,
            "flexion_cdeg": flex,
            "lateral_cdeg": lat,
            "rotation_cdeg": rot,
            "flags": meaning,
            "flag_names": names(meaning, SAMPLE_FLAGS),
        })
    vector: dict[str, Any] = {"name": name, "description": description}
    if mtu is not None:
        vector["mtu"] = mtu
    vector["device_encodes"] = device_encodes
    vector["hex"] = raw.hex()
    vector["decoded"] = {
        "version": 1, "type": ptype, "type_name": TYPE_NAMES[ptype], "count": len(samples),
        "seq": seq, "t_ms": t_ms, "boot_id": boot_id, "period_ms": period_ms,
        "samples": decoded_samples,
    }
    return vector


def filler(n: int, flags: int = 0x11) -> list[tuple[int | None, int | None, int | None, int]]:
    return [(*angle_pattern(i), flags) for i in range(n)]


def samples_file() -> dict[str, Any]:
    v = [
        samples_vector(
            "mtu23_one_sample", "default ATT_MTU 23: exactly one sample, 20 bytes", mtu=23,
            seq=1000, t_ms=123456, boot_id=7, period_ms=100, samples=[(1234, -250, 500, 0x11)],
        ),
        samples_vector(
            "mtu185_full", "ATT_MTU 185 holds 24 samples", mtu=185,
            seq=4000, t_ms=600000, boot_id=7, period_ms=100, samples=filler(24),
        ),
        samples_vector(
            "mtu247_full", "ATT_MTU 247 holds 33 samples (244 bytes, exactly MTU - 3)", mtu=247,
            seq=77777, t_ms=8000000, boot_id=12, period_ms=40, samples=filler(33, 0x19),
        ),
        samples_vector(
            "mtu517_full", "ATT_MTU 517 holds 71 samples (510 bytes; payloads stop at 512)",
            mtu=517, seq=123456789, t_ms=1000, boot_id=255, period_ms=20, samples=filler(71),
        ),
        samples_vector(
            "seq_wrap_inside_packet", "seq runs 0xFFFFFFFE, 0xFFFFFFFF, 0, 1 inside one packet",
            seq=0xFFFFFFFE, t_ms=5000, boot_id=1, period_ms=100,
            samples=[(100, 0, 0, 0x11), (200, 0, 0, 0x11), (300, 0, 0, 0x11), (400, 0, 0, 0x11)],
        ),
        samples_vector(
            "t_ms_wrap_inside_packet", "t_ms crosses 2^32 between the 2nd and 3rd sample",
            seq=10, t_ms=0xFFFFFF38, boot_id=2, period_ms=100,
            samples=[(0, 0, 0, 0x11), (10, 10, 10, 0x11), (20, 20, 20, 0x11), (30, 30, 30, 0x11)],
        ),
        samples_vector(
            "t_ms_last_value", "first sample at t_ms 0xFFFFFFFF, the next one at 99",
            seq=11, t_ms=0xFFFFFFFF, boot_id=2, period_ms=100,
            samples=[(5, 5, 5, 0x11), (6, 6, 6, 0x11)],
        ),
        samples_vector(
            "period_max_wraps_t", "period_ms 65535 (the maximum); t_ms wraps at sample 2",
            seq=500, t_ms=0xFFFF0000, boot_id=9, period_ms=65535,
            samples=[(1, 2, 3, 0x11), (4, 5, 6, 0x11), (7, 8, 9, 0x11)],
        ),
        samples_vector(
            "negative_angles", "negative angles down to -32767, the most negative real value",
            seq=42, t_ms=777, boot_id=3, period_ms=100,
            samples=[
                (-32767, -1, -100, 0x11), (-1500, -32767, -32767, 0x19), (-9000, -2000, 0, 0x11),
            ],
        ),
        samples_vector(
            "extreme_angles", "the largest and smallest real angles, +-327.67 degrees",
            seq=43, t_ms=877, boot_id=3, period_ms=100,
            samples=[(32767, -32767, 32767, 0x11), (-32767, 32767, -32767, 0x11)],
        ),
        samples_vector(
            "no_value", "0x8000 means no value (before calibration); hosts decode NaN",
            seq=0, t_ms=0, boot_id=0, period_ms=100,
            samples=[(None, None, None, 0x10), (None, 150, None, 0x12), (0, None, 25, 0x10)],
        ),
        samples_vector(
            "all_flag_combinations", "one sample per combination of the five flag bits",
            seq=2000, t_ms=3000000, boot_id=4, period_ms=50,
            samples=[(i * 100 - 1600, -i * 10, i, i) for i in range(32)],
        ),
        samples_vector(
            "backfill", "SAMPLES_BACKFILL (type 2) from the raw ring, original seq/t_ms/boot",
            ptype=2, seq=900, t_ms=90000, boot_id=6, period_ms=100,
            samples=[(2600, 100, -40, 0x19), (2610, 90, -41, 0x19), (2590, 80, -42, 0x19),
                     (2400, 70, -43, 0x11), (None, None, None, 0x12)],
        ),
        samples_vector(
            "backfill_mtu23", "one backfill sample at the default MTU", ptype=2, mtu=23,
            seq=0xFFFFFFFF, t_ms=4294967000, boot_id=200, period_ms=1000,
            samples=[(-2500, 1200, 300, 0x1F)],
        ),
        samples_vector(
            "reserved_flag_bits_ignored",
            "flag byte 0xE1: reserved bits 5..7 set by a future sender; v1 hosts keep only 0x01."
            " Devices never send this, so the firmware does not encode it",
            seq=1, t_ms=2, boot_id=3, period_ms=100, samples=[(10, 20, 30, 0xE1)],
            device_encodes=False,
        ),
    ]
    capacity = {str(m): (payload_max(m) - 13) // 7 for m in MTUS}
    return {
        "description": "SAMPLES_LIVE / SAMPLES_BACKFILL packets (docs/protocol.md section 5)",
        "samples_per_packet": capacity,
        "vectors": v,
    }


# --- summary --------------------------------------------------------------------------------
def record(
    start: int, boot_id: int, wear_s: int, mean: int | None, peak: int | None, strain_s: int,
    episodes: int, flags: int,
) -> tuple[int, int, int, int | None, int | None, int, int, int]:
    return (start, boot_id, wear_s, mean, peak, strain_s, episodes, flags)


def summary_vector(
    name: str, description: str, *, first_index: int,
    records: list[tuple[int, int, int, int | None, int | None, int, int, int]],
    mtu: int | None = None, device_encodes: bool = True,
) -> dict[str, Any]:
    raw = struct.pack("<BBI", 0x13, len(records), first_index)
    decoded = []
    for i, (start, boot, wear, mean, peak, strain, episodes, flags) in enumerate(records):
        raw += struct.pack(
            "<IBBhhBBB", start, boot, wear, wire_angle(mean), wire_angle(peak), strain, episodes,
            flags,
        )
        meaning = flags & 0x0F
        decoded.append({
            "index": (first_index + i) % 2**32, "start": start, "boot_id": boot, "wear_s": wear,
            "mean_flexion_cdeg": mean, "max_flexion_cdeg": peak, "strain_s": strain,
            "episodes": episodes, "flags": meaning, "flag_names": names(meaning, SUMMARY_FLAGS),
        })
    vector: dict[str, Any] = {"name": name, "description": description}
    if mtu is not None:
        vector["mtu"] = mtu
    vector["device_encodes"] = device_encodes
    vector["hex"] = raw.hex()
    vector["decoded"] = {
        "version": 1, "type": 3, "type_name": "SUMMARY", "count": len(records),
        "first_index": first_index, "records": decoded,
    }
    return vector


def summary_filler(n: int, start: int) -> list[tuple[int, int, int, int | None, int | None,
                                                        int, int, int]]:
    out: list[tuple[int, int, int, int | None, int | None, int, int, int]] = []
    for i in range(n):
        wear = (i * 7) % 61
        strain = (i * 3) % (wear + 1)
        mean: int | None = ((i * 431) % 5001) - 1500
        peak: int | None = ((i * 431) % 5001) - 1500 + (i * 53) % 900
        if wear == 0:  # nothing worn, so no angle to report
            mean = peak = None
        out.append(record(start + 60 * i, 7, wear, mean, peak, strain, i % 3, i % 16))
    return out


def summary_file() -> dict[str, Any]:
    v = [
        summary_vector(
            "mtu23_one_record", "default ATT_MTU 23: one 13-byte record, 19 bytes", mtu=23,
            first_index=1440,
            records=[record(1700000040, 7, 60, 1834, 2950, 42, 1, 0x0B)],
        ),
        summary_vector(
            "boot_relative_minute", "no UTC time yet: start is seconds since boot 4", first_index=3,
            records=[record(3600, 4, 35, 900, 1500, 0, 0, 0x06)],
        ),
        summary_vector(
            "not_worn_minute", "nothing worn: angles have no value", first_index=4,
            records=[record(1700000100, 7, 0, None, None, 0, 0, 0x01)],
        ),
        summary_vector(
            "extension_minute", "negative mean flexion (looking up)", first_index=5,
            records=[record(1700000160, 7, 60, -1200, 300, 0, 0, 0x03)],
        ),
        summary_vector(
            "all_flag_combinations", "one record per combination of the four flag bits",
            first_index=100, records=[record(1700000000 + 60 * i, 1, 60, 2000, 2600, 30, 1, i)
                                      for i in range(16)],
        ),
        summary_vector(
            "index_wrap", "record index runs 0xFFFFFFFF, 0", first_index=0xFFFFFFFF,
            records=[record(120, 8, 60, 100, 200, 0, 0, 0x02),
                     record(180, 8, 60, 110, 210, 0, 0, 0x02)],
        ),
        summary_vector(
            "mtu247_full", "ATT_MTU 247 holds 18 records", mtu=247, first_index=20000,
            records=summary_filler(18, 1700003000),
        ),
        summary_vector(
            "mtu517_full", "ATT_MTU 517 holds 38 records (500 bytes)", mtu=517, first_index=50000,
            records=summary_filler(38, 1700100000),
        ),
        summary_vector(
            "reserved_flag_bits_ignored",
            "flag byte 0xF3: v1 hosts keep only 0x03; devices never send it", first_index=9,
            records=[record(1700000220, 7, 60, 500, 800, 0, 0, 0xF3)], device_encodes=False,
        ),
    ]
    return {
        "description": "SUMMARY packets (docs/protocol.md section 6)",
        "records_per_packet": {str(m): (payload_max(m) - 6) // 13 for m in MTUS},
        "vectors": v,
    }


# --- events ---------------------------------------------------------------------------------
def event_vector(
    name: str, description: str, code: int, event_seq: int, boot_id: int, t_ms: int,
    body: bytes, payload: dict[str, Any],
) -> dict[str, Any]:
    raw = struct.pack("<BBHBI", 0x14, code, event_seq, boot_id, t_ms) + body
    return {
        "name": name, "description": description, "device_encodes": True, "hex": raw.hex(),
        "decoded": {
            "version": 1, "type": 4, "type_name": "EVENT", "code": code,
            "code_name": EVENT_NAMES[code], "event_seq": event_seq, "boot_id": boot_id,
            "t_ms": t_ms, "payload": payload,
        },
    }


def calibration(name: str, result: int, pitch: int | None, roll: int | None) -> dict[str, Any]:
    return event_vector(
        name, f"CALIBRATION with result {CAL_RESULTS[result]}", 4, 30 + result, 7, 10000 + result,
        struct.pack("<Bhh", result, wire_angle(pitch), wire_angle(roll)),
        {"result": result, "result_name": CAL_RESULTS[result], "pitch_cdeg": pitch,
         "roll_cdeg": roll},
    )


def events_file() -> dict[str, Any]:
    v = [
        event_vector("strain_start", "flexion at the start of a strain episode", 1, 17, 7,
                     3600000, struct.pack("<h", 2650), {"flexion_cdeg": 2650}),
        event_vector("strain_start_extension", "an extension episode; event_seq and t_ms at"
                     " their last values before wrapping", 1, 0xFFFF, 7, 0xFFFFFFFF,
                     struct.pack("<h", -1800), {"flexion_cdeg": -1800}),
        event_vector("strain_end", "episode lasted 95 s, peak 31.2 degrees", 2, 18, 7, 3695000,
                     struct.pack("<Hh", 95, 3120), {"duration_s": 95, "peak_flexion_cdeg": 3120}),
        event_vector("headache_marker", "the wearer pressed the headache marker", 3, 19, 7,
                     4000000, b"", {}),
        calibration("calibration_ok", 0, 1530, -240),
        calibration("calibration_moving", 1, None, None),
        calibration("calibration_not_worn", 2, None, None),
        calibration("calibration_no_imu", 3, None, None),
        calibration("calibration_timeout", 4, -32767, 32767),
        event_vector("buffer_overflow", "samples 1000..1099 were lost", 5, 20, 7, 5000000,
                     struct.pack("<II", 1000, 1099), {"first_lost_seq": 1000,
                                                      "last_lost_seq": 1099}),
        event_vector("buffer_overflow_wrapping", "lost range wraps around 2^32", 5, 21, 7,
                     5000100, struct.pack("<II", 0xFFFFFFF0, 0x0F),
                     {"first_lost_seq": 0xFFFFFFF0, "last_lost_seq": 0x0F}),
        event_vector("low_battery", "3.42 V, 9 percent", 6, 22, 7, 6000000,
                     struct.pack("<HB", 3420, 9), {"millivolts": 3420, "percent": 9}),
    ]
    return {"description": "EVENT payloads (docs/protocol.md section 7)", "vectors": v}


# --- status ---------------------------------------------------------------------------------
def status_vector(
    name: str, description: str, *, boot_id: int, t_ms: int, next_seq: int, oldest_seq: int,
    next_record: int, oldest_record: int, battery_mv: int, battery_pct: int, state: int,
    period_ms: int, device_encodes: bool = True,
) -> dict[str, Any]:
    raw = struct.pack(
        "<BBIIIIIHBBH", 0x15, boot_id, t_ms, next_seq, oldest_seq, next_record, oldest_record,
        battery_mv, battery_pct, state, period_ms,
    )
    meaning = state & 0x3F
    return {
        "name": name, "description": description, "device_encodes": device_encodes,
        "hex": raw.hex(),
        "decoded": {
            "version": 1, "type": 5, "type_name": "STATUS", "boot_id": boot_id, "t_ms": t_ms,
            "next_seq": next_seq, "oldest_seq": oldest_seq, "next_record": next_record,
            "oldest_record": oldest_record, "battery_mv": battery_mv, "battery_pct": battery_pct,
            "state": meaning, "state_names": names(meaning, STATE_FLAGS), "period_ms": period_ms,
        },
    }


def status_file() -> dict[str, Any]:
    v = [
        status_vector("running", "calibrated, worn, streaming, time set, bonded",
                      boot_id=7, t_ms=3600000, next_seq=36000, oldest_seq=0, next_record=1440,
                      oldest_record=0, battery_mv=3987, battery_pct=87, state=0x3F, period_ms=100),
        status_vector("fresh_boot", "just booted: empty ring, nothing set", boot_id=8, t_ms=1200,
                      next_seq=0, oldest_seq=0, next_record=1500, oldest_record=60,
                      battery_mv=4150, battery_pct=100, state=0x00, period_ms=100),
        status_vector("wrapped_counters", "seq ring spans the 2^32 wrap", boot_id=255,
                      t_ms=0xFFFFFFF0, next_seq=5, oldest_seq=0xFFFFF000, next_record=0xFFFFFFFF,
                      oldest_record=0xFFFF0000, battery_mv=3300, battery_pct=0, state=0x12,
                      period_ms=65535),
        status_vector("reserved_state_bits_ignored", "state 0xC3: v1 hosts keep only 0x03",
                      boot_id=1, t_ms=1, next_seq=1, oldest_seq=0, next_record=0, oldest_record=0,
                      battery_mv=3700, battery_pct=50, state=0xC3, period_ms=100,
                      device_encodes=False),
    ]
    return {"description": "STATUS value (docs/protocol.md section 8)", "vectors": v}


# --- config ---------------------------------------------------------------------------------
def config_vector(name: str, description: str, entries: list[tuple[int, int]]) -> dict[str, Any]:
    raw = bytes([0x16]) + b"".join(struct.pack("<Bi", k, val) for k, val in entries)
    return {
        "name": name, "description": description, "device_encodes": True, "hex": raw.hex(),
        "decoded": {
            "version": 1, "type": 6, "type_name": "CONFIG",
            "entries": [{"key": k, "key_name": CONFIG_KEYS.get(k), "value": val}
                        for k, val in entries],
        },
    }


def config_file() -> dict[str, Any]:
    v = [
        config_vector("defaults", "all eleven v1 keys at their defaults", CONFIG_DEFAULTS),
        config_vector("custom", "a user's tuned settings with quiet hours 22:00-07:00",
                      [(1, 2000), (2, 30), (7, 1320), (8, 420), (6, 0)]),
        config_vector("range_limits", "every key at the edge of its range",
                      [(1, 100), (2, 3600), (3, 0), (4, 600), (5, 10), (6, 1), (7, 1439),
                       (8, -1), (9, 86400), (10, -9000), (11, 9000)]),
        config_vector("empty", "no entries (K = 0)", []),
        config_vector("unknown_key_forward_compatible",
                      "key 200 is unknown to v1: hosts keep it aside and do not reject",
                      [(1, 2500), (200, -7), (5, 100)]),
    ]
    return {"description": "CONFIG value (docs/protocol.md section 9)", "vectors": v}


# --- control point --------------------------------------------------------------------------
def request(name: str, description: str, raw: bytes, operands: dict[str, Any],
            min_mtu: int = 23) -> dict[str, Any]:
    return {
        "name": name, "description": description, "direction": "host_to_device",
        "min_mtu": min_mtu, "hex": raw.hex(),
        "decoded": {"opcode": raw[0], "opcode_name": OPCODES[raw[0]], "operands": operands},
    }


def set_config(name: str, description: str, entries: list[tuple[int, int]]) -> dict[str, Any]:
    raw = bytes([3]) + b"".join(struct.pack("<Bi", k, val) for k, val in entries)
    return request(
        name, description, raw,
        {"entries": [{"key": k, "key_name": CONFIG_KEYS[k], "value": val} for k, val in entries]},
        min_mtu=max(23, len(raw) + 3),
    )


def response(name: str, description: str, opcode: int, status: int, data: bytes,
             meaning: dict[str, Any] | None) -> dict[str, Any]:
    raw = struct.pack("<BBB", 0x17, opcode, status) + data
    return {
        "name": name, "description": description, "direction": "device_to_host",
        "hex": raw.hex(),
        "decoded": {
            "version": 1, "type": 7, "type_name": "CP_RESPONSE", "request_opcode": opcode,
            "request_opcode_name": OPCODES.get(opcode), "status": status,
            "status_name": STATUSES[status], "data": meaning,
        },
    }


def control_file() -> dict[str, Any]:
    requests = [
        request("calibrate", "capture the neutral posture", bytes([1]), {}),
        request("set_time", "2023-11-14T22:13:20.123Z", struct.pack("<BQ", 2, 1700000000123),
                {"utc_epoch_ms": 1700000000123}),
        request("set_time_largest", "the last representable millisecond (seconds fit u32)",
                struct.pack("<BQ", 2, 4294967295999), {"utc_epoch_ms": 4294967295999}),
        set_config("set_config_one", "strain threshold 25.0 degrees", [(1, 2500)]),
        set_config("set_config_three", "three entries: the most one write holds at MTU 23",
                   [(2, 45), (6, 0), (7, -1)]),
        set_config("set_config_negative", "negative values", [(10, -2000), (8, -1)]),
        set_config("set_config_all_defaults", "all eleven keys in one write (needs MTU >= 59)",
                   CONFIG_DEFAULTS),
        request("request_raw", "samples 1000..1099", struct.pack("<BII", 4, 1000, 1099),
                {"first_seq": 1000, "last_seq": 1099}),
        request("request_raw_wrapping", "a range across 2^32",
                struct.pack("<BII", 4, 0xFFFFFF00, 0xFF),
                {"first_seq": 0xFFFFFF00, "last_seq": 0xFF}),
        request("request_summary", "minutes from record 1440 on", struct.pack("<BI", 5, 1440),
                {"from_record": 1440}),
        request("abort", "stop the running backfill", bytes([6]), {}),
        request("get_status", "refresh the status value", bytes([7]), {}),
    ]
    responses = [
        response("calibrate_success", "capture started", 1, 1, b"", None),
        response("calibrate_refused", "see the CALIBRATION event for why", 1, 7, b"", None),
        response("set_time_success", "time applied at boot 7, t_ms 3600123", 2, 1,
                 struct.pack("<BI", 7, 3600123), {"boot_id": 7, "t_ms": 3600123}),
        response("set_config_success", "applied", 3, 1, b"", None),
        response("set_config_invalid", "a value out of range", 3, 3, b"", None),
        response("request_raw_success", "100 samples sent; ring starts at 500", 4, 1,
                 struct.pack("<II", 100, 500), {"samples_sent": 100, "oldest_available_seq": 500}),
        response("request_raw_busy", "another backfill is running", 4, 4, b"", None),
        response("request_raw_no_records", "nothing of the range is stored", 4, 6, b"", None),
        response("request_raw_not_authorised", "link not encrypted", 4, 5, b"", None),
        response("request_summary_success", "38 records sent; next is 1478", 5, 1,
                 struct.pack("<II", 38, 1478), {"records_sent": 38, "next_record": 1478}),
        response("abort_success", "stopped (or nothing ran)", 6, 1, b"", None),
        response("get_status_success", "status value refreshed; read it", 7, 1, b"", None),
        response("unknown_opcode_unsupported", "opcode 0x09 echoed", 9, 2, b"", None),
        response("empty_write_invalid", "an empty write is answered with opcode 0", 0, 3, b"",
                 None),
    ]
    return {
        "description": "control-point requests and responses (docs/protocol.md section 10)",
        "config_entries_per_write": {str(m): (payload_max(m) - 1) // 5 for m in MTUS},
        "vectors": requests + responses,
    }


# --- malformed ------------------------------------------------------------------------------
def bad(name: str, description: str, decoder: str, raw: bytes, reason: str) -> dict[str, Any]:
    return {"name": name, "description": description, "decoder": decoder, "hex": raw.hex(),
            "reason": reason}


def bad_request(name: str, description: str, raw: bytes, status: int) -> dict[str, Any]:
    opcode = raw[0] if raw else 0
    return {
        "name": name, "description": description, "decoder": "cp_request", "hex": raw.hex(),
        "device_status": status, "device_status_name": STATUSES[status],
        "response_opcode": opcode,
        "response_hex": struct.pack("<BBB", 0x17, opcode, status).hex(),
    }


def malformed_file() -> dict[str, Any]:
    one = struct.pack("<BBIIBH", 0x11, 1, 1, 2, 3, 100) + struct.pack("<hhhB", 1, 2, 3, 0x11)
    sample = struct.pack("<hhhB", 1, 2, 3, 0x11)
    rec = struct.pack("<IBBhhBBB", 60, 1, 60, 100, 200, 10, 0, 0x01)
    event_hdr = struct.pack("<BBHBI", 0x14, 1, 1, 1, 1000)
    status_ok = struct.pack("<BBIIIIIHBBH", 0x15, 1, 2, 3, 4, 5, 6, 3700, 50, 0x03, 100)

    def samples_hdr(count: int, period: int = 100, vt: int = 0x11) -> bytes:
        return struct.pack("<BBIIBH", vt, count, 1, 2, 3, period)

    inv = 3
    unsup = 2
    v = [
        bad("samples_empty", "zero bytes", "samples", b"", "empty"),
        bad("samples_truncated_header", "5 bytes; the header needs 13", "samples",
            one[:5], "truncated"),
        bad("samples_header_only", "count 1 but no sample bytes", "samples", one[:13],
            "inconsistent_count"),
        bad("samples_missing_sample", "count 2 but one sample", "samples",
            samples_hdr(2) + sample, "inconsistent_count"),
        bad("samples_extra_sample", "count 1 but two samples", "samples",
            samples_hdr(1) + sample + sample, "inconsistent_count"),
        bad("samples_trailing_byte", "one stray byte after the sample", "samples", one + b"\x00",
            "inconsistent_count"),
        bad("samples_cut_mid_sample", "the last sample cut short", "samples", one[:-2],
            "inconsistent_count"),
        bad("samples_count_zero", "count 0", "samples", samples_hdr(0), "count_zero"),
        bad("samples_count_72", "count 72, above the maximum 71", "samples",
            samples_hdr(72) + sample, "oversized"),
        bad("samples_too_long", "515 bytes, above the 512-byte limit", "samples",
            samples_hdr(71) + sample * 71 + b"\x00" * 5, "oversized"),
        bad("samples_period_zero", "period_ms 0", "samples", samples_hdr(1, period=0) + sample,
            "period_zero"),
        bad("unknown_type_8", "ver_type 0x18: type 8 is unassigned", "posture",
            bytes([0x18]) + one[1:], "unknown_type"),
        bad("unknown_type_0", "ver_type 0x10: type 0 is unassigned", "posture",
            bytes([0x10]) + one[1:], "unknown_type"),
        bad("unknown_type_15", "ver_type 0x1f", "samples", bytes([0x1F]) + one[1:],
            "unknown_type"),
        bad("version_2_samples", "ver_type 0x21: a protocol v2 packet", "samples",
            bytes([0x21]) + one[1:], "unsupported_version"),
        bad("version_0", "ver_type 0x01: version 0", "posture", bytes([0x01]) + one[1:],
            "unsupported_version"),
        bad("version_15_short", "ver_type 0xf1 alone", "posture", bytes([0xF1]),
            "unsupported_version"),
        bad("event_on_posture", "an EVENT on the posture characteristic", "posture",
            event_hdr + struct.pack("<h", 2500), "wrong_type"),
        bad("summary_to_sample_decoder", "a SUMMARY given to the sample decoder", "samples",
            struct.pack("<BBI", 0x13, 1, 0) + rec, "wrong_type"),
        bad("summary_truncated_header", "4 bytes; the header needs 6", "summary",
            bytes([0x13, 1, 0, 0]), "truncated"),
        bad("summary_count_zero", "count 0", "summary", struct.pack("<BBI", 0x13, 0, 0),
            "count_zero"),
        bad("summary_count_39", "count 39, above the maximum 38", "summary",
            struct.pack("<BBI", 0x13, 39, 0) + rec, "oversized"),
        bad("summary_count_39_full", "39 records = 513 bytes, above the 512-byte limit",
            "summary", struct.pack("<BBI", 0x13, 39, 0) + rec * 39, "oversized"),
        bad("summary_inconsistent", "count 2, one record", "summary",
            struct.pack("<BBI", 0x13, 2, 0) + rec, "inconsistent_count"),
        bad("summary_wear_61", "wear_s 61 > 60", "summary", struct.pack("<BBI", 0x13, 1, 0)
            + struct.pack("<IBBhhBBB", 60, 1, 61, 100, 200, 10, 0, 1), "invalid_value"),
        bad("summary_strain_above_wear", "strain_s 40 > wear_s 30", "summary",
            struct.pack("<BBI", 0x13, 2, 0) + rec
            + struct.pack("<IBBhhBBB", 120, 1, 30, 100, 200, 40, 0, 1), "invalid_value"),
        bad("event_empty", "zero bytes", "event", b"", "empty"),
        bad("event_truncated_header", "8 bytes; the header needs 9", "event", event_hdr[:8],
            "truncated"),
        bad("event_code_0", "code 0 is not defined", "event",
            struct.pack("<BBHBI", 0x14, 0, 1, 1, 1), "unknown_event_code"),
        bad("event_code_7", "code 7 is not defined in v1", "event",
            struct.pack("<BBHBI", 0x14, 7, 1, 1, 1) + b"\x00\x00", "unknown_event_code"),
        bad("event_code_255", "code 255", "event", struct.pack("<BBHBI", 0x14, 255, 1, 1, 1),
            "unknown_event_code"),
        bad("event_strain_start_short", "STRAIN_START with 1 payload byte", "event",
            event_hdr + b"\x01", "bad_event_length"),
        bad("event_headache_with_payload", "HEADACHE_MARKER takes no payload", "event",
            struct.pack("<BBHBI", 0x14, 3, 1, 1, 1) + b"\x00", "bad_event_length"),
        bad("event_overflow_short", "BUFFER_OVERFLOW with 7 payload bytes", "event",
            struct.pack("<BBHBI", 0x14, 5, 1, 1, 1) + b"\x00" * 7, "bad_event_length"),
        bad("event_low_battery_long", "LOW_BATTERY with 4 payload bytes", "event",
            struct.pack("<BBHBI", 0x14, 6, 1, 1, 1) + b"\x00" * 4, "bad_event_length"),
        bad("event_calibration_result_5", "calibration result 5 is not defined", "event",
            struct.pack("<BBHBI", 0x14, 4, 1, 1, 1) + struct.pack("<Bhh", 5, 0, 0),
            "invalid_value"),
        bad("event_low_battery_101", "battery percent 101", "event",
            struct.pack("<BBHBI", 0x14, 6, 1, 1, 1) + struct.pack("<HB", 3000, 101),
            "invalid_value"),
        bad("event_version_2", "ver_type 0x24", "event",
            bytes([0x24]) + event_hdr[1:] + b"\x00\x00", "unsupported_version"),
        bad("status_on_events", "a STATUS payload on the events characteristic", "event",
            status_ok, "wrong_type"),
        bad("status_empty", "zero bytes", "status", b"", "empty"),
        bad("status_truncated", "27 bytes", "status", status_ok[:27], "truncated"),
        bad("status_long", "29 bytes", "status", status_ok + b"\x00", "bad_length"),
        bad("status_period_zero", "period_ms 0", "status", status_ok[:26] + b"\x00\x00",
            "period_zero"),
        bad("status_battery_101", "battery percent 101", "status",
            status_ok[:24] + bytes([101]) + status_ok[25:], "invalid_value"),
        bad("status_version_2", "a v2 device: the connect check refuses it", "status",
            bytes([0x25]) + status_ok[1:], "unsupported_version"),
        bad("config_partial_entry", "1 + 4 bytes", "config", bytes([0x16, 1, 0, 0, 0]),
            "bad_length"),
        bad("config_repeated_key", "key 1 twice", "config",
            bytes([0x16]) + struct.pack("<Bi", 1, 2500) * 2, "invalid_value"),
        bad("config_out_of_range", "HAPTICS_ENABLED 2", "config",
            bytes([0x16]) + struct.pack("<Bi", 6, 2), "invalid_value"),
        bad("config_version_3", "ver_type 0x36", "config", bytes([0x36]), "unsupported_version"),
        bad("cp_response_truncated", "2 bytes", "cp_response", bytes([0x17, 1]), "truncated"),
        bad("cp_response_status_0", "status 0 is not defined", "cp_response",
            bytes([0x17, 1, 0]), "invalid_value"),
        bad("cp_response_status_8", "status 8 is not defined", "cp_response",
            bytes([0x17, 1, 8]), "invalid_value"),
        bad("cp_response_success_unknown_opcode", "SUCCESS for opcode 9", "cp_response",
            bytes([0x17, 9, 1]), "invalid_value"),
        bad("cp_response_set_time_short", "SET_TIME SUCCESS with 4 data bytes", "cp_response",
            bytes([0x17, 2, 1]) + struct.pack("<I", 5), "bad_length"),
        bad("cp_response_raw_long", "REQUEST_RAW SUCCESS with 9 data bytes", "cp_response",
            bytes([0x17, 4, 1]) + b"\x00" * 9, "bad_length"),
        bad("cp_response_calibrate_data", "CALIBRATE SUCCESS carries no data", "cp_response",
            bytes([0x17, 1, 1, 0]), "bad_length"),
        bad("cp_response_busy_with_data", "non-success responses carry no data", "cp_response",
            bytes([0x17, 4, 4]) + b"\x00" * 8, "bad_length"),
        bad("cp_response_on_events", "a CP_RESPONSE on the events characteristic", "event",
            bytes([0x17, 1, 1]), "wrong_type"),
        bad_request("request_empty", "an empty write", b"", inv),
        bad_request("request_opcode_0", "opcode 0 is not defined", bytes([0]), unsup),
        bad_request("request_opcode_8", "opcode 8 is not defined in v1", bytes([8]), unsup),
        bad_request("request_opcode_255_with_operands", "unknown opcode; operands ignored",
                    bytes([0xFF, 1, 2, 3]), unsup),
        bad_request("request_calibrate_operand", "CALIBRATE takes no operands", bytes([1, 0]),
                    inv),
        bad_request("request_set_time_short", "8 bytes", struct.pack("<BQ", 2, 1)[:8], inv),
        bad_request("request_set_time_long", "10 bytes", struct.pack("<BQ", 2, 1) + b"\x00",
                    inv),
        bad_request("request_set_time_too_large", "4294967296000 ms: seconds overflow u32",
                    struct.pack("<BQ", 2, 4294967296000), inv),
        bad_request("request_set_config_no_entries", "opcode only", bytes([3]), inv),
        bad_request("request_set_config_partial", "entry cut short", bytes([3, 1, 0xC4, 0x09]),
                    inv),
        bad_request("request_set_config_trailing", "one stray byte",
                    bytes([3]) + struct.pack("<Bi", 1, 2500) + b"\x00", inv),
        bad_request("request_set_config_key_0", "key 0 is not defined",
                    bytes([3]) + struct.pack("<Bi", 0, 1), inv),
        bad_request("request_set_config_key_12", "key 12 is not defined in v1",
                    bytes([3]) + struct.pack("<Bi", 12, 1), inv),
        bad_request("request_set_config_haptics_2", "HAPTICS_ENABLED 2 out of 0..1",
                    bytes([3]) + struct.pack("<Bi", 6, 2), inv),
        bad_request("request_set_config_period_0", "STREAM_PERIOD_MS 0 out of 10..60000",
                    bytes([3]) + struct.pack("<Bi", 5, 0), inv),
        bad_request("request_set_config_threshold_9001", "STRAIN_THRESHOLD_CDEG 9001",
                    bytes([3]) + struct.pack("<Bi", 1, 9001), inv),
        bad_request("request_set_config_quiet_minus_2", "QUIET_START_MIN -2",
                    bytes([3]) + struct.pack("<Bi", 7, -2), inv),
        bad_request("request_set_config_bad_second_entry", "all or nothing: entry 2 is bad",
                    bytes([3]) + struct.pack("<Bi", 1, 2500) + struct.pack("<Bi", 6, 7), inv),
        bad_request("request_set_config_repeated_key", "key 2 twice",
                    bytes([3]) + struct.pack("<Bi", 2, 30) + struct.pack("<Bi", 2, 40), inv),
        bad_request("request_raw_short", "8 bytes", struct.pack("<BII", 4, 1, 2)[:8], inv),
        bad_request("request_raw_long", "10 bytes", struct.pack("<BII", 4, 1, 2) + b"\x00", inv),
        bad_request("request_summary_short", "4 bytes", struct.pack("<BI", 5, 1)[:4], inv),
        bad_request("request_summary_long", "6 bytes", struct.pack("<BI", 5, 1) + b"\x00", inv),
        bad_request("request_abort_operand", "ABORT takes no operands", bytes([6, 6]), inv),
        bad_request("request_get_status_operand", "GET_STATUS takes no operands",
                    bytes([7, 0, 0]), inv),
    ]
    return {
        "description": "malformed payloads and the reason each is rejected (docs/protocol.md"
                       " section 12), and bad control-point requests with the device's answer"
                       " (section 10.1)",
        "vectors": v,
    }


FILES = {
    "samples.json": samples_file,
    "summary.json": summary_file,
    "events.json": events_file,
    "status.json": status_file,
    "config.json": config_file,
    "control.json": control_file,
    "malformed.json": malformed_file,
}


def render(content: dict[str, Any]) -> str:
    return json.dumps(content, indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="directory to write into")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for filename, build in FILES.items():
        (args.out / filename).write_text(render(build()), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
