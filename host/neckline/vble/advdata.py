"""Parse BLE advertising data (AD structures) into what BlueZ shows as Device1 properties.

An advertising or scan-response payload is a run of `[length][type][data...]` structures
(Core Specification Supplement, Part A). BlueZ merges the advertising packet and the scan
response of an active scan into one set of properties; `parse_advertisement` does the same.
Malformed input never raises: the parse stops at the broken structure and says why in `errors`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from neckline.vble.uuids import uuid_from_le_bytes

AD_FLAGS = 0x01
AD_UUID16_INCOMPLETE = 0x02
AD_UUID16_COMPLETE = 0x03
AD_UUID32_INCOMPLETE = 0x04
AD_UUID32_COMPLETE = 0x05
AD_UUID128_INCOMPLETE = 0x06
AD_UUID128_COMPLETE = 0x07
AD_NAME_SHORT = 0x08
AD_NAME_COMPLETE = 0x09
AD_TX_POWER = 0x0A
AD_SERVICE_DATA16 = 0x16
AD_APPEARANCE = 0x19
AD_SERVICE_DATA32 = 0x20
AD_SERVICE_DATA128 = 0x21
AD_MANUFACTURER = 0xFF

_UUID_LIST_WIDTH = {
    AD_UUID16_INCOMPLETE: 2,
    AD_UUID16_COMPLETE: 2,
    AD_UUID32_INCOMPLETE: 4,
    AD_UUID32_COMPLETE: 4,
    AD_UUID128_INCOMPLETE: 16,
    AD_UUID128_COMPLETE: 16,
}
_SERVICE_DATA_WIDTH = {AD_SERVICE_DATA16: 2, AD_SERVICE_DATA32: 4, AD_SERVICE_DATA128: 16}


@dataclass
class AdvData:
    """The parsed content of one advertisement (plus scan response)."""

    flags: int | None = None
    name: str | None = None
    name_complete: bool = False
    uuids: list[str] = field(default_factory=list)
    appearance: int | None = None
    tx_power: int | None = None
    manufacturer_data: dict[int, bytes] = field(default_factory=dict)
    service_data: dict[str, bytes] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def split_structures(payload: bytes) -> tuple[list[tuple[int, bytes]], list[str]]:
    """The (type, data) pairs of `payload`, and the problems that stopped the parse early."""
    out: list[tuple[int, bytes]] = []
    errors: list[str] = []
    i = 0
    while i < len(payload):
        length = payload[i]
        if length == 0:
            # A zero length ends the significant part; the rest is padding.
            break
        if i + 1 + length > len(payload):
            errors.append(f"AD structure at offset {i} claims {length} bytes, "
                          f"only {len(payload) - i - 1} left")
            break
        out.append((payload[i + 1], bytes(payload[i + 2 : i + 1 + length])))
        i += 1 + length
    return out, errors


def parse_advertisement(adv: bytes, scan_response: bytes = b"") -> AdvData:
    """Merge advertising data and scan response into one `AdvData`."""
    result = AdvData()
    for label, payload in (("adv", adv), ("resp", scan_response)):
        structures, errors = split_structures(payload)
        result.errors.extend(f"{label}: {e}" for e in errors)
        for ad_type, data in structures:
            problem = _apply(result, ad_type, data)
            if problem:
                result.errors.append(f"{label}: AD type 0x{ad_type:02x}: {problem}")
    return result


def _apply(result: AdvData, ad_type: int, data: bytes) -> str | None:
    if ad_type == AD_FLAGS:
        if not data:
            return "empty flags"
        result.flags = data[0]
    elif ad_type in _UUID_LIST_WIDTH:
        width = _UUID_LIST_WIDTH[ad_type]
        if len(data) % width:
            return f"length {len(data)} is not a multiple of {width}"
        for k in range(0, len(data), width):
            uuid = uuid_from_le_bytes(data[k : k + width])
            if uuid not in result.uuids:
                result.uuids.append(uuid)
    elif ad_type in (AD_NAME_SHORT, AD_NAME_COMPLETE):
        name = data.decode("utf-8", errors="replace")
        # A complete name wins over a shortened one, whichever packet carries it.
        if ad_type == AD_NAME_COMPLETE or not result.name_complete:
            result.name = name
            result.name_complete = ad_type == AD_NAME_COMPLETE
    elif ad_type == AD_TX_POWER:
        if len(data) != 1:
            return f"TX power needs 1 byte, got {len(data)}"
        result.tx_power = struct.unpack("b", data)[0]
    elif ad_type == AD_APPEARANCE:
        if len(data) != 2:
            return f"appearance needs 2 bytes, got {len(data)}"
        result.appearance = struct.unpack("<H", data)[0]
    elif ad_type == AD_MANUFACTURER:
        if len(data) < 2:
            return "manufacturer data shorter than its company id"
        result.manufacturer_data[struct.unpack("<H", data[:2])[0]] = data[2:]
    elif ad_type in _SERVICE_DATA_WIDTH:
        width = _SERVICE_DATA_WIDTH[ad_type]
        if len(data) < width:
            return f"service data shorter than its {width}-byte UUID"
        result.service_data[uuid_from_le_bytes(data[:width])] = data[width:]
    # Other AD types are carried by real advertisers too; BlueZ ignores most of them as well.
    return None
