"""org.bluez.Device1 for one remote device: discovery state, connection, pairing and bond.

The sequences follow bluetoothd (src/device.c) as bleak observes them:

* Connect: `Connected` turns true and the call returns; then the ATT MTU exchange, link
  encryption with the stored key if the device is bonded, the GATT objects, and last
  `ServicesResolved` true.
* Disconnect or link loss: `ServicesResolved` false, `Connected` false, then the GATT objects
  go away. A pairing without bonding lasts for that connection only.
* Pair: connects first if needed, pairs over the bridge, stores the long-term key if the device
  bonded (`Paired`, `Bonded` true); later connects re-encrypt with that key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from dbus_fast import Message, Variant

from neckline.vble import errors
from neckline.vble.bonds import Bond
from neckline.vble.bridge import DeviceSession, SessionClosed
from neckline.vble.faults import DeviceFaults
from neckline.vble.link import Link
from neckline.vble.objtree import ObjectTree

if TYPE_CHECKING:
    from neckline.vble.bluez import VirtualBlueZ

log = logging.getLogger(__name__)

DEVICE_IFACE = "org.bluez.Device1"

# The MTU a virtual device is assumed to accept when its hello does not say (a common NimBLE
# build setting), and bluetoothd's own maximum: the exchange settles on the smaller.
DEFAULT_DEVICE_MTU = 247
BLUEZ_MTU = 517

REASON_REMOTE_USER_TERMINATED = 0x13
REASON_SUPERVISION_TIMEOUT = 0x08
REASON_FAILED_TO_ESTABLISH = 0x3E

_ADV_PROPS = ("Name", "Appearance", "TxPower", "ManufacturerData", "ServiceData",
              "AdvertisingFlags")


class VDevice:
    """A remote device as BlueZ knows it (it may exist on D-Bus while powered off)."""

    def __init__(self, bluez: VirtualBlueZ, address: str, address_type: int) -> None:
        self.bluez = bluez
        self.address = address.upper()
        self.address_type = address_type
        self.path = f"{bluez.adapter_path}/dev_{self.address.replace(':', '_')}"
        self.session: DeviceSession | None = None
        self.link: Link | None = None
        self.exported = False
        self.connecting = False
        self.bonding = False
        self.temporary = True
        self.trusted = False
        self.blocked = False
        self.alias: str | None = None
        self.paired_this_link = False
        self.last_name: str | None = None
        self.next_report = 0.0
        self.stats: Counter[str] = Counter()
        self._setup: asyncio.Task[None] | None = None
        self._cancel_connect = False

    # -- shared state ----------------------------------------------------------------------

    @property
    def tree(self) -> ObjectTree:
        return self.bluez.tree

    @property
    def faults(self) -> DeviceFaults:
        return self.bluez.device_faults(self.address)

    @property
    def att_timeout(self) -> float:
        return self.bluez.att_timeout

    @property
    def bond(self) -> Bond | None:
        return self.bluez.bonds.get(self.address)

    @property
    def paired(self) -> bool:
        return self.bond is not None or self.paired_this_link

    def _set(self, changed: dict[str, Variant], invalidated: tuple[str, ...] = (),
             *, force: bool = False) -> None:
        if self.exported:
            self.tree.update(self.path, DEVICE_IFACE, changed, invalidated, force=force)

    # -- properties ------------------------------------------------------------------------

    def _name(self) -> str | None:
        if self.session is not None and self.session.adv.name:
            self.last_name = self.session.adv.name
        if self.last_name is None and self.bond is not None:
            self.last_name = self.bond.name
        return self.last_name

    def _alias(self) -> str:
        return self.alias or self._name() or self.address.replace(":", "-")

    def _uuids(self) -> list[str]:
        uuids = set(self.session.adv.uuids) if self.session is not None else set()
        if self.link is not None and self.link.services_resolved and self.session is not None:
            table = self.session.table
            uuids.update(s.uuid for s in (table.services if table else ()))
        current = self.tree.get(self.path, DEVICE_IFACE, "UUIDs") or []
        uuids.update(current)
        return sorted(uuids)

    def adv_properties(self) -> dict[str, Variant]:
        props: dict[str, Variant] = {}
        name = self._name()
        if name is not None:
            props["Name"] = Variant("s", name)
        adv = self.session.adv if self.session is not None else None
        if adv is not None:
            if adv.appearance is not None:
                props["Appearance"] = Variant("q", adv.appearance)
            if adv.tx_power is not None:
                props["TxPower"] = Variant("n", adv.tx_power)
            if adv.manufacturer_data:
                props["ManufacturerData"] = Variant(
                    "a{qv}", {k: Variant("ay", v) for k, v in adv.manufacturer_data.items()})
            if adv.service_data:
                props["ServiceData"] = Variant(
                    "a{sv}", {k: Variant("ay", v) for k, v in adv.service_data.items()})
            if adv.flags is not None:
                props["AdvertisingFlags"] = Variant("ay", bytes([adv.flags]))
        props["Alias"] = Variant("s", self._alias())
        props["UUIDs"] = Variant("as", self._uuids())
        return props

    def all_properties(self, rssi: int | None) -> dict[str, Variant]:
        props = {
            "Address": Variant("s", self.address),
            "AddressType": Variant("s", "random" if self.address_type else "public"),
            "Adapter": Variant("o", self.bluez.adapter_path),
            "Paired": Variant("b", self.paired),
            "Bonded": Variant("b", self.bond is not None),
            "Trusted": Variant("b", self.trusted),
            "Blocked": Variant("b", self.blocked),
            "LegacyPairing": Variant("b", False),
            "Connected": Variant("b", self.link is not None),
            "ServicesResolved": Variant("b", bool(self.link and self.link.services_resolved)),
            "WakeAllowed": Variant("b", False),
            **self.adv_properties(),
        }
        if rssi is not None:
            props["RSSI"] = Variant("n", rssi)
        return props

    def export(self, rssi: int | None) -> None:
        if self.exported:
            return
        self.tree.export(
            self.path,
            {DEVICE_IFACE: self.all_properties(rssi)},
            {DEVICE_IFACE: self._dispatch},
            {DEVICE_IFACE: self._set_property},
        )
        self.exported = True

    def unexport(self) -> None:
        if self.exported:
            self.tree.unexport(self.path)
            self.exported = False

    def report_advertisement(self, rssi: int) -> None:
        """One received advertisement while discovering (BlueZ's device_found)."""
        self.stats["adverts_reported"] += 1
        if not self.exported:
            self.export(rssi)
            return
        props = self.adv_properties()
        self._set(props)
        self._set({"RSSI": Variant("n", rssi)}, force=True)

    def discovery_stopped(self) -> None:
        if self.exported:
            self._set({}, ("RSSI", "TxPower"))

    def _set_property(self, name: str, value: Variant) -> None:
        if name == "Trusted":
            self.trusted = bool(value.value)
            self._set({"Trusted": Variant("b", self.trusted)})
        elif name == "Blocked":
            self.blocked = bool(value.value)
            self._set({"Blocked": Variant("b", self.blocked)})
            if self.blocked and self.link is not None:
                self.disconnect_link(REASON_REMOTE_USER_TERMINATED)
        elif name == "Alias":
            self.alias = str(value.value) or None
            self._set({"Alias": Variant("s", self._alias())})
        elif name == "WakeAllowed":
            self._set({"WakeAllowed": Variant("b", bool(value.value))})
        else:
            raise errors.BluezError("org.freedesktop.DBus.Error.PropertyReadOnly",
                                    f"{name} is read-only")

    # -- D-Bus methods ---------------------------------------------------------------------

    def _dispatch(self, msg: Message) -> Any:
        member = msg.member
        if member == "Connect":
            return self.connect(msg)
        if member == "Disconnect":
            return self.disconnect(msg)
        if member == "Pair":
            return self.pair(msg)
        if member == "CancelPairing":
            return Message.new_method_return(msg)
        raise errors.BluezError("org.freedesktop.DBus.Error.UnknownMethod",
                                f"no method {member} on {DEVICE_IFACE}")

    def connect(self, msg: Message) -> Any:
        if self.bonding or self.connecting:
            raise errors.in_progress()
        if self.link is not None:
            return Message.new_method_return(msg)
        self.temporary = False
        injected = self.faults.take_connect_error()
        if injected == "in_progress":
            self.stats["injected_in_progress"] += 1
            raise errors.in_progress()
        return self._connect(msg, abort=injected == "abort_by_local")

    async def _connect(self, msg: Message, *, abort: bool) -> Message | None:
        await self.establish(abort=abort)
        return Message.new_method_return(msg)

    def disconnect(self, msg: Message) -> Any:
        if self.connecting:
            # A pending Connect is answered Failed "br-connection-canceled" (bluetoothd uses
            # the BR/EDR string for LE too, in device_request_disconnect).
            self._cancel_connect = True
        if self.link is not None:
            self.disconnect_link(REASON_REMOTE_USER_TERMINATED)
        return Message.new_method_return(msg)

    def pair(self, msg: Message) -> Any:
        if self.bonding or self.connecting:
            raise errors.in_progress()
        if self.bond is not None:
            raise errors.already_exists()
        self.temporary = False
        return self._pair(msg)

    async def _pair(self, msg: Message) -> Message:
        self.bonding = True
        try:
            if self.link is None:
                await self.establish(abort=False, pairing=True)
            link = self.link
            if link is None:
                raise errors.le_connection_failed()
            await self._pair_link(link)
        finally:
            self.bonding = False
        return Message.new_method_return(msg)

    # -- connection ------------------------------------------------------------------------

    def reachable_session(self) -> DeviceSession | None:
        """The device's session if a connection attempt would reach it now."""
        s = self.session
        if s is None or s.closed or not self.faults.reachable():
            return None
        if not (s.advertising and s.connectable):
            return None
        return s

    async def establish(self, *, abort: bool, pairing: bool = False) -> None:
        """Bring up the LE link; raises the BlueZ error a failed attempt gives."""
        self.connecting = True
        self._cancel_connect = False
        try:
            deadline = time.monotonic() + self.bluez.adapter_faults.connect_timeout
            while True:
                if self._cancel_connect:
                    raise errors.failed("br-connection-canceled")
                session = self.reachable_session()
                if session is not None:
                    break
                if time.monotonic() >= deadline:
                    self.stats["connect_failed"] += 1
                    raise errors.le_connection_failed()
                await asyncio.sleep(0.02)
            conn = self.bluez.next_conn_handle()
            session.stop_advertising()
            session.send({"op": "connect", "conn": conn, "addr_type": 0,
                          "addr": self.bluez.address.lower()})
            if abort:
                # The controller connected and the host gave up at once: BlueZ reports
                # Connected true, the error, then Connected false (bleak retries on it).
                self.stats["injected_abort"] += 1
                self._set({"Connected": Variant("b", True)})
                session.send({"op": "disconnect", "conn": conn,
                              "reason": REASON_FAILED_TO_ESTABLISH})
                asyncio.get_running_loop().call_later(
                    0.05, self._set, {"Connected": Variant("b", False)})
                raise errors.le_connection_failed()
            mtu = self.faults.mtu or min(BLUEZ_MTU, session.mtu_hint or DEFAULT_DEVICE_MTU)
            link = Link(self, session, conn, mtu)
            self.link = link
            self.stats["connects"] += 1
            self._set({"Connected": Variant("b", True)})
            self._setup = asyncio.ensure_future(self._setup_link(link, pairing=pairing))
        finally:
            self.connecting = False

    async def _setup_link(self, link: Link, *, pairing: bool) -> None:
        """After the link is up: MTU exchange, re-encryption if bonded, GATT discovery."""
        link.session.send({"op": "mtu", "conn": link.conn, "mtu": link.mtu})
        bond = self.bond
        if bond is not None and not pairing:
            await self._encrypt(link, bond)
        if link.closed:
            return
        table = link.session.table
        link.export_gatt(table.services if table is not None else ())
        link.services_resolved = True
        self._set({"UUIDs": Variant("as", self._uuids())})
        self._set({"ServicesResolved": Variant("b", True)})

    async def _encrypt(self, link: Link, bond: Bond) -> None:
        try:
            answer = await link.session.request(
                {"op": "encrypt", "conn": link.conn, "ltk": bond.ltk}, self.att_timeout)
        except (TimeoutError, SessionClosed) as exc:
            log.warning("%s: re-encryption got no answer: %r", self.address, exc)
            return
        if answer.get("status", 0) == 0:
            link.encrypted = True
            self.stats["encrypted"] += 1
        else:
            # The device lost its key: the link stays unencrypted, as with real BlueZ, which
            # then fails every protected access with "Not paired" until the user re-pairs.
            self.stats["bond_broken"] += 1
            log.warning("%s: re-encryption refused (status %s): bond is broken",
                        self.address, answer.get("status"))

    async def _pair_link(self, link: Link) -> None:
        try:
            answer = await link.session.request(
                {"op": "pair", "conn": link.conn, "bond": True}, self.att_timeout)
        except (TimeoutError, SessionClosed) as exc:
            raise errors.BluezError(errors.PREFIX + "AuthenticationCanceled",
                                    "Authentication Canceled") from exc
        if answer.get("status", 0) != 0 or link.closed:
            self.stats["pair_failed"] += 1
            raise errors.authentication_failed()
        link.encrypted = True
        link.authenticated = bool(answer.get("authenticated", False))
        bonded = bool(answer.get("bonded", False))
        ltk = answer.get("ltk")
        if bonded and isinstance(ltk, str):
            try:
                bytes.fromhex(ltk)
            except ValueError:
                raise errors.authentication_failed() from None
            self.bluez.bonds.store(Bond(self.address, self.address_type, ltk, self._name()))
        else:
            self.paired_this_link = True
        self.stats["paired"] += 1
        self._set({"Paired": Variant("b", True)})
        if bonded:
            self._set({"Bonded": Variant("b", True)})

    def security_request(self, conn: int) -> None:
        """The device asked for security: re-encrypt with the bond, or pair (Just Works)."""
        link = self.link
        if link is None or link.conn != conn or link.encrypted:
            return
        bond = self.bond
        job = self._encrypt(link, bond) if bond is not None else self._pair_link(link)
        task = asyncio.ensure_future(job)
        task.add_done_callback(_log_failure)

    # -- ending a link ---------------------------------------------------------------------

    def _teardown(self, link: Link) -> None:
        if self.link is not link:
            return
        self.link = None
        if self._setup is not None and not self._setup.done():
            self._setup.cancel()
        if link.services_resolved:
            self._set({"ServicesResolved": Variant("b", False)})
        self._set({"Connected": Variant("b", False)})
        link.close()
        if self.paired_this_link:
            self.paired_this_link = False
            self._set({"Paired": Variant("b", False)})

    def disconnect_link(self, reason: int) -> None:
        """Host-initiated disconnect: the device sees the central terminate the link."""
        link = self.link
        if link is None:
            return
        self.stats["disconnects"] += 1
        link.session.send({"op": "disconnect", "conn": link.conn, "reason": reason})
        self._teardown(link)

    def link_lost(self, link: Link, reason: int = REASON_SUPERVISION_TIMEOUT) -> None:
        """The radio link died (supervision timeout): both sides notice on their own."""
        if self.link is not link:
            return
        self.stats["link_losses"] += 1
        link.session.send({"op": "disconnect", "conn": link.conn, "reason": reason})
        self._teardown(link)

    def remote_disconnected(self, conn: int) -> None:
        link = self.link
        if link is not None and link.conn == conn:
            self.stats["remote_disconnects"] += 1
            self._teardown(link)

    def session_gone(self) -> None:
        link = self.link
        if link is not None:
            self.stats["link_losses"] += 1
            self._teardown(link)
        self.session = None

    def state(self) -> dict[str, Any]:
        s = self.session
        link = self.link
        return {
            "address": self.address,
            "path": self.path,
            "exported": self.exported,
            "powered": s is not None,
            "name": self._name(),
            "advertising": bool(s and s.advertising),
            "registered_services": len(s.table) if s and s.table else 0,
            "connected": link is not None,
            "services_resolved": bool(link and link.services_resolved),
            "conn": link.conn if link else None,
            "mtu": link.mtu if link else None,
            "encrypted": bool(link and link.encrypted),
            "paired": self.paired,
            "bonded": self.bond is not None,
            "reachable": self.faults.reachable(),
            "stats": dict(self.stats),
            "link_stats": dict(link.stats) if link else {},
            "bridge_stats": dict(s.stats) if s else {},
        }


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("security procedure failed: %r", task.exception())
