"""A small CPython peripheral that speaks the DEVICE side of the virtual-BLE bridge protocol.

It stands in for the MicroPython firmware on its `bluetooth` shim in tests of the virtual
BlueZ: it assigns handles the NimBLE way, checks every read and write against the link's
security exactly as bridge.md tells the shim to (so encryption errors come from the device,
as on a real radio), keeps CCCD subscriptions per connection, pairs and bonds with a random
LTK, re-advertises after a disconnect, and records everything it receives for assertions.
It runs one reader thread; all public methods are thread-safe.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

FLAG_READ = 0x0002
FLAG_WRITE_NO_RESPONSE = 0x0004
FLAG_WRITE = 0x0008
FLAG_NOTIFY = 0x0010
FLAG_INDICATE = 0x0020
FLAG_READ_ENCRYPTED = 0x0200
FLAG_READ_AUTHENTICATED = 0x0400
FLAG_READ_AUTHORIZED = 0x0800
FLAG_WRITE_ENCRYPTED = 0x1000
FLAG_WRITE_AUTHENTICATED = 0x2000

ATT_READ_NOT_PERMITTED = 0x02
ATT_WRITE_NOT_PERMITTED = 0x03
ATT_INSUFFICIENT_AUTHENTICATION = 0x05
ATT_INSUFFICIENT_ENCRYPTION = 0x0F

BASE = "-0000-1000-8000-00805f9b34fb"


def full_uuid(uuid: str) -> str:
    return f"0000{uuid}{BASE}" if len(uuid) == 4 else uuid


def uuid_le_bytes(uuid: str) -> bytes:
    if len(uuid) == 4:
        return int(uuid, 16).to_bytes(2, "little")
    return bytes.fromhex(uuid.replace("-", ""))[::-1]


@dataclass
class Desc:
    uuid: str
    flags: int = FLAG_READ
    value: bytes = b""
    handle: int = 0


@dataclass
class Char:
    uuid: str
    flags: int
    value: bytes = b""
    descs: list[Desc] = field(default_factory=list)
    decl_handle: int = 0
    value_handle: int = 0
    cccd_handle: int | None = None


@dataclass
class Service:
    uuid: str
    chars: list[Char]
    handle: int = 0


def assign_handles(services: list[Service]) -> None:
    """Sequentially from 1: service, then per characteristic its declaration, value, CCCD (if
    it notifies or indicates) and user descriptors — the order the bridge protocol fixes."""
    h = 1
    for s in services:
        s.handle = h
        h += 1
        for c in s.chars:
            c.decl_handle, c.value_handle = h, h + 1
            h += 2
            if c.flags & (FLAG_NOTIFY | FLAG_INDICATE):
                c.cccd_handle = h
                h += 1
            for d in c.descs:
                d.handle = h
                h += 1


def ad_structure(ad_type: int, data: bytes) -> bytes:
    return bytes([len(data) + 1, ad_type]) + data


def build_adv(
    *, name: str | None, uuids: list[str], appearance: int | None,
    manufacturer: dict[int, bytes], service_data: dict[str, bytes],
) -> tuple[bytes, bytes]:
    """Advertising data and scan response laid out like docs/protocol.md §3.3."""
    adv = ad_structure(0x01, b"\x06")
    u16 = b"".join(uuid_le_bytes(u) for u in uuids if len(u) == 4)
    u128 = b"".join(uuid_le_bytes(u) for u in uuids if len(u) != 4)
    if u16:
        adv += ad_structure(0x03, u16)
    if u128:
        adv += ad_structure(0x07, u128)
    if appearance is not None:
        adv += ad_structure(0x19, struct.pack("<H", appearance))
    resp = b""
    for company, payload in manufacturer.items():
        resp += ad_structure(0xFF, struct.pack("<H", company) + payload)
    for uuid, payload in service_data.items():
        resp += ad_structure(0x16, uuid_le_bytes(uuid) + payload)
    if name:
        resp += ad_structure(0x09, name.encode())
    return adv, resp


@dataclass
class LinkState:
    conn: int
    peer: str
    peer_type: int
    mtu: int = 23
    encrypted: bool = False
    authenticated: bool = False
    bonded: bool = False
    cccd: dict[int, int] = field(default_factory=dict)


class FakePeripheral:
    """See the module docstring. Construct, then `start()`; `stop()` powers it off."""

    def __init__(
        self,
        bridge: str,
        address: str,
        services: list[Service],
        *,
        name: str | None = "Neckline-FAKE",
        adv_uuids: list[str] | None = None,
        appearance: int | None = 0x0540,
        manufacturer: dict[int, bytes] | None = None,
        service_data: dict[str, bytes] | None = None,
        interval_us: int = 100_000,
        mtu: int | None = None,
        bond: bool = True,
        readvertise: bool = True,
    ) -> None:
        self.bridge = bridge
        self.address = address.upper()
        self.services = services
        assign_handles(services)
        self.name = name
        self.adv, self.resp = build_adv(
            name=name, uuids=adv_uuids or [], appearance=appearance,
            manufacturer=manufacturer or {}, service_data=service_data or {})
        self.interval_us = interval_us
        self.mtu = mtu
        self.bond = bond
        self.readvertise = readvertise
        self.keys: dict[str, bytes] = {}
        self.links: dict[int, LinkState] = {}
        self.writes: list[tuple[int, bytes, bool]] = []
        self.events: list[tuple[Any, ...]] = []
        self.read_authorizer: Callable[[int], bool] = lambda handle: True
        # A hung stack: requests are received but never answered.
        self.silent = False
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    # -- lookups ---------------------------------------------------------------------------

    def chars(self) -> list[Char]:
        return [c for s in self.services for c in s.chars]

    def char(self, uuid: str) -> Char:
        for c in self.chars():
            if full_uuid(c.uuid) == full_uuid(uuid):
                return c
        raise KeyError(uuid)

    def _attr(self, handle: int) -> tuple[Char | None, Desc | None, bool]:
        for c in self.chars():
            if handle == c.value_handle:
                return c, None, False
            if handle == c.cccd_handle:
                return c, None, True
            for d in c.descs:
                if d.handle == handle:
                    return c, d, False
        return None, None, False

    def table(self) -> list[dict[str, Any]]:
        return [
            {"uuid": s.uuid, "handle": s.handle, "chars": [
                {"uuid": c.uuid, "flags": c.flags, "decl_handle": c.decl_handle,
                 "value_handle": c.value_handle, "cccd_handle": c.cccd_handle,
                 "descs": [{"uuid": d.uuid, "flags": d.flags, "handle": d.handle}
                           for d in c.descs]}
                for c in s.chars]}
            for s in self.services
        ]

    # -- life ------------------------------------------------------------------------------

    def start(self) -> FakePeripheral:
        host, _, port = self.bridge.rpartition(":")
        self._sock = socket.create_connection((host, int(port)), timeout=5)
        self._sock.settimeout(None)
        hello: dict[str, Any] = {"op": "hello", "addr": self.address.lower(), "addr_type": 0,
                                 "proto": 1, "name": self.name}
        if self.mtu is not None:
            hello["mtu"] = self.mtu
        self.send(hello)
        self.send({"op": "register", "services": self.table()})
        self.advertise()
        self._thread = threading.Thread(target=self._reader, name=f"fake-{self.address}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self._thread is not None:
            self._thread.join(5)

    def send(self, message: dict[str, Any]) -> None:
        sock = self._sock
        if sock is None:
            raise ConnectionError("the fake peripheral is powered off")
        with self._send_lock:
            sock.sendall(json.dumps(message).encode() + b"\n")

    def advertise(self, on: bool = True) -> None:
        self.send({"op": "adv", "interval_us": self.interval_us if on else None,
                   "adv": self.adv.hex(), "resp": self.resp.hex(), "connectable": True})

    # -- what the firmware would call --------------------------------------------------------

    def notify(self, uuid: str, data: bytes, conn: int | None = None) -> None:
        c = self.char(uuid)
        for link in self._targets(conn):
            self.send({"op": "notify", "conn": link.conn, "handle": c.value_handle,
                       "data": data[: link.mtu - 3].hex()})

    def indicate(self, uuid: str, data: bytes, conn: int | None = None) -> None:
        c = self.char(uuid)
        for link in self._targets(conn):
            self.send({"op": "indicate", "conn": link.conn, "handle": c.value_handle,
                       "data": data[: link.mtu - 3].hex()})

    def disconnect(self, conn: int | None = None) -> None:
        """gap_disconnect: the stack drops the link itself; the bridge sends no echo."""
        for link in self._targets(conn):
            self.send({"op": "disconnect", "conn": link.conn, "reason": 0x13})
            with self._cond:
                self.links.pop(link.conn, None)
                self._cond.notify_all()
            if self.readvertise:
                self.advertise()

    def request_security(self, conn: int | None = None) -> None:
        for link in self._targets(conn):
            self.send({"op": "pair", "conn": link.conn})

    def _targets(self, conn: int | None) -> list[LinkState]:
        with self._cond:
            links = list(self.links.values())
        return [lk for lk in links if conn is None or lk.conn == conn]

    # -- waiting ---------------------------------------------------------------------------

    def wait(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def subscribed(self, uuid: str) -> int:
        """The CCCD value the (first) connected central wrote for `uuid`, 0 if none."""
        c = self.char(uuid)
        with self._cond:
            for link in self.links.values():
                return link.cccd.get(c.cccd_handle or -1, 0)
        return 0

    @property
    def link(self) -> LinkState | None:
        with self._cond:
            return next(iter(self.links.values()), None)

    # -- the bridge --------------------------------------------------------------------------

    def _reader(self) -> None:
        sock = self._sock
        assert sock is not None
        buf = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                msg = json.loads(line)
                with self._cond:
                    self.events.append((msg["op"], msg))
                    self._handle(msg)
                    self._cond.notify_all()

    def _handle(self, msg: dict[str, Any]) -> None:
        op = msg["op"]
        if op == "connect":
            self.links[msg["conn"]] = LinkState(msg["conn"], msg["addr"], msg["addr_type"])
        elif op == "disconnect":
            self.links.pop(msg["conn"], None)
            if self.readvertise and self._sock is not None:
                self._reply({"op": "adv", "interval_us": self.interval_us, "adv": self.adv.hex(),
                             "resp": self.resp.hex(), "connectable": True})
        elif op == "mtu":
            self.links[msg["conn"]].mtu = msg["mtu"]
        elif op in ("write", "read") and self.silent:
            return
        elif op == "write":
            self._write(msg)
        elif op == "read":
            self._read(msg)
        elif op == "pair":
            self._pair(msg)
        elif op == "encrypt":
            link = self.links.get(msg["conn"])
            key = self.keys.get(link.peer) if link else None
            ok = link is not None and key is not None and key.hex() == msg["ltk"]
            if ok and link is not None:
                link.encrypted = link.bonded = True
            self._reply({"op": "encrypt_resp", "id": msg["id"], "status": 0 if ok else 5,
                         "bonded": ok})

    def _reply(self, message: dict[str, Any]) -> None:
        # Powered off meanwhile: a real radio would not answer either.
        with contextlib.suppress(OSError):
            self.send(message)

    def _security_error(self, flags: int, link: LinkState, write: bool) -> int:
        enc = FLAG_WRITE_ENCRYPTED if write else FLAG_READ_ENCRYPTED
        auth = FLAG_WRITE_AUTHENTICATED if write else FLAG_READ_AUTHENTICATED
        if flags & enc and not link.encrypted:
            return ATT_INSUFFICIENT_ENCRYPTION
        if flags & auth and not link.authenticated:
            return ATT_INSUFFICIENT_AUTHENTICATION
        return 0

    def _write(self, msg: dict[str, Any]) -> None:
        link = self.links.get(msg["conn"])
        char, desc, is_cccd = self._attr(msg["handle"])
        data = bytes.fromhex(msg["data"])
        status = 0
        if link is None or char is None:
            status = 0x01
        elif is_cccd:
            # Subscribing to a value that needs encryption to read needs encryption too.
            status = self._security_error(char.flags, link, write=False)
            if not status:
                link.cccd[msg["handle"]] = int.from_bytes(data[:2], "little")
        elif desc is not None:
            desc.value = data
        else:
            status = self._security_error(char.flags, link, write=True)
            if not status and not char.flags & (FLAG_WRITE | FLAG_WRITE_NO_RESPONSE):
                status = ATT_WRITE_NOT_PERMITTED
            if not status:
                char.value = data
                self.writes.append((msg["handle"], data, bool(msg.get("response"))))
        self._reply({"op": "write_resp", "id": msg["id"], "status": status})

    def _read(self, msg: dict[str, Any]) -> None:
        link = self.links.get(msg["conn"])
        char, desc, is_cccd = self._attr(msg["handle"])
        status, value = 0, b""
        if link is None or char is None:
            status = 0x01
        elif is_cccd:
            value = link.cccd.get(msg["handle"], 0).to_bytes(2, "little")
        elif desc is not None:
            value = desc.value
        else:
            status = self._security_error(char.flags, link, write=False)
            if not status and not char.flags & FLAG_READ:
                status = ATT_READ_NOT_PERMITTED
            if not status and char.flags & FLAG_READ_AUTHORIZED and not self.read_authorizer(
                    msg["handle"]):
                status = ATT_READ_NOT_PERMITTED
            value = char.value
        self._reply({"op": "read_resp", "id": msg["id"], "status": status,
                     "data": "" if status else value.hex()})

    def _pair(self, msg: dict[str, Any]) -> None:
        link = self.links.get(msg["conn"])
        if link is None:
            self._reply({"op": "pair_resp", "id": msg["id"], "status": 5, "bonded": False,
                         "ltk": ""})
            return
        bonded = self.bond and bool(msg.get("bond", True))
        ltk = os.urandom(16)
        if bonded:
            self.keys[link.peer] = ltk
        link.encrypted = True
        link.bonded = bonded
        self._reply({"op": "pair_resp", "id": msg["id"], "status": 0, "bonded": bonded,
                     "ltk": ltk.hex() if bonded else ""})
