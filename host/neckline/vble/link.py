"""One LE connection and the GATT client objects BlueZ exports for it.

While a device is connected, its registered table appears under the device's object path as
GattService1 / GattCharacteristic1 / GattDescriptor1 objects. Paths follow bluetoothd exactly
(`<device>/serviceXXXX/charYYYY/descZZZZ`, with the service's start handle, the
characteristic's declaration handle and the descriptor handle in hex), because bleak reads the
handles and the device back out of the path. Reads, writes and subscriptions become bridge
requests to the device; what the device answers becomes the D-Bus reply bluetoothd would send
(neckline.vble.errors.gatt_error).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from dbus_fast import Message, Variant

from neckline.vble import errors
from neckline.vble.bridge import DeviceSession, SessionClosed
from neckline.vble.faults import DeviceFaults
from neckline.vble.gatt import (
    CCCD_UUID,
    FLAG_WRITE,
    FLAG_WRITE_NO_RESPONSE,
    GattCharacteristic,
    GattDescriptor,
    GattService,
)
from neckline.vble.objtree import MethodHandler, ObjectTree

if TYPE_CHECKING:
    from neckline.vble.device import VDevice

log = logging.getLogger(__name__)

SERVICE_IFACE = "org.bluez.GattService1"
CHAR_IFACE = "org.bluez.GattCharacteristic1"
DESC_IFACE = "org.bluez.GattDescriptor1"

MAX_ATTR_LEN = 512
CCCD_NOTIFY = 0x0001
CCCD_INDICATE = 0x0002


def _options(msg: Message, index: int) -> dict[str, Any]:
    """The a{sv} options argument of a GATT call, unwrapped."""
    if len(msg.body) <= index:
        return {}
    raw = msg.body[index]
    if not isinstance(raw, dict):
        raise errors.invalid_args()
    return {k: (v.value if isinstance(v, Variant) else v) for k, v in raw.items()}


class Link:
    """An established connection to one virtual device."""

    def __init__(self, device: VDevice, session: DeviceSession, conn: int, mtu: int) -> None:
        self.device = device
        self.session = session
        self.conn = conn
        self.mtu = mtu
        self.encrypted = False
        self.authenticated = False
        self.services_resolved = False
        self.stats: Counter[str] = Counter()
        self._closed = asyncio.Event()
        self._chars: dict[int, CharObject] = {}
        self._paths: list[str] = []

    @property
    def tree(self) -> ObjectTree:
        return self.device.tree

    @property
    def faults(self) -> DeviceFaults:
        return self.device.faults

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    # -- GATT object lifetime ---------------------------------------------------------------

    def export_gatt(self, services: tuple[GattService, ...]) -> list[str]:
        """Export every service, characteristic and descriptor; returns the service UUIDs."""
        dev = self.device.path
        for service in services:
            spath = f"{dev}/service{service.handle:04x}"
            self.tree.export(spath, {SERVICE_IFACE: {
                "UUID": Variant("s", service.uuid),
                "Device": Variant("o", dev),
                "Primary": Variant("b", True),
                "Includes": Variant("ao", []),
                "Handle": Variant("q", service.handle),
            }})
            self._paths.append(spath)
            for char in service.characteristics:
                cobj = CharObject(self, char, f"{spath}/char{char.decl_handle:04x}", spath)
                cobj.export()
                self._chars[char.value_handle] = cobj
                self._paths.append(cobj.path)
                for desc in char.descriptors:
                    dobj = DescObject(self, desc, f"{cobj.path}/desc{desc.handle:04x}", cobj.path)
                    dobj.export()
                    self._paths.append(dobj.path)
        return [s.uuid for s in services]

    def close(self) -> None:
        """The link is gone: fail pending calls, drop acquired sockets, unexport the objects."""
        if self._closed.is_set():
            return
        self._closed.set()
        for cobj in self._chars.values():
            cobj.drop_sockets()
        for path in reversed(self._paths):
            self.tree.unexport(path)
        self._paths.clear()
        self._chars.clear()

    def client_gone(self, name: str) -> None:
        """A D-Bus client left the bus: its notification sessions end (as in bluetoothd)."""
        for cobj in self._chars.values():
            cobj.drop_client(name)

    # -- traffic ---------------------------------------------------------------------------

    def deliver(self, handle: int, data: bytes, indicate: bool) -> None:
        cobj = self._chars.get(handle)
        if cobj is None:
            self.stats["notify_unknown_handle"] += 1
            log.warning("%s: notification for unknown handle %d", self.device.address, handle)
        else:
            limit = self.mtu - 3
            if len(data) > limit:
                self.stats["notify_oversized"] += 1
                log.warning("%s: %d-byte notification exceeds MTU %d - 3, truncated",
                            self.device.address, len(data), self.mtu)
                data = data[:limit]
            cobj.deliver(data)
        if indicate:
            # bt_gatt_client confirms every indication once its handlers ran.
            self.session.send({"op": "indicate_done", "conn": self.conn, "handle": handle,
                               "status": 0})

    async def att_request(self, kind: str, uuid: str, message: dict[str, Any]) -> dict[str, Any]:
        """One ATT request to the device, with injected faults and bluetoothd's error mapping."""
        fault = self.faults.take_att_fault(kind, uuid)
        if fault is not None:
            self.stats[f"injected_{kind}"] += 1
            if fault == "in_progress":
                raise errors.in_progress()
            assert isinstance(fault, int)
            raise errors.gatt_error(fault)
        if self.closed:
            raise errors.failed("Not connected")
        request = asyncio.ensure_future(
            self.session.request({**message, "conn": self.conn}, self.device.att_timeout)
        )
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            done, _ = await asyncio.wait({request, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        if request not in done:
            request.cancel()
            raise errors.gatt_error(0)
        try:
            answer = request.result()
        except SessionClosed:
            raise errors.gatt_error(0) from None
        except TimeoutError:
            # An ATT transaction timeout kills the bearer (Core Vol 3 Part F 3.3.3).
            log.warning("%s: ATT %s timed out; dropping the link", self.device.address, kind)
            self.device.link_lost(self, reason=0x08)
            raise errors.gatt_error(0) from None
        status = answer.get("status", 0)
        if not isinstance(status, int):
            raise errors.gatt_error(0x0E)
        if status:
            self.stats[f"att_error_{status:#04x}"] += 1
            raise errors.gatt_error(status)
        return answer

    def write_command(self, handle: int, data: bytes) -> None:
        self.stats["write_commands"] += 1
        self.session.send_and_forget({"op": "write", "conn": self.conn, "handle": handle,
                                      "data": data.hex(), "response": False})


class CharObject:
    """GattCharacteristic1 for one characteristic of a connected device."""

    def __init__(self, link: Link, char: GattCharacteristic, path: str, service_path: str) -> None:
        self.link = link
        self.char = char
        self.path = path
        self.service_path = service_path
        self.value = b""
        self.clients: dict[str, bool] = {}
        self.subscribed = False
        self.notify_sock: socket.socket | None = None
        self.write_sock: socket.socket | None = None
        self._read: tuple[int, asyncio.Future[bytes]] | None = None
        self._writing = False

    def export(self) -> None:
        c = self.char
        props: dict[str, Variant] = {
            "UUID": Variant("s", c.uuid),
            "Service": Variant("o", self.service_path),
            "Value": Variant("ay", b""),
            "Flags": Variant("as", c.bluez_flags),
            "MTU": Variant("q", self.link.mtu),
            "Handle": Variant("q", c.decl_handle),
        }
        if c.can_notify or c.can_indicate:
            props["Notifying"] = Variant("b", False)
        if c.can_notify:
            props["NotifyAcquired"] = Variant("b", False)
        if c.flags & FLAG_WRITE_NO_RESPONSE:
            props["WriteAcquired"] = Variant("b", False)
        handlers: dict[str, MethodHandler] = {CHAR_IFACE: self._dispatch}
        self.link.tree.export(self.path, {CHAR_IFACE: props}, handlers)

    def _dispatch(self, msg: Message) -> Message | Awaitable[Message | None] | None:
        method: Callable[[Message], Message | Awaitable[Message | None] | None] | None = {
            "ReadValue": self.read_value,
            "WriteValue": self.write_value,
            "StartNotify": self.start_notify,
            "StopNotify": self.stop_notify,
            "AcquireNotify": self.acquire_notify,
            "AcquireWrite": self.acquire_write,
        }.get(msg.member or "")
        if method is None:
            raise errors.BluezError("org.freedesktop.DBus.Error.UnknownMethod",
                                    f"no method {msg.member}")
        if self.link.closed:
            raise errors.failed("Not connected")
        return method(msg)

    def _set(self, name: str, value: Variant, *, force: bool = False) -> None:
        if not self.link.closed:
            self.link.tree.update(self.path, CHAR_IFACE, {name: value}, force=force)

    # -- read / write ----------------------------------------------------------------------

    def read_value(self, msg: Message) -> Awaitable[Message]:
        offset = int(_options(msg, 0).get("offset", 0))
        if self._read is not None:
            # bluetoothd joins a read already under way at the same offset.
            if self._read[0] != offset:
                raise errors.in_progress()
            return self._join_read(msg, self._read[1])
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._read = (offset, future)
        return self._do_read(msg, offset, future)

    async def _join_read(self, msg: Message, future: asyncio.Future[bytes]) -> Message:
        data = await asyncio.shield(future)
        return Message.new_method_return(msg, "ay", [data])

    async def _do_read(self, msg: Message, offset: int, future: asyncio.Future[bytes]) -> Message:
        try:
            answer = await self.link.att_request(
                "read", self.char.uuid, {"op": "read", "handle": self.char.value_handle})
            data = bytes.fromhex(answer.get("data", ""))[:MAX_ATTR_LEN][offset:]
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # joiners re-raise it; nobody else must see it as unretrieved
            raise
        finally:
            self._read = None
        future.set_result(data)
        self.value = data
        # The read lands in bluetoothd's GATT cache, which emits Value like a notification
        # would: a StartNotify subscriber sees reads too (bleak documents this duplication).
        self._set("Value", Variant("ay", data), force=True)
        return Message.new_method_return(msg, "ay", [data])

    def write_value(self, msg: Message) -> Message | Awaitable[Message]:
        if not msg.body or not isinstance(msg.body[0], (bytes, bytearray)):
            raise errors.invalid_args()
        data = bytes(msg.body[0])
        opts = _options(msg, 1)
        kind = opts.get("type")
        offset = int(opts.get("offset", 0))
        if self.write_sock is not None:
            raise errors.not_permitted("Write acquired")
        if self._writing:
            raise errors.in_progress()
        flags = self.char.flags
        if kind in ("request", "reliable") or (kind is None and flags & FLAG_WRITE):
            self._writing = True
            return self._do_write(msg, data, offset)
        if kind not in (None, "command") or offset or (
            kind is None and not flags & FLAG_WRITE_NO_RESPONSE
        ):
            raise errors.not_supported()
        if len(data) > self.link.mtu - 3:
            raise errors.failed("Failed to initiate write")
        self.link.write_command(self.char.value_handle, data)
        return Message.new_method_return(msg)

    async def _do_write(self, msg: Message, data: bytes, offset: int) -> Message:
        try:
            if offset:
                # The bridge carries whole values; a write at an offset is a long write that
                # starts there, so the device gets the value as the central assembles it.
                data = self.value[:offset] + data
            await self.link.att_request("write", self.char.uuid, {
                "op": "write", "handle": self.char.value_handle, "data": data.hex(),
                "response": True})
        finally:
            self._writing = False
        return Message.new_method_return(msg)

    # -- notifications ---------------------------------------------------------------------

    def _check_notifiable(self) -> None:
        if not (self.char.can_notify or self.char.can_indicate):
            raise errors.not_supported()

    async def _subscribe(self) -> None:
        if self.subscribed:
            return
        # bt_gatt_client enables notifications if the characteristic has them, else
        # indications (src/shared/gatt-client.c).
        value = CCCD_NOTIFY if self.char.can_notify else CCCD_INDICATE
        if self.char.cccd_handle is not None:
            await self.link.att_request("subscribe", self.char.uuid, {
                "op": "write", "handle": self.char.cccd_handle,
                "data": value.to_bytes(2, "little").hex(), "response": True})
        self.subscribed = True

    def _unsubscribe(self) -> None:
        if not self.subscribed or self.link.closed:
            self.subscribed = False
            return
        self.subscribed = False
        if self.char.cccd_handle is not None:
            self.link.session.send_and_forget({
                "op": "write", "conn": self.link.conn, "handle": self.char.cccd_handle,
                "data": "0000", "response": True})

    def start_notify(self, msg: Message) -> Message | Awaitable[Message]:
        if self.notify_sock is not None:
            raise errors.not_permitted("Notify acquired")
        self._check_notifiable()
        sender = msg.sender or ""
        if sender in self.clients:
            if self.clients[sender]:
                return Message.new_method_return(msg)
            raise errors.in_progress()
        self.clients[sender] = False
        return self._do_start_notify(msg, sender)

    async def _do_start_notify(self, msg: Message, sender: str) -> Message:
        try:
            await self._subscribe()
        except BaseException:
            self.clients.pop(sender, None)
            raise
        if sender not in self.clients:
            # The client left while the subscription was being written.
            return Message.new_method_return(msg)
        self.clients[sender] = True
        self._set("Notifying", Variant("b", True))
        return Message.new_method_return(msg)

    def stop_notify(self, msg: Message) -> Message:
        if self.notify_sock is not None:
            self._drop_notify_sock()
            return Message.new_method_return(msg)
        if self.clients.pop(msg.sender or "", None) is None:
            raise errors.failed("No notify session started")
        self._after_client_left()
        return Message.new_method_return(msg)

    def drop_client(self, name: str) -> None:
        if self.clients.pop(name, None) is not None:
            self._after_client_left()

    def _after_client_left(self) -> None:
        if not any(self.clients.values()):
            self._set("Notifying", Variant("b", False))
        if not self.clients and self.notify_sock is None:
            self._unsubscribe()

    def acquire_notify(self, msg: Message) -> Awaitable[None]:
        if self.notify_sock is not None:
            raise errors.not_permitted("Notify acquired")
        if self.clients:
            raise errors.in_progress()
        self._check_notifiable()
        return self._do_acquire(msg, notify=True)

    def acquire_write(self, msg: Message) -> Awaitable[None]:
        if self.write_sock is not None:
            raise errors.not_permitted("Write acquired")
        if not self.char.flags & FLAG_WRITE_NO_RESPONSE:
            raise errors.not_supported()
        return self._do_acquire(msg, notify=False)

    async def _do_acquire(self, msg: Message, *, notify: bool) -> None:
        if notify:
            await self._subscribe()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        reply = Message.new_method_return(msg, "hq", [0, self.link.mtu], [theirs.fileno()])
        sent = self.link.tree.reply(msg, reply)
        try:
            if sent is not None:
                await sent
        finally:
            # Our copy of the client's end must close once the reply carried it away.
            theirs.close()
        loop = asyncio.get_running_loop()
        if notify:
            self.notify_sock = ours
            loop.add_reader(ours.fileno(), self._on_notify_sock)
            self._set("NotifyAcquired", Variant("b", True))
        else:
            self.write_sock = ours
            loop.add_reader(ours.fileno(), self._on_write_sock)
            self._set("WriteAcquired", Variant("b", True))

    def _on_notify_sock(self) -> None:
        sock = self.notify_sock
        if sock is None:
            return
        try:
            data = sock.recv(MAX_ATTR_LEN)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop_notify_sock()

    def _on_write_sock(self) -> None:
        sock = self.write_sock
        if sock is None:
            return
        try:
            data = sock.recv(self.link.mtu)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop_write_sock()
            return
        if not self.link.closed:
            self.link.write_command(self.char.value_handle, data)

    def _close_sock(self, sock: socket.socket) -> None:
        with contextlib.suppress(ValueError, OSError, RuntimeError):
            asyncio.get_running_loop().remove_reader(sock.fileno())
        sock.close()

    def _drop_notify_sock(self) -> None:
        sock, self.notify_sock = self.notify_sock, None
        if sock is None:
            return
        self._close_sock(sock)
        self._set("NotifyAcquired", Variant("b", False))
        if not self.clients:
            self._unsubscribe()

    def _drop_write_sock(self) -> None:
        sock, self.write_sock = self.write_sock, None
        if sock is None:
            return
        self._close_sock(sock)
        self._set("WriteAcquired", Variant("b", False))

    def drop_sockets(self) -> None:
        for sock in (self.notify_sock, self.write_sock):
            if sock is not None:
                self._close_sock(sock)
        self.notify_sock = self.write_sock = None

    def deliver(self, data: bytes) -> None:
        delivered = False
        if self.notify_sock is not None:
            delivered = True
            try:
                self.notify_sock.send(data)
                self.link.stats["notify_fd"] += 1
            except BlockingIOError:
                # bluetoothd logs the failed sendmsg and drops the value; so do we.
                self.link.stats["notify_fd_dropped"] += 1
            except OSError:
                self._drop_notify_sock()
        if any(self.clients.values()):
            delivered = True
            self.value = data
            self._set("Value", Variant("ay", data), force=True)
            self.link.stats["notify_signal"] += 1
        if not delivered:
            self.link.stats["notify_unsubscribed"] += 1


class DescObject:
    """GattDescriptor1 for one descriptor (the CCCD included, as bluetoothd exports it)."""

    def __init__(self, link: Link, desc: GattDescriptor, path: str, char_path: str) -> None:
        self.link = link
        self.desc = desc
        self.path = path
        self.char_path = char_path
        self._busy = False

    def export(self) -> None:
        props = {
            "UUID": Variant("s", self.desc.uuid),
            "Characteristic": Variant("o", self.char_path),
            "Value": Variant("ay", b""),
            "Handle": Variant("q", self.desc.handle),
        }
        self.link.tree.export(self.path, {DESC_IFACE: props}, {DESC_IFACE: self._dispatch})

    def _dispatch(self, msg: Message) -> Awaitable[Message]:
        if self.link.closed:
            raise errors.failed("Not connected")
        if msg.member == "ReadValue":
            return self._read(msg)
        if msg.member == "WriteValue":
            if not msg.body or not isinstance(msg.body[0], (bytes, bytearray)):
                raise errors.invalid_args()
            if self.desc.uuid == CCCD_UUID:
                # Subscriptions go through StartNotify/StopNotify only.
                raise errors.not_permitted("Write not permitted")
            if self._busy:
                raise errors.in_progress()
            self._busy = True
            return self._write(msg, bytes(msg.body[0]))
        raise errors.BluezError("org.freedesktop.DBus.Error.UnknownMethod",
                                f"no method {msg.member}")

    async def _read(self, msg: Message) -> Message:
        offset = int(_options(msg, 0).get("offset", 0))
        answer = await self.link.att_request(
            "read", self.desc.uuid, {"op": "read", "handle": self.desc.handle})
        data = bytes.fromhex(answer.get("data", ""))[:MAX_ATTR_LEN][offset:]
        if not self.link.closed:
            self.link.tree.update(self.path, DESC_IFACE, {"Value": Variant("ay", data)})
        return Message.new_method_return(msg, "ay", [data])

    async def _write(self, msg: Message, data: bytes) -> Message:
        try:
            await self.link.att_request("write", self.desc.uuid, {
                "op": "write", "handle": self.desc.handle, "data": data.hex(), "response": True})
        finally:
            self._busy = False
        if not self.link.closed:
            self.link.tree.update(self.path, DESC_IFACE, {"Value": Variant("ay", data)})
        return Message.new_method_return(msg)
