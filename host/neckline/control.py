"""Control-point requests, host side: encoders returning the bytes to write (docs/protocol.md §10).

Every encoder checks its arguments against the same rules the device applies and raises ValueError
for a request the device would answer with INVALID_PARAMETER, so a bad request never leaves the
host. Responses are decoded by neckline.decode.decode_cp_response.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping

from neckline.protocol import (
    MAX_UTC_EPOCH_MS,
    ConfigKey,
    Opcode,
    config_entries_per_write,
    config_value_ok,
)

ConfigEntries = Mapping[ConfigKey, int] | Mapping[int, int] | Iterable[tuple[int, int]]

_U32_MAX = 0xFFFFFFFF


def _u32(name: str, value: int) -> int:
    if not 0 <= value <= _U32_MAX:
        raise ValueError(f"{name} must be 0..{_U32_MAX}, got {value}")
    return value


def encode_calibrate() -> bytes:
    return bytes([Opcode.CALIBRATE])


def encode_set_time(utc_epoch_ms: int) -> bytes:
    if not 0 <= utc_epoch_ms < MAX_UTC_EPOCH_MS:
        raise ValueError(f"utc_epoch_ms must be 0..{MAX_UTC_EPOCH_MS - 1}, got {utc_epoch_ms}")
    return struct.pack("<BQ", Opcode.SET_TIME, utc_epoch_ms)


def _checked_entries(entries: ConfigEntries) -> list[tuple[int, int]]:
    pairs = list(entries.items()) if isinstance(entries, Mapping) else list(entries)
    if not pairs:
        raise ValueError("SET_CONFIG needs at least one entry")
    seen: set[int] = set()
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"config key {key} given twice")
        seen.add(key)
        if not config_value_ok(key, value):
            raise ValueError(f"config key {key} = {value} is not a valid v1 setting")
    return [(int(key), value) for key, value in pairs]


def encode_set_config(entries: ConfigEntries) -> bytes:
    """One SET_CONFIG write. At the default MTU at most 3 entries fit: see split_set_config."""
    pairs = _checked_entries(entries)
    return bytes([Opcode.SET_CONFIG]) + b"".join(struct.pack("<Bi", k, v) for k, v in pairs)


def split_set_config(entries: ConfigEntries, mtu: int) -> list[bytes]:
    """SET_CONFIG writes that each fit one ATT Write Request at this MTU, in entry order."""
    pairs = _checked_entries(entries)
    per_write = config_entries_per_write(mtu)
    return [
        encode_set_config(pairs[start : start + per_write])
        for start in range(0, len(pairs), per_write)
    ]


def encode_request_raw(first_seq: int, last_seq: int) -> bytes:
    """Ask for stored samples first_seq..last_seq inclusive (modular: the range may wrap)."""
    return struct.pack(
        "<BII", Opcode.REQUEST_RAW, _u32("first_seq", first_seq), _u32("last_seq", last_seq)
    )


def encode_request_summary(from_record: int) -> bytes:
    return struct.pack("<BI", Opcode.REQUEST_SUMMARY, _u32("from_record", from_record))


def encode_abort() -> bytes:
    return bytes([Opcode.ABORT])


def encode_get_status() -> bytes:
    return bytes([Opcode.GET_STATUS])
