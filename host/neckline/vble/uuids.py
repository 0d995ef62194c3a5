"""Bluetooth UUID forms: everything BlueZ exports is the lowercase 128-bit string."""

from __future__ import annotations

import re

BASE_SUFFIX = "-0000-1000-8000-00805f9b34fb"
_FULL = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_SHORT = re.compile(r"^(0x)?([0-9a-f]{4}|[0-9a-f]{8})$")


def normalize_uuid(text: str) -> str:
    """`"180f"`, `"0x180F"`, `"0000180f"` or a full UUID -> the canonical 128-bit lowercase form.

    Raises ValueError for anything else.
    """
    t = text.strip().lower()
    if _FULL.match(t):
        return t
    m = _SHORT.match(t)
    if m:
        return f"{int(m.group(2), 16):08x}{BASE_SUFFIX}"
    raise ValueError(f"not a Bluetooth UUID: {text!r}")


def uuid_from_le_bytes(raw: bytes) -> str:
    """A 2-, 4- or 16-byte little-endian UUID as it appears in AD structures and ATT PDUs."""
    if len(raw) in (2, 4):
        return f"{int.from_bytes(raw, 'little'):08x}{BASE_SUFFIX}"
    if len(raw) == 16:
        h = raw[::-1].hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    raise ValueError(f"a UUID is 2, 4 or 16 bytes, not {len(raw)}")
