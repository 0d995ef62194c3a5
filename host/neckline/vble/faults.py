"""Faults the virtual radio and BlueZ can be told to produce, per device and adapter-wide.

Tests and the CLI set them through the control channel (neckline.vble.client.VBleClient);
the BlueZ model consults them at the points where the real thing could fail.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

CONNECT_ERRORS = ("in_progress", "abort_by_local")
ATT_OPS = ("read", "write", "subscribe", "any")
IN_PROGRESS = "in_progress"


@dataclass
class AttFault:
    op: str
    error: int | str
    uuid: str | None
    remaining: int


@dataclass
class DeviceFaults:
    in_range: bool = True
    hidden_until: float = 0.0
    connect_errors: deque[str] = field(default_factory=deque)
    att_faults: list[AttFault] = field(default_factory=list)
    mtu: int | None = None
    rssi: int = -60

    def reachable(self, now: float | None = None) -> bool:
        """In range and not inside a link-drop window."""
        now = time.monotonic() if now is None else now
        return self.in_range and now >= self.hidden_until

    def take_connect_error(self) -> str | None:
        return self.connect_errors.popleft() if self.connect_errors else None

    def take_att_fault(self, op: str, uuid: str) -> int | str | None:
        """The error to inject into this `op` on characteristic/descriptor `uuid`, if any."""
        for fault in self.att_faults:
            if fault.op not in (op, "any") or fault.uuid not in (None, uuid):
                continue
            fault.remaining -= 1
            if fault.remaining <= 0:
                self.att_faults.remove(fault)
            return fault.error
        return None


@dataclass
class AdapterFaults:
    discovery_delay: float = 0.0
    connect_timeout: float = 2.0
    temporary_timeout: float = 30.0
