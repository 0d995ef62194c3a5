"""The bridge server: virtual devices connect here and become radios the virtual BlueZ can see.

Transport (docs/vble.md, "Bridge protocol"): TCP on 127.0.0.1, one connection per powered-on
device, newline-terminated JSON objects with an "op" key, binary values as lowercase hex.
Requests that need an answer carry an integer "id" chosen by the asker and echoed in the answer.

This module only speaks the protocol: it validates what a device sends, keeps the device's
advertising state and GATT table, matches answers to requests, and hands every event to a
`BridgeListener` (the BlueZ model). Bad input is logged and counted, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
from collections import Counter
from typing import Any, Protocol

from neckline.vble.advdata import AdvData, parse_advertisement
from neckline.vble.gatt import GattTable, TableError, parse_table

log = logging.getLogger(__name__)

PROTO_VERSION = 1
_ADDR = re.compile(r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$")
_LINE_LIMIT = 1 << 20
_ANSWERS = ("read_resp", "write_resp", "pair_resp", "encrypt_resp")


class SessionClosed(ConnectionError):
    """The device went away while a request to it was pending."""


class BridgeListener(Protocol):
    def session_ready(self, session: DeviceSession) -> None: ...
    def session_registered(self, session: DeviceSession) -> None: ...
    def session_advertising(self, session: DeviceSession) -> None: ...
    def session_notify(
        self, session: DeviceSession, conn: int, handle: int, data: bytes, indicate: bool
    ) -> None: ...
    def session_disconnect(self, session: DeviceSession, conn: int, reason: int) -> None: ...
    def session_security_request(self, session: DeviceSession, conn: int) -> None: ...
    def session_closed(self, session: DeviceSession) -> None: ...


class DeviceSession:
    """One powered-on virtual device: its TCP connection and what it has told us so far."""

    _ids = itertools.count(1)

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener: BridgeListener
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._listener = listener
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._request_ids = itertools.count(1)
        self.session_id = next(self._ids)
        self.address = ""
        self.address_type = 0
        self.name: str | None = None
        self.mtu_hint: int | None = None
        self.table: GattTable | None = None
        self.adv: AdvData = AdvData()
        self.adv_interval_us: int | None = None
        self.connectable = False
        self.stats: Counter[str] = Counter()
        self.closed = False

    def __repr__(self) -> str:
        return f"<DeviceSession {self.session_id} {self.address or '?'}>"

    @property
    def advertising(self) -> bool:
        return self.adv_interval_us is not None and not self.closed

    def stop_advertising(self) -> None:
        """A peripheral stops advertising when a central connects (NimBLE behaviour)."""
        self.adv_interval_us = None

    # -- sending ---------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        if self.closed:
            return
        self._writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    async def request(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send `message` with a fresh id and wait for the answer that echoes it."""
        if self.closed:
            raise SessionClosed(f"{self.address} is gone")
        rid = next(self._request_ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        self.send({**message, "id": rid})
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(rid, None)

    def send_and_forget(self, message: dict[str, Any]) -> None:
        """A request whose answer nobody waits for (a write command still gets a write_resp)."""
        rid = next(self._request_ids)
        self.send({**message, "id": rid})

    async def close(self) -> None:
        if not self.closed:
            self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()

    # -- receiving -------------------------------------------------------------------------

    def _reject(self, reason: str, detail: str) -> None:
        self.stats[f"rejected_{reason}"] += 1
        log.warning("bridge %r: rejected (%s): %s", self, reason, detail)

    async def run(self) -> None:
        try:
            while True:
                try:
                    line = await self._reader.readline()
                except ValueError:
                    self._reject("too_long", f"a line over {_LINE_LIMIT} bytes; closing")
                    break
                except (ConnectionError, OSError):
                    break
                if not line:
                    break
                self._handle_line(line)
        finally:
            self.closed = True
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(SessionClosed(f"{self.address} disconnected"))
            self._pending.clear()
            self._writer.close()
            if self.address:
                self._listener.session_closed(self)

    def _handle_line(self, line: bytes) -> None:
        try:
            msg = json.loads(line)
        except ValueError as exc:
            self._reject("bad_json", f"{exc}: {line[:80]!r}")
            return
        if not isinstance(msg, dict) or not isinstance(msg.get("op"), str):
            self._reject("no_op", repr(msg)[:80])
            return
        op = msg["op"]
        if op != "hello" and not self.address:
            self._reject("before_hello", op)
            return
        handler = getattr(self, f"_op_{op}", None)
        if handler is None:
            if op in _ANSWERS:
                self._answer(msg)
                return
            self.stats["unknown_op"] += 1
            log.info("bridge %r: ignoring unknown op %r", self, op)
            return
        try:
            handler(msg)
        except (KeyError, TypeError, ValueError) as exc:
            self._reject(f"bad_{op}", f"{exc!r} in {repr(msg)[:120]}")
            if op == "hello" and not self.address:
                # Without a valid hello the device can never appear; hanging up tells it so.
                log.error("bridge %r: closing: unusable hello", self)
                self._writer.close()

    def _answer(self, msg: dict[str, Any]) -> None:
        rid = msg.get("id")
        future = self._pending.get(rid) if isinstance(rid, int) else None
        if future is None:
            # Answers to write commands land here too: nobody waits for those.
            if msg.get("op") == "write_resp" and msg.get("status", 0) != 0:
                self.stats["write_command_rejected"] += 1
            elif msg.get("op") != "write_resp":
                self._reject("unexpected_answer", repr(msg)[:80])
            return
        if not future.done():
            future.set_result(msg)

    def _op_hello(self, msg: dict[str, Any]) -> None:
        if self.address:
            self._reject("second_hello", repr(msg)[:80])
            return
        addr = msg["addr"]
        if not isinstance(addr, str) or not _ADDR.match(addr):
            raise ValueError(f"bad address {addr!r}")
        proto = msg.get("proto", PROTO_VERSION)
        if proto != PROTO_VERSION:
            raise ValueError(f"bridge protocol {proto} is not {PROTO_VERSION}")
        addr_type = int(msg.get("addr_type", 0))
        if addr_type not in (0, 1):
            raise ValueError(f"addr_type must be 0 or 1, not {addr_type}")
        name = msg.get("name")
        mtu = msg.get("mtu")
        if mtu is not None and (not isinstance(mtu, int) or not 23 <= mtu <= 517):
            raise ValueError(f"mtu must be 23..517, not {mtu!r}")
        self.address = addr.upper()
        self.address_type = addr_type
        self.name = name if isinstance(name, str) else None
        self.mtu_hint = mtu
        log.info("bridge: device %s (%s) powered on", self.address, self.name)
        self._listener.session_ready(self)

    def _op_config(self, msg: dict[str, Any]) -> None:
        """Optional: the device's preferred ATT MTU changed (BLE.config(mtu=...))."""
        mtu = msg.get("mtu")
        if not isinstance(mtu, int) or not 23 <= mtu <= 517:
            raise ValueError(f"mtu must be 23..517, not {mtu!r}")
        self.mtu_hint = mtu

    def _op_register(self, msg: dict[str, Any]) -> None:
        try:
            table = parse_table(msg["services"])
        except TableError as exc:
            self._reject("bad_table", str(exc))
            return
        self.table = table
        self.stats["register"] += 1
        self._listener.session_registered(self)

    def _op_adv(self, msg: dict[str, Any]) -> None:
        interval = msg.get("interval_us")
        if interval is None:
            self.adv_interval_us = None
        else:
            if not isinstance(interval, int) or interval <= 0:
                raise ValueError(f"interval_us must be a positive int or null, not {interval!r}")
            adv = bytes.fromhex(msg.get("adv") or "")
            resp = bytes.fromhex(msg.get("resp") or "")
            parsed = parse_advertisement(adv, resp)
            for problem in parsed.errors:
                self._reject("bad_adv", problem)
            self.adv = parsed
            self.connectable = bool(msg.get("connectable", True))
            self.adv_interval_us = interval
        self._listener.session_advertising(self)

    def _notify(self, msg: dict[str, Any], indicate: bool) -> None:
        conn = msg["conn"]
        handle = msg["handle"]
        if not isinstance(conn, int) or not isinstance(handle, int):
            raise TypeError("conn and handle must be ints")
        self._listener.session_notify(self, conn, handle, bytes.fromhex(msg["data"]), indicate)

    def _op_notify(self, msg: dict[str, Any]) -> None:
        self._notify(msg, indicate=False)

    def _op_indicate(self, msg: dict[str, Any]) -> None:
        self._notify(msg, indicate=True)

    def _op_disconnect(self, msg: dict[str, Any]) -> None:
        self._listener.session_disconnect(self, int(msg["conn"]), int(msg.get("reason", 0x13)))

    def _op_pair(self, msg: dict[str, Any]) -> None:
        self._listener.session_security_request(self, int(msg["conn"]))


class BridgeServer:
    """Accepts device connections on 127.0.0.1 and runs one DeviceSession for each."""

    def __init__(self, listener: BridgeListener, host: str = "127.0.0.1", port: int = 0) -> None:
        self._listener = listener
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._sessions: set[DeviceSession] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self._host, self._port, limit=_LINE_LIMIT
        )

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = DeviceSession(reader, writer, self._listener)
        self._sessions.add(session)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions):
            await session.close()
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
