"""Synchronous client of the virtual BlueZ's control channel: the fault-injection API.

Every call is one short request/response over loopback TCP, so it is safe to use from async
tests too (it returns in well under a millisecond of blocking, unless it is `wait_for`).
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
from typing import Any


class VBleControlError(RuntimeError):
    """The virtual BlueZ refused a control request; the message says why."""


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


class VBleClient:
    """Fault injection and inspection of a running virtual BlueZ (see docs/vble.md)."""

    def __init__(self, address: str, timeout: float = 30.0) -> None:
        self.address = address
        self._timeout = timeout
        self._sock: socket.socket | None = None
        self._buf = b""
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> VBleClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, op: str, /, **args: Any) -> Any:
        with self._lock:
            if self._sock is None:
                self._sock = socket.create_connection(_split(self.address), self._timeout)
                self._buf = b""
            # A wait_for may legitimately take its whole timeout before answering.
            self._sock.settimeout(self._timeout + float(args.get("timeout") or 0))
            rid = next(self._ids)
            self._sock.sendall(json.dumps({"id": rid, "op": op, **args}).encode() + b"\n")
            while b"\n" not in self._buf:
                chunk = self._sock.recv(65536)
                if not chunk:
                    self.close()
                    raise VBleControlError("the virtual BlueZ closed the control connection")
                self._buf += chunk
            line, self._buf = self._buf.split(b"\n", 1)
        answer = json.loads(line)
        if not answer.get("ok"):
            raise VBleControlError(answer.get("error", "unknown error"))
        return answer.get("result")

    # -- inspection ------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("state")
        return result

    def device(self, addr: str) -> dict[str, Any] | None:
        for dev in self.state()["devices"]:
            if dev["address"] == addr.upper():
                return dict(dev)
        return None

    def wait_for(self, addr: str, what: str, timeout: float = 10.0) -> dict[str, Any]:
        """Block until `addr` is `what`: powered, advertising, registered_services, exported,
        connected, services_resolved, encrypted, paired, bonded, disconnected or absent."""
        result: dict[str, Any] = self.call("wait_for", addr=addr, what=what, timeout=timeout)
        return result

    def reset(self, bonds: bool = True) -> None:
        self.call("reset", bonds=bonds)

    # -- faults ----------------------------------------------------------------------------

    def drop_link(self, addr: str, seconds: float) -> bool:
        """Link loss now; the device is unreachable (no adverts, connects fail) for `seconds`.
        Returns whether a link was up."""
        return bool(self.call("drop_link", addr=addr, seconds=seconds))

    def set_in_range(self, addr: str, in_range: bool) -> None:
        """Out of range: no adverts, link lost, connects fail with le-connection-abort-by-local."""
        self.call("set_in_range", addr=addr, in_range=in_range)

    def set_discovery_delay(self, seconds: float) -> None:
        """Devices show up only `seconds` after each discovery start."""
        self.call("set_discovery_delay", seconds=seconds)

    def set_connect_timeout(self, seconds: float) -> None:
        """How long Connect waits for an unreachable device before failing."""
        self.call("set_connect_timeout", seconds=seconds)

    def set_temporary_timeout(self, seconds: float) -> None:
        """How long after discovery stops an unconnected, unpaired device is removed."""
        self.call("set_temporary_timeout", seconds=seconds)

    def set_att_timeout(self, seconds: float) -> None:
        """How long a request waits for the device before the link is declared dead."""
        self.call("set_att_timeout", seconds=seconds)

    def fail_next_connect(self, addr: str, error: str, count: int = 1) -> None:
        """The next `count` Device1.Connect calls fail: error "in_progress"
        (org.bluez.Error.InProgress) or "abort_by_local" (le-connection-abort-by-local)."""
        self.call("fail_next_connect", addr=addr, error=error, count=count)

    def fail_next_att(self, addr: str, error: int | str, *, op: str = "any", count: int = 1,
                      uuid: str | None = None) -> None:
        """The next `count` ATT requests of kind `op` (read, write, subscribe, any), optionally
        only on `uuid`, fail with ATT error code `error` (or "in_progress")."""
        self.call("fail_next_att", addr=addr, error=error, att_op=op, count=count, uuid=uuid)

    def set_mtu(self, addr: str, mtu: int | None) -> None:
        """The ATT MTU the next connection to `addr` settles on (None: the negotiated one)."""
        self.call("set_mtu", addr=addr, mtu=mtu)

    def set_rssi(self, addr: str, rssi: int) -> None:
        self.call("set_rssi", addr=addr, rssi=rssi)
