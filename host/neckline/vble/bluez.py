"""The virtual BlueZ: org.bluez.Adapter1, the device registry, and the simulated radio.

It owns `org.bluez` on the private bus and is the BridgeListener of the bridge server, so
everything a virtual device says (hello, GATT table, advertising, notifications, disconnects)
lands here and turns into the D-Bus objects and signals bluetoothd would produce.

The radio is a periodic task: while at least one client runs a discovery session (and any
injected discovery delay has passed), each advertising, reachable device is "received" about
once per advertising interval (at most 10 times a second), which creates its Device1 or
refreshes its RSSI and advertising properties.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import Counter
from typing import Any

from dbus_fast import Message, Variant
from dbus_fast.aio import MessageBus

from neckline.vble import errors
from neckline.vble.bonds import BondStore
from neckline.vble.bridge import DeviceSession
from neckline.vble.busconn import send_stalls
from neckline.vble.device import REASON_SUPERVISION_TIMEOUT, VDevice
from neckline.vble.faults import (
    ATT_OPS,
    CONNECT_ERRORS,
    IN_PROGRESS,
    AdapterFaults,
    AttFault,
    DeviceFaults,
)
from neckline.vble.objtree import ObjectTree
from neckline.vble.uuids import normalize_uuid

log = logging.getLogger(__name__)

ADAPTER_IFACE = "org.bluez.Adapter1"
ADAPTER_PATH = "/org/bluez/hci0"
# Locally administered unicast address ("NK" in the middle bytes).
ADAPTER_ADDRESS = "02:4E:4B:00:00:01"

# bluetoothd waits 30 s for an ATT response; tests want a dead device noticed sooner.
DEFAULT_ATT_TIMEOUT = 10.0
RADIO_TICK = 0.05
MIN_REPORT_PERIOD = 0.1

_FILTER_TYPES = {"UUIDs": "as", "RSSI": "n", "Pathloss": "n", "Transport": "s",
                 "DuplicateData": "b", "Discoverable": "b", "Pattern": "s"}


class VirtualBlueZ:
    """See the module docstring. Create with `await VirtualBlueZ.create(bus, bonds)`."""

    def __init__(self, bus: MessageBus, bonds: BondStore) -> None:
        self.bus = bus
        self.tree = ObjectTree(bus)
        self.bonds = bonds
        self.adapter_path = ADAPTER_PATH
        self.address = ADAPTER_ADDRESS
        self.adapter_faults = AdapterFaults()
        self.att_timeout = DEFAULT_ATT_TIMEOUT
        self.devices: dict[str, VDevice] = {}
        self.sessions: dict[str, DeviceSession] = {}
        self.stats: Counter[str] = Counter()
        self._faults: dict[str, DeviceFaults] = {}
        self._filters: dict[str, dict[str, Any]] = {}
        self._discovering: set[str] = set()
        self._discovery_started = 0.0
        self._conn_handles = itertools.count(1)
        self._removals: dict[str, asyncio.TimerHandle] = {}
        self._radio: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Future[None]] = set()

    @classmethod
    async def create(cls, bus: MessageBus, bonds: BondStore) -> VirtualBlueZ:
        self = cls(bus, bonds)
        self._export_adapter()
        for bond in bonds.all():
            # Paired devices are on D-Bus from the start, as bluetoothd loads them from disk.
            device = self._device(bond.address, bond.address_type)
            device.temporary = False
            device.export(rssi=None)
        await bus.call(Message(
            destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus", member="AddMatch", signature="s",
            body=["type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged'"]))
        bus.add_message_handler(self._on_signal)
        self._radio = asyncio.ensure_future(self._radio_loop())
        return self

    async def close(self) -> None:
        if self._radio is not None:
            self._radio.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._radio
        for handle in self._removals.values():
            handle.cancel()

    # -- adapter ---------------------------------------------------------------------------

    def _export_adapter(self) -> None:
        props = {
            "Address": Variant("s", self.address),
            "AddressType": Variant("s", "public"),
            "Name": Variant("s", "vble"),
            "Alias": Variant("s", "vble"),
            "Class": Variant("u", 0),
            "Powered": Variant("b", True),
            "PowerState": Variant("s", "on"),
            "Discoverable": Variant("b", False),
            "DiscoverableTimeout": Variant("u", 180),
            "Pairable": Variant("b", True),
            "PairableTimeout": Variant("u", 0),
            "Discovering": Variant("b", False),
            "UUIDs": Variant("as", []),
            "Modalias": Variant("s", "usb:v1D6Bp0246d0552"),
            "Roles": Variant("as", ["central", "peripheral"]),
            "ExperimentalFeatures": Variant("as", []),
        }
        self.tree.export(self.adapter_path, {ADAPTER_IFACE: props},
                         {ADAPTER_IFACE: self._adapter_method})

    def _adapter_method(self, msg: Message) -> Message:
        member = msg.member
        sender = msg.sender or ""
        if member == "SetDiscoveryFilter":
            self._filters[sender] = self._parse_filter(msg.body[0] if msg.body else {})
            return Message.new_method_return(msg)
        if member == "GetDiscoveryFilters":
            return Message.new_method_return(msg, "as", [list(_FILTER_TYPES)])
        if member == "StartDiscovery":
            if sender in self._discovering:
                raise errors.busy()
            self._start_discovery(sender)
            return Message.new_method_return(msg)
        if member == "StopDiscovery":
            if sender not in self._discovering:
                raise errors.failed("No discovery started")
            self._stop_discovery(sender)
            return Message.new_method_return(msg)
        if member == "RemoveDevice":
            self.remove_device_path(msg.body[0] if msg.body else "")
            return Message.new_method_return(msg)
        raise errors.BluezError("org.freedesktop.DBus.Error.UnknownMethod",
                                f"no method {member} on {ADAPTER_IFACE}")

    @staticmethod
    def _parse_filter(raw: dict[str, Variant]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in raw.items():
            expected = _FILTER_TYPES.get(key)
            if expected is None or not isinstance(value, Variant) or value.signature != expected:
                raise errors.invalid_args()
            out[key] = value.value
        if "UUIDs" in out:
            try:
                out["UUIDs"] = [normalize_uuid(u) for u in out["UUIDs"]]
            except ValueError:
                raise errors.invalid_args() from None
        if out.get("Transport", "le") not in ("le", "auto", "bredr"):
            raise errors.invalid_args()
        return out

    @property
    def discovering(self) -> bool:
        return bool(self._discovering)

    def _start_discovery(self, sender: str) -> None:
        first = not self._discovering
        self._discovering.add(sender)
        if first:
            self._discovery_started = time.monotonic()
            for handle in self._removals.values():
                handle.cancel()
            self._removals.clear()
            for device in self.devices.values():
                device.next_report = 0.0
            self.tree.update(self.adapter_path, ADAPTER_IFACE, {"Discovering": Variant("b", True)})

    def _stop_discovery(self, sender: str) -> None:
        self._discovering.discard(sender)
        if self._discovering:
            return
        self.tree.update(self.adapter_path, ADAPTER_IFACE, {"Discovering": Variant("b", False)})
        loop = asyncio.get_running_loop()
        for device in self.devices.values():
            device.discovery_stopped()
            if device.temporary and device.link is None and device.exported:
                self._removals[device.address] = loop.call_later(
                    self.adapter_faults.temporary_timeout, self._expire, device.address)

    def _expire(self, address: str) -> None:
        """bluetoothd forgets a temporary device some time after discovery stopped."""
        self._removals.pop(address, None)
        device = self.devices.get(address)
        if device is None or self.discovering or device.link is not None or not device.temporary:
            return
        log.info("removing temporary device %s", address)
        device.unexport()

    def remove_device_path(self, path: str) -> None:
        device = next((d for d in self.devices.values() if d.path == path and d.exported), None)
        if device is None:
            raise errors.does_not_exist()
        self.remove_device(device)

    def remove_device(self, device: VDevice) -> None:
        if device.link is not None:
            device.disconnect_link(0x13)
        self.bonds.remove(device.address)
        device.unexport()
        device.temporary = True
        device.trusted = False
        device.alias = None

    # -- the radio -------------------------------------------------------------------------

    def device_faults(self, address: str) -> DeviceFaults:
        return self._faults.setdefault(address.upper(), DeviceFaults())

    def next_conn_handle(self) -> int:
        return next(self._conn_handles)

    def _device(self, address: str, address_type: int) -> VDevice:
        device = self.devices.get(address.upper())
        if device is None:
            device = VDevice(self, address, address_type)
            self.devices[device.address] = device
        return device

    def _passes_filters(self, session: DeviceSession, rssi: int) -> bool:
        filters = [self._filters.get(s, {}) for s in self._discovering]
        if not filters:
            return True
        for f in filters:
            uuids = f.get("UUIDs") or []
            if uuids and not set(uuids) & set(session.adv.uuids):
                continue
            if "RSSI" in f and rssi < f["RSSI"]:
                continue
            pattern = f.get("Pattern") or ""
            if pattern and not (session.address.startswith(pattern.upper())
                                or (session.adv.name or "").startswith(pattern)):
                continue
            return True
        return False

    async def _radio_loop(self) -> None:
        while True:
            await asyncio.sleep(RADIO_TICK)
            try:
                self._radio_tick()
            except Exception:
                log.exception("radio tick failed")

    def _radio_tick(self) -> None:
        if not self._discovering:
            return
        now = time.monotonic()
        if now - self._discovery_started < self.adapter_faults.discovery_delay:
            return
        for address, session in list(self.sessions.items()):
            faults = self.device_faults(address)
            if not session.advertising or not faults.reachable(now):
                continue
            device = self._device(address, session.address_type)
            if now < device.next_report:
                continue
            assert session.adv_interval_us is not None
            device.next_report = now + max(session.adv_interval_us / 1e6, MIN_REPORT_PERIOD)
            if self._passes_filters(session, faults.rssi):
                device.report_advertisement(faults.rssi)

    # -- BridgeListener --------------------------------------------------------------------

    def session_ready(self, session: DeviceSession) -> None:
        old = self.sessions.get(session.address)
        if old is not None and old is not session:
            log.warning("%s said hello again; the old session is dropped", session.address)
            self.session_closed(old)
            closing = asyncio.ensure_future(old.close())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        self.sessions[session.address] = session
        device = self._device(session.address, session.address_type)
        device.address_type = session.address_type
        device.session = session

    def _live_device(self, session: DeviceSession) -> VDevice | None:
        device = self.devices.get(session.address)
        if device is None or device.session is not session:
            return None
        return device

    def session_registered(self, session: DeviceSession) -> None:
        device = self._live_device(session)
        if device is not None and device.link is not None:
            # NimBLE refuses gatts_register_services while connected; a real central would
            # never see a table change mid-connection, so the new table waits for the next one.
            session.stats["register_while_connected"] += 1
            log.warning("%s registered services while connected; used from the next "
                        "connection", session.address)

    def session_advertising(self, session: DeviceSession) -> None:
        device = self._live_device(session)
        if device is not None:
            device.next_report = 0.0

    def session_notify(
        self, session: DeviceSession, conn: int, handle: int, data: bytes, indicate: bool
    ) -> None:
        device = self._live_device(session)
        link = device.link if device is not None else None
        if link is None or link.conn != conn:
            session.stats["notify_without_link"] += 1
            return
        link.deliver(handle, data, indicate)

    def session_disconnect(self, session: DeviceSession, conn: int, reason: int) -> None:
        device = self._live_device(session)
        if device is not None:
            device.remote_disconnected(conn)

    def session_security_request(self, session: DeviceSession, conn: int) -> None:
        device = self._live_device(session)
        if device is not None:
            device.security_request(conn)

    def session_closed(self, session: DeviceSession) -> None:
        if self.sessions.get(session.address) is session:
            del self.sessions[session.address]
        device = self._live_device(session)
        if device is not None:
            log.info("device %s powered off", session.address)
            device.session_gone()

    # -- bus clients -----------------------------------------------------------------------

    def _on_signal(self, msg: Message) -> bool:
        if (msg.member == "NameOwnerChanged" and msg.sender == "org.freedesktop.DBus"
                and len(msg.body) == 3 and not msg.body[2]):
            name = msg.body[0]
            if name.startswith(":"):
                self._client_gone(name)
        return False

    def _client_gone(self, name: str) -> None:
        self._filters.pop(name, None)
        if name in self._discovering:
            self._stop_discovery(name)
        for device in self.devices.values():
            if device.link is not None:
                device.link.client_gone(name)

    # -- control (faults and test support) --------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "adapter": {"path": self.adapter_path, "address": self.address,
                        "discovering": self.discovering,
                        "bus_send_stalls": send_stalls(self.bus),
                        "discovery_delay": self.adapter_faults.discovery_delay,
                        "connect_timeout": self.adapter_faults.connect_timeout},
            "devices": [d.state() for d in self.devices.values()],
            "bonds": [b.address for b in self.bonds.all()],
        }

    def reset(self, *, bonds: bool = True) -> None:
        """Back to a fresh adapter: no links, no devices on D-Bus, no faults, no discovery."""
        for device in self.devices.values():
            if device.link is not None:
                device.disconnect_link(0x13)
        if bonds:
            self.bonds.clear()
        for device in list(self.devices.values()):
            device.unexport()
            device.temporary = True
            device.trusted = False
            device.alias = None
            device.last_name = None
            device.stats.clear()
            if device.session is None:
                del self.devices[device.address]
        for handle in self._removals.values():
            handle.cancel()
        self._removals.clear()
        for sender in list(self._discovering):
            self._stop_discovery(sender)
        self._filters.clear()
        self._faults.clear()
        self.adapter_faults = AdapterFaults()
        self.att_timeout = DEFAULT_ATT_TIMEOUT
        for bond in self.bonds.all():
            device = self._device(bond.address, bond.address_type)
            device.temporary = False
            device.export(rssi=None)

    def drop_link(self, address: str, seconds: float) -> bool:
        """Link loss; the device stays out of reach (no adverts, no connects) for `seconds`."""
        faults = self.device_faults(address)
        faults.hidden_until = time.monotonic() + max(0.0, seconds)
        device = self.devices.get(address.upper())
        if device is not None and device.link is not None:
            device.link_lost(device.link, REASON_SUPERVISION_TIMEOUT)
            return True
        return False

    def set_in_range(self, address: str, in_range: bool) -> None:
        faults = self.device_faults(address)
        faults.in_range = in_range
        device = self.devices.get(address.upper())
        if not in_range and device is not None and device.link is not None:
            device.link_lost(device.link, REASON_SUPERVISION_TIMEOUT)

    def fail_next_connect(self, address: str, error: str, count: int) -> None:
        if error not in CONNECT_ERRORS:
            raise ValueError(f"connect error must be one of {CONNECT_ERRORS}, not {error!r}")
        self.device_faults(address).connect_errors.extend([error] * max(1, count))

    def fail_next_att(self, address: str, op: str, error: int | str, count: int,
                      uuid: str | None) -> None:
        if op not in ATT_OPS:
            raise ValueError(f"op must be one of {ATT_OPS}, not {op!r}")
        if isinstance(error, str) and error != IN_PROGRESS:
            raise ValueError(f"error must be an ATT code or {IN_PROGRESS!r}, not {error!r}")
        if isinstance(error, int) and not 1 <= error <= 0xFF:
            raise ValueError(f"ATT error codes are 0x01..0xff, not {error}")
        self.device_faults(address).att_faults.append(
            AttFault(op, error, normalize_uuid(uuid) if uuid else None, max(1, count)))

    def set_mtu(self, address: str, mtu: int | None) -> None:
        if mtu is not None and not 23 <= mtu <= 517:
            raise ValueError(f"ATT MTU must be 23..517, not {mtu}")
        self.device_faults(address).mtu = mtu

    def set_rssi(self, address: str, rssi: int) -> None:
        if not -127 <= rssi <= 20:
            raise ValueError(f"RSSI must be -127..20 dBm, not {rssi}")
        self.device_faults(address).rssi = rssi
