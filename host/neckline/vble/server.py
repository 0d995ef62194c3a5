"""Run the virtual BlueZ: private bus (optional), `org.bluez`, bridge and control servers.

It runs in a process of its own (`python -m neckline.vble serve`): a client flooding the bus
must not be able to starve it, and bleak in the test process keeps its own loop undisturbed.
When everything listens it prints ONE JSON line on stdout (the "ready line"):
`{"dbus_address": ..., "bridge": "127.0.0.1:P", "control": "127.0.0.1:Q", "pid": ...,
"dbus_pid": ...}`. SIGTERM or SIGINT stop it cleanly, including the dbus-daemon it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dbus_fast import NameFlag, RequestNameReply
from dbus_fast.aio import MessageBus

from neckline.vble.bluez import VirtualBlueZ
from neckline.vble.bonds import BondStore
from neckline.vble.bridge import BridgeServer
from neckline.vble.busconn import connect_bus
from neckline.vble.control import ControlServer
from neckline.vble.dbusd import DBusDaemon, start_dbus_daemon

log = logging.getLogger(__name__)

BLUEZ_NAME = "org.bluez"


class ServeError(RuntimeError):
    """The virtual BlueZ could not start."""


@dataclass(frozen=True)
class ServeOptions:
    bus_address: str | None = None
    runtime_dir: Path | None = None
    state_file: Path | None = None
    bridge_port: int = 0
    control_port: int = 0
    ready_file: Path | None = None


async def serve(opts: ServeOptions) -> None:
    daemon: DBusDaemon | None = None
    runtime_dir = opts.runtime_dir or Path(tempfile.mkdtemp(prefix="neckline-vble-"))
    address = opts.bus_address
    if address is None:
        daemon = start_dbus_daemon(runtime_dir)
        address = daemon.address
    try:
        await _serve_on(address, daemon, opts)
    finally:
        if daemon is not None:
            daemon.stop()


async def _serve_on(address: str, daemon: DBusDaemon | None, opts: ServeOptions) -> None:
    bus = await connect_bus(address)
    try:
        reply = await bus.request_name(BLUEZ_NAME, NameFlag.DO_NOT_QUEUE)
        if reply != RequestNameReply.PRIMARY_OWNER:
            raise ServeError(f"{BLUEZ_NAME} is already owned on {address} ({reply.name})")
        bluez = await VirtualBlueZ.create(bus, BondStore(opts.state_file))
        bridge = BridgeServer(bluez, port=opts.bridge_port)
        control = ControlServer(bluez, port=opts.control_port)
        await bridge.start()
        await control.start()
        try:
            ready = {
                "dbus_address": address,
                "bridge": bridge.address,
                "control": control.address,
                "pid": os.getpid(),
                "dbus_pid": daemon.pid if daemon is not None else None,
            }
            line = json.dumps(ready)
            if opts.ready_file is not None:
                opts.ready_file.write_text(line + "\n")
            print(line, flush=True)
            log.info("virtual BlueZ ready: %s", line)
            await _until_stopped(bus)
        finally:
            await control.stop()
            await bridge.stop()
            await bluez.close()
    finally:
        bus.disconnect()


async def _until_stopped(bus: MessageBus) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stopped = asyncio.ensure_future(stop.wait())
    bus_died = asyncio.ensure_future(bus.wait_for_disconnect())
    done, pending = await asyncio.wait({stopped, bus_died}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    if bus_died in done:
        with contextlib.suppress(Exception):
            bus_died.result()
        log.error("lost the bus; stopping")
