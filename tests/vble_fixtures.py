"""pytest plugin: a virtual BlueZ on a private bus, for running the real bleak in tests.

* `vble_stack` (session): starts `python -m neckline.vble serve` (its own process group, with
  its own dbus-daemon), points DBUS_SYSTEM_BUS_ADDRESS and NECKLINE_VBLE_BRIDGE at it, and
  puts a tiny `bluetoothctl` on PATH that reports BlueZ 5.82 — bleak runs
  `bluetoothctl --version` once per process at its first connect and refuses anything but
  5.55..5.x, so the tests must not depend on whatever BlueZ the machine has (or lacks).
  Everything is stopped at the end of the session, by process group.
* `vble` (function): a `VBleHandle` on a freshly reset stack: the bridge address, the fault
  API (`vble.faults`, a neckline.vble.VBleClient), and `vble.add_device(...)` to power on
  CPython fake peripherals (tests/vble_device.py) that are powered off after the test.

bleak keeps one BlueZ manager per event loop and pytest-asyncio gives each test its own loop,
so every test starts with a manager that reads the (reset) virtual BlueZ afresh.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from neckline.vble import VBleClient, VBleProcess, start_vble
from tests.vble_device import FakePeripheral, Service

FAKE_BLUETOOTHCTL = """#!/bin/sh
# Stand-in for BlueZ's bluetoothctl: bleak only asks it for the version.
echo "bluetoothctl: 5.82"
"""

_addresses = itertools.count(1)


def next_address() -> str:
    n = next(_addresses)
    return f"C0:DE:00:00:{n >> 8:02X}:{n & 0xFF:02X}"


@dataclass
class VBleHandle:
    """What a test gets from the `vble` fixture."""

    process: VBleProcess
    faults: VBleClient
    devices: list[FakePeripheral] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return self.process.bridge

    @property
    def dbus_address(self) -> str:
        return self.process.dbus_address

    def add_device(
        self, services: list[Service], *, address: str | None = None, wait: str = "advertising",
        **kwargs: Any,
    ) -> FakePeripheral:
        """Power on a fake peripheral on the bridge; waits until the virtual BlueZ sees it."""
        device = FakePeripheral(self.bridge, address or next_address(), services, **kwargs)
        device.start()
        self.devices.append(device)
        if wait:
            self.faults.wait_for(device.address, wait, timeout=5)
        return device

    def log_tail(self) -> str:
        return self.process.log_tail()


@pytest.fixture(scope="session")
def vble_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VBleProcess]:
    root = tmp_path_factory.mktemp("vble")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "bluetoothctl"
    fake.write_text(FAKE_BLUETOOTHCTL)
    fake.chmod(0o755)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
        process = start_vble(root / "run")
        try:
            mp.setenv("DBUS_SYSTEM_BUS_ADDRESS", process.dbus_address)
            mp.setenv("NECKLINE_VBLE_BRIDGE", process.bridge)
            yield process
        finally:
            process.stop()


@pytest.fixture
def vble(vble_stack: VBleProcess) -> Iterator[VBleHandle]:
    if vble_stack.process.poll() is not None:
        pytest.fail(f"the virtual BlueZ died:\n{vble_stack.log_tail()}")
    client = vble_stack.client()
    client.reset()
    handle = VBleHandle(process=vble_stack, faults=client)
    try:
        yield handle
    finally:
        for device in handle.devices:
            device.stop()
        if vble_stack.process.poll() is None:
            client.reset()
