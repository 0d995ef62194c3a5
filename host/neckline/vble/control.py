"""The control channel: JSON lines over TCP 127.0.0.1 for fault injection and test support.

Request: `{"id": 1, "op": "drop_link", "addr": "AA:..", "seconds": 2}`; answer:
`{"id": 1, "ok": true, "result": ...}` or `{"id": 1, "ok": false, "error": "..."}`.
The ops are the methods of neckline.vble.client.VBleClient (docs/vble.md lists them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from neckline.vble.bluez import VirtualBlueZ

log = logging.getLogger(__name__)

_WAIT_POLL = 0.02


class ControlServer:
    def __init__(self, bluez: VirtualBlueZ, host: str = "127.0.0.1", port: int = 0) -> None:
        self.bluez = bluez
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._ops: dict[str, Callable[[dict[str, Any]], Any]] = {
            "ping": lambda a: "pong",
            "state": lambda a: bluez.state(),
            "reset": lambda a: bluez.reset(bonds=bool(a.get("bonds", True))),
            "drop_link": lambda a: bluez.drop_link(a["addr"], float(a["seconds"])),
            "set_in_range": lambda a: bluez.set_in_range(a["addr"], bool(a["in_range"])),
            "set_discovery_delay": self._set_discovery_delay,
            "set_connect_timeout": self._set_connect_timeout,
            "set_temporary_timeout": self._set_temporary_timeout,
            "set_att_timeout": self._set_att_timeout,
            "fail_next_connect": lambda a: bluez.fail_next_connect(
                a["addr"], a["error"], int(a.get("count", 1))),
            "fail_next_att": lambda a: bluez.fail_next_att(
                a["addr"], a.get("att_op", "any"), a["error"], int(a.get("count", 1)),
                a.get("uuid")),
            "set_mtu": lambda a: bluez.set_mtu(a["addr"], a.get("mtu")),
            "set_rssi": lambda a: bluez.set_rssi(a["addr"], int(a["rssi"])),
        }

    @property
    def address(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    def _seconds(self, args: dict[str, Any]) -> float:
        value = float(args["seconds"])
        if value < 0:
            raise ValueError(f"seconds must be >= 0, not {value}")
        return value

    def _set_discovery_delay(self, args: dict[str, Any]) -> None:
        self.bluez.adapter_faults.discovery_delay = self._seconds(args)

    def _set_connect_timeout(self, args: dict[str, Any]) -> None:
        self.bluez.adapter_faults.connect_timeout = self._seconds(args)

    def _set_temporary_timeout(self, args: dict[str, Any]) -> None:
        self.bluez.adapter_faults.temporary_timeout = self._seconds(args)

    def _set_att_timeout(self, args: dict[str, Any]) -> None:
        self.bluez.att_timeout = self._seconds(args)

    async def _wait_for(self, args: dict[str, Any]) -> dict[str, Any]:
        """Wait until device `addr` is in state `what` (a key of its state that must be true,
        or "absent"/"disconnected" for the negations); returns the device state."""
        addr = str(args["addr"]).upper()
        what = str(args["what"])
        deadline = time.monotonic() + float(args.get("timeout", 10.0))
        while True:
            device = self.bluez.devices.get(addr)
            state = device.state() if device is not None else None
            if what == "absent":
                if state is None or not state["exported"]:
                    return state or {}
            elif what == "disconnected":
                if state is None or not state["connected"]:
                    return state or {}
            elif state is not None:
                if what not in state:
                    raise ValueError(f"unknown state {what!r}")
                if state[what]:
                    return state
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{addr} did not become {what!r}: {state}")
            await asyncio.sleep(_WAIT_POLL)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                answer = await self._handle(line)
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, line: bytes) -> dict[str, Any]:
        rid: Any = None
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("a request is a JSON object")
            rid = request.get("id")
            op = request.get("op")
            if op == "wait_for":
                result = await self._wait_for(request)
            else:
                handler = self._ops.get(op) if isinstance(op, str) else None
                if handler is None:
                    raise ValueError(f"unknown control op {op!r}")
                result = handler(request)
            return {"id": rid, "ok": True, "result": result}
        except (KeyError, TypeError, ValueError, TimeoutError) as exc:
            log.info("control request failed: %r", exc)
            return {"id": rid, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
