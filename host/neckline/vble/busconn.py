"""Connect the virtual BlueZ to its bus with writes that wait instead of failing.

dbus-fast's asyncio writer sends on a non-blocking socket and treats `EAGAIN` (send buffer full)
as a fatal error that drops the whole connection. A virtual device streaming notifications can
fill that buffer faster than dbus-daemon drains it, so the writer's socket is wrapped: a plain
`send` that would block reports "0 bytes written", which makes dbus-fast park the rest of the
message and retry when the loop sees the socket writable. A `sendmsg` carrying file descriptors
(AcquireNotify/AcquireWrite replies, rare) waits for writability in place, because dbus-fast
forgets the descriptors after the first attempt.

This touches one private attribute of dbus-fast (`MessageBus._writer.sock`); `connect_bus`
checks it is there and fails loudly at start-up if a dbus-fast upgrade moved it.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Iterable
from typing import Any

from dbus_fast import BusType
from dbus_fast.aio import MessageBus


class _PatientSocket:
    """A socket proxy whose `send` never raises BlockingIOError (see module docstring)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.stalls = 0

    def send(self, data: Any, flags: int = 0) -> int:
        try:
            return self._sock.send(data, flags)
        except BlockingIOError:
            self.stalls += 1
            return 0

    def sendmsg(self, buffers: Iterable[Any], ancdata: Any = (), flags: int = 0) -> int:
        bufs = list(buffers)
        while True:
            try:
                return self._sock.sendmsg(bufs, ancdata, flags)
            except BlockingIOError:
                self.stalls += 1
                select.select([], [self._sock], [], 1.0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


async def connect_bus(address: str) -> MessageBus:
    """A connected dbus-fast bus on `address` that can pass unix fds and never dies of EAGAIN."""
    bus = MessageBus(bus_address=address, bus_type=BusType.SYSTEM, negotiate_unix_fd=True)
    await bus.connect()
    writer = getattr(bus, "_writer", None)
    if writer is None or not isinstance(getattr(writer, "sock", None), socket.socket):
        bus.disconnect()
        raise RuntimeError(
            "dbus-fast's writer layout changed; neckline.vble.busconn needs updating"
        )
    writer.sock = _PatientSocket(writer.sock)
    return bus


def send_stalls(bus: MessageBus) -> int:
    """How often a write to the bus found its socket full and had to wait."""
    sock = getattr(getattr(bus, "_writer", None), "sock", None)
    return sock.stalls if isinstance(sock, _PatientSocket) else 0
