"""The GATT table a virtual device registers over the bridge, validated and typed.

The table arrives in the device's `register` message (see docs/vble.md) and is the only copy of
the profile: the D-Bus objects bleak discovers are built from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from neckline.vble.uuids import normalize_uuid

# MicroPython `bluetooth` characteristic flag bits (FLAG_* in its documentation).
FLAG_BROADCAST = 0x0001
FLAG_READ = 0x0002
FLAG_WRITE_NO_RESPONSE = 0x0004
FLAG_WRITE = 0x0008
FLAG_NOTIFY = 0x0010
FLAG_INDICATE = 0x0020
FLAG_AUTHENTICATED_SIGNED_WRITE = 0x0040
FLAG_READ_ENCRYPTED = 0x0200
FLAG_READ_AUTHENTICATED = 0x0400
FLAG_READ_AUTHORIZED = 0x0800
FLAG_WRITE_ENCRYPTED = 0x1000
FLAG_WRITE_AUTHENTICATED = 0x2000
FLAG_WRITE_AUTHORIZED = 0x4000

CCCD_UUID = normalize_uuid("2902")

# What a BlueZ *client* shows in GattCharacteristic1.Flags: only the characteristic
# declaration's properties byte travels over ATT, so permissions such as "encrypted read" are
# invisible to a central (BlueZ src/gatt-client.c, characteristic_get_flags).
_PROPERTY_NAMES = (
    (FLAG_BROADCAST, "broadcast"),
    (FLAG_READ, "read"),
    (FLAG_WRITE_NO_RESPONSE, "write-without-response"),
    (FLAG_WRITE, "write"),
    (FLAG_NOTIFY, "notify"),
    (FLAG_INDICATE, "indicate"),
    (FLAG_AUTHENTICATED_SIGNED_WRITE, "authenticated-signed-writes"),
)


class TableError(ValueError):
    """A `register` message whose table is malformed."""


@dataclass(frozen=True)
class GattDescriptor:
    uuid: str
    flags: int
    handle: int


@dataclass(frozen=True)
class GattCharacteristic:
    uuid: str
    flags: int
    decl_handle: int
    value_handle: int
    cccd_handle: int | None
    descriptors: tuple[GattDescriptor, ...] = ()

    @property
    def bluez_flags(self) -> list[str]:
        return [name for bit, name in _PROPERTY_NAMES if self.flags & bit]

    @property
    def can_notify(self) -> bool:
        return bool(self.flags & FLAG_NOTIFY)

    @property
    def can_indicate(self) -> bool:
        return bool(self.flags & FLAG_INDICATE)


@dataclass(frozen=True)
class GattService:
    uuid: str
    handle: int
    characteristics: tuple[GattCharacteristic, ...] = ()


@dataclass(frozen=True)
class GattTable:
    services: tuple[GattService, ...] = ()
    _by_value_handle: dict[int, GattCharacteristic] = field(
        default_factory=dict, compare=False, repr=False
    )

    def characteristic(self, value_handle: int) -> GattCharacteristic | None:
        return self._by_value_handle.get(value_handle)

    def __len__(self) -> int:
        return len(self.services)


def _int(obj: dict[str, Any], key: str, where: str, *, nullable: bool = False) -> int | None:
    value = obj.get(key)
    if value is None and nullable:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 0xFFFF:
        raise TableError(f"{where}: {key!r} must be a handle 1..65535, got {value!r}")
    return value


def _uuid(obj: dict[str, Any], where: str) -> str:
    value = obj.get("uuid")
    if not isinstance(value, str):
        raise TableError(f"{where}: 'uuid' must be a string, got {value!r}")
    try:
        return normalize_uuid(value)
    except ValueError as exc:
        raise TableError(f"{where}: {exc}") from None


def _flags(obj: dict[str, Any], where: str) -> int:
    value = obj.get("flags", 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TableError(f"{where}: 'flags' must be a non-negative int, got {value!r}")
    return value


def parse_table(services: Any) -> GattTable:
    """Validate the `services` list of a `register` message; raises TableError with the reason."""
    if not isinstance(services, list):
        raise TableError(f"'services' must be a list, got {type(services).__name__}")
    out: list[GattService] = []
    seen: set[int] = set()
    by_value: dict[int, GattCharacteristic] = {}

    def claim(handle: int | None, where: str) -> None:
        if handle is None:
            return
        if handle in seen:
            raise TableError(f"{where}: handle {handle} is used twice")
        seen.add(handle)

    for si, s in enumerate(services):
        where = f"service[{si}]"
        if not isinstance(s, dict):
            raise TableError(f"{where} must be an object")
        s_handle = _int(s, "handle", where)
        claim(s_handle, where)
        chars_in = s.get("chars", [])
        if not isinstance(chars_in, list):
            raise TableError(f"{where}: 'chars' must be a list")
        chars: list[GattCharacteristic] = []
        for ci, c in enumerate(chars_in):
            cw = f"{where}.chars[{ci}]"
            if not isinstance(c, dict):
                raise TableError(f"{cw} must be an object")
            decl = _int(c, "decl_handle", cw)
            value = _int(c, "value_handle", cw)
            cccd = _int(c, "cccd_handle", cw, nullable=True)
            for h in (decl, value, cccd):
                claim(h, cw)
            descs_in = c.get("descs", [])
            if not isinstance(descs_in, list):
                raise TableError(f"{cw}: 'descs' must be a list")
            descs: list[GattDescriptor] = []
            if cccd is not None:
                descs.append(GattDescriptor(CCCD_UUID, 0, cccd))
            for di, d in enumerate(descs_in):
                dw = f"{cw}.descs[{di}]"
                if not isinstance(d, dict):
                    raise TableError(f"{dw} must be an object")
                d_handle = _int(d, "handle", dw)
                claim(d_handle, dw)
                assert d_handle is not None
                descs.append(GattDescriptor(_uuid(d, dw), _flags(d, dw), d_handle))
            assert decl is not None and value is not None
            char = GattCharacteristic(
                uuid=_uuid(c, cw), flags=_flags(c, cw), decl_handle=decl,
                value_handle=value, cccd_handle=cccd, descriptors=tuple(descs),
            )
            chars.append(char)
            by_value[value] = char
        assert s_handle is not None
        out.append(GattService(_uuid(s, where), s_handle, tuple(chars)))
    return GattTable(tuple(out), by_value)
