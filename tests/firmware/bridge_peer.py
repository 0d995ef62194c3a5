"""A minimal bridge server and central for testing the device side of the virtual-BLE bridge.

It speaks the bridge protocol (docs/ble.md) from the central's end, over one TCP connection that
the device opens: tests connect, exchange the MTU, write, read, subscribe, pair and encrypt, and
inspect what the device sent (its GATT table, advertising, notifications, indications). It is a
test instrument, not the product's bridge (that is host/neckline/vble/).

Indications are acknowledged automatically unless `auto_ack` is False; an indication that arrives
while the previous one on that connection is unacknowledged is recorded in `overlaps`.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]

# MicroPython characteristic flags (what the device registers).
FLAG_READ = 0x0002
FLAG_WRITE_NO_RESPONSE = 0x0004
FLAG_WRITE = 0x0008
FLAG_NOTIFY = 0x0010
FLAG_INDICATE = 0x0020
FLAG_READ_ENCRYPTED = 0x0200
FLAG_WRITE_ENCRYPTED = 0x1000

ATT_INSUFFICIENT_ENCRYPTION = 0x0F
ATT_READ_NOT_PERMITTED = 0x02
ATT_WRITE_NOT_PERMITTED = 0x03

BASE_UUID_TAIL = "-0000-1000-8000-00805f9b34fb"


def uuid_str(uuid: str | int) -> str:
    """The bridge's UUID spelling: 4 hex digits for 16-bit, canonical lowercase for 128-bit."""
    if isinstance(uuid, int):
        return f"{uuid:04x}"
    return uuid.lower()


@dataclass
class Notification:
    conn: int
    handle: int
    data: bytes
    indication: bool
    at: float = field(default_factory=time.monotonic)


class BridgeError(AssertionError):
    pass


class BridgePeer:
    """Listens on 127.0.0.1:0; one device connects."""

    def __init__(self) -> None:
        self._srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(4)
        self.port: int = self._srv.getsockname()[1]
        self._sock: socket.socket | None = None
        self._rx = b""
        self._next_id = 1
        self.auto_ack = True
        self.log: list[Message] = []
        self._inbox: list[Message] = []
        self.hello: Message | None = None
        self.services: list[Message] | None = None
        self.adv: Message | None = None
        self.adv_history: list[Message] = []
        self.received: list[Notification] = []
        self.overlaps: list[Message] = []
        self.unacked: dict[int, int] = {}
        self.device_closed = False

    # ------------------------------------------------------------------ plumbing
    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def env(self, addr: str | None = None) -> dict[str, str]:
        env = {"NECKLINE_VBLE_BRIDGE": self.address}
        if addr:
            env["NECKLINE_VBLE_ADDR"] = addr
        return env

    def accept(self, timeout: float = 20.0, alive: Callable[[], bool] | None = None) -> Message:
        """Wait for the device to connect and say hello (a new device replaces the old one).

        `alive` (for example a process's poll() is None) stops the wait early when it turns false.
        """
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        deadline = time.monotonic() + timeout
        self._srv.settimeout(0.1)
        while True:
            try:
                sock, _ = self._srv.accept()
                break
            except TimeoutError:
                if alive is not None and not alive():
                    raise BridgeError("the device exited before connecting to the bridge") from None
                if time.monotonic() > deadline:
                    raise BridgeError(f"no device connected within {timeout}s") from None
        sock.setblocking(False)
        self._sock = sock
        self._rx = b""
        self._inbox.clear()
        self.unacked.clear()
        self.device_closed = False
        self.hello = self.wait_for("hello", timeout=timeout)
        return self.hello

    def drop_device(self) -> None:
        """Close the device's connection as a crashed bridge would (the server keeps listening)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._srv.close()

    def send(self, msg: Message) -> None:
        if self._sock is None:
            raise BridgeError("no device connected")
        data = (json.dumps(msg) + "\n").encode()
        self._sock.setblocking(True)
        try:
            self._sock.sendall(data)
        finally:
            self._sock.setblocking(False)

    def pump(self, timeout: float = 0.0) -> int:
        """Read what the device sent (waiting up to timeout); returns the number of messages."""
        if self._sock is None or self.device_closed:
            if timeout:
                time.sleep(timeout)
            return 0
        ready, _, _ = select.select([self._sock], [], [], timeout)
        if not ready:
            return 0
        n = 0
        while True:
            try:
                chunk = self._sock.recv(65536)
            except BlockingIOError:
                break
            if not chunk:
                self.device_closed = True
                break
            self._rx += chunk
        while b"\n" in self._rx:
            line, self._rx = self._rx.split(b"\n", 1)
            if line.strip():
                self._record(json.loads(line))
                n += 1
        return n

    def _record(self, msg: Message) -> None:
        self.log.append(msg)
        op = msg.get("op")
        if op == "register":
            self.services = msg["services"]
        elif op == "adv":
            self.adv = msg
            self.adv_history.append(msg)
        elif op == "notify":
            self.received.append(
                Notification(msg["conn"], msg["handle"], bytes.fromhex(msg["data"]), False))
            return  # notifications are read from `received`, not waited for one by one
        elif op == "indicate":
            conn = msg["conn"]
            if self.unacked.get(conn):
                self.overlaps.append(msg)
            self.unacked[conn] = msg["handle"]
            self.received.append(
                Notification(conn, msg["handle"], bytes.fromhex(msg["data"]), True))
            if self.auto_ack:
                self.indicate_done(conn, msg["handle"])
        self._inbox.append(msg)

    def wait_for(self, op: str, pred: Callable[[Message], bool] | None = None,
                 timeout: float = 10.0) -> Message:
        """The next (not yet consumed) message with this op matching pred."""
        deadline = time.monotonic() + timeout
        while True:
            for i, msg in enumerate(self._inbox):
                if msg.get("op") == op and (pred is None or pred(msg)):
                    return self._inbox.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise BridgeError(f"no {op!r} from the device within {timeout}s; got "
                                  f"{[m.get('op') for m in self.log[-20:]]}")
            if self.device_closed:
                raise BridgeError(f"device closed the bridge while waiting for {op!r}")
            self.pump(min(left, 0.05))

    def wait_until(self, cond: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            left = deadline - time.monotonic()
            if left <= 0:
                raise BridgeError(f"timed out waiting for {what or cond}")
            self.pump(min(left, 0.05))

    def settle(self, seconds: float) -> None:
        """Keep reading for a while (to see that something does NOT happen)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.pump(min(left, 0.05))

    def request(self, msg: Message, answer: str, timeout: float = 10.0) -> Message:
        rid = self._next_id
        self._next_id += 1
        self.send({**msg, "id": rid})
        return self.wait_for(answer, lambda m: m.get("id") == rid, timeout)

    def pipeline(self, msgs: list[Message], answer: str, timeout: float = 10.0) -> list[Message]:
        """Send several requests in one write (they reach the device together); answers in order."""
        ids = []
        lines = b""
        for msg in msgs:
            ids.append(self._next_id)
            lines += (json.dumps({**msg, "id": self._next_id}) + "\n").encode()
            self._next_id += 1
        if self._sock is None:
            raise BridgeError("no device connected")
        self._sock.setblocking(True)
        try:
            self._sock.sendall(lines)
        finally:
            self._sock.setblocking(False)
        def answering(rid: int) -> Callable[[Message], bool]:
            return lambda m: bool(m.get("id") == rid)

        return [self.wait_for(answer, answering(rid), timeout) for rid in ids]

    # ------------------------------------------------------------------ the GATT table
    def chars(self) -> list[Message]:
        if self.services is None:
            raise BridgeError("the device registered no services")
        return [c for s in self.services for c in s["chars"]]

    def char(self, uuid: str | int) -> Message:
        want = uuid_str(uuid)
        for c in self.chars():
            if c["uuid"] == want:
                return c
        raise BridgeError(f"no characteristic {want}")

    def value_handle(self, uuid: str | int) -> int:
        return int(self.char(uuid)["value_handle"])

    # ------------------------------------------------------------------ central actions
    def connect(self, conn: int = 1, addr: str = "c0:ff:ee:00:00:01", addr_type: int = 0) -> None:
        self.send({"op": "connect", "conn": conn, "addr_type": addr_type, "addr": addr})

    def disconnect(self, conn: int = 1, reason: int = 0x13) -> None:
        self.unacked.pop(conn, None)
        self.send({"op": "disconnect", "conn": conn, "reason": reason})

    def mtu(self, conn: int, mtu: int) -> None:
        self.send({"op": "mtu", "conn": conn, "mtu": mtu})

    def write(self, conn: int, handle: int, data: bytes, response: bool = True) -> int:
        msg = {"op": "write", "conn": conn, "handle": handle, "data": data.hex(),
               "response": response}
        return int(self.request(msg, "write_resp")["status"])

    def read(self, conn: int, handle: int) -> tuple[int, bytes]:
        resp = self.request({"op": "read", "conn": conn, "handle": handle}, "read_resp")
        return int(resp["status"]), bytes.fromhex(resp.get("data", ""))

    def subscribe(self, conn: int, uuid: str | int, notify: bool = True,
                  indicate: bool = False) -> int:
        cccd = self.char(uuid)["cccd_handle"]
        if cccd is None:
            raise BridgeError(f"{uuid} has no CCCD")
        bits = (1 if notify else 0) | (2 if indicate else 0)
        return self.write(conn, int(cccd), bits.to_bytes(2, "little"))

    def pair(self, conn: int = 1, bond: bool = True) -> Message:
        return self.request({"op": "pair", "conn": conn, "bond": bond}, "pair_resp")

    def encrypt(self, conn: int, ltk: str) -> Message:
        return self.request({"op": "encrypt", "conn": conn, "ltk": ltk}, "encrypt_resp")

    def indicate_done(self, conn: int, handle: int, status: int = 0) -> None:
        if self.unacked.get(conn) == handle:
            del self.unacked[conn]
        self.send({"op": "indicate_done", "conn": conn, "handle": handle, "status": status})

    # ------------------------------------------------------------------ what arrived
    def on(self, handle: int, conn: int | None = None) -> list[Notification]:
        return [n for n in self.received
                if n.handle == handle and (conn is None or n.conn == conn)]


def parse_ad(data: bytes) -> list[tuple[int, bytes]]:
    """AD structures (type, payload); raises on a malformed length."""
    out = []
    i = 0
    while i < len(data):
        length = data[i]
        if length == 0 or i + 1 + length > len(data):
            raise ValueError(f"bad AD length at {i}")
        out.append((data[i + 1], data[i + 2:i + 1 + length]))
        i += 1 + length
    return out
