"""The real, unmodified bleak against the virtual BlueZ and fake peripherals on the bridge.

Every test scans, connects and talks GATT through bleak's BlueZ backend exactly as the host
will on a Linux machine; only bluetoothd and the radio are virtual. The device side is
tests/vble_device.py, which enforces security like the MicroPython shim does, so the errors
checked here come from where they come from on real hardware.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakDBusError, BleakGATTProtocolError, BleakGATTProtocolErrorCode

from tests.e2e.vble_mp import micropython_peripheral
from tests.firmware.mp import SHIMS, micropython_binary
from tests.vble_device import (
    FLAG_INDICATE,
    FLAG_NOTIFY,
    FLAG_READ,
    FLAG_READ_ENCRYPTED,
    FLAG_WRITE,
    FLAG_WRITE_ENCRYPTED,
    FLAG_WRITE_NO_RESPONSE,
    Char,
    Desc,
    FakePeripheral,
    Service,
)

if TYPE_CHECKING:
    from tests.vble_fixtures import VBleHandle

SVC = "6e6b00a0-8a3c-4b5e-9f1d-2c7a4e0b5d10"
STREAM = "6e6b00a1-8a3c-4b5e-9f1d-2c7a4e0b5d10"
CMD = "6e6b00a2-8a3c-4b5e-9f1d-2c7a4e0b5d10"
SECRET = "6e6b00a3-8a3c-4b5e-9f1d-2c7a4e0b5d10"
SECRET_STREAM = "6e6b00a4-8a3c-4b5e-9f1d-2c7a4e0b5d10"
SECURE_CP = "6e6b00a5-8a3c-4b5e-9f1d-2c7a4e0b5d10"
STATUS = "6e6b00a6-8a3c-4b5e-9f1d-2c7a4e0b5d10"
SHIM = SHIMS / "bluetooth.py"
BATTERY_SVC = "180f"
BATTERY_LEVEL = "2a19"


def full(uuid: str) -> str:
    return f"0000{uuid}-0000-1000-8000-00805f9b34fb" if len(uuid) == 4 else uuid


def table() -> list[Service]:
    """A test profile shaped like Neckline's (open, encrypted, notify, indicate, descriptors)."""
    return [
        Service(SVC, [
            Char(STREAM, FLAG_READ | FLAG_NOTIFY, b"\x11"),
            Char(CMD, FLAG_WRITE | FLAG_WRITE_NO_RESPONSE),
            Char(SECRET, FLAG_READ | FLAG_READ_ENCRYPTED, b"secret"),
            Char(SECRET_STREAM, FLAG_NOTIFY | FLAG_READ_ENCRYPTED),
            Char(SECURE_CP, FLAG_WRITE | FLAG_INDICATE | FLAG_WRITE_ENCRYPTED),
            Char(STATUS, FLAG_READ, b"\x15" + bytes(range(27)),
                 descs=[Desc("2901", FLAG_READ, b"status")]),
        ]),
        Service(BATTERY_SVC, [Char(BATTERY_LEVEL, FLAG_READ | FLAG_NOTIFY, b"\x57")]),
    ]


async def scan_for(address: str, timeout: float = 5.0) -> tuple[BLEDevice, AdvertisementData]:
    seen: dict[str, AdvertisementData] = {}

    def match(device: BLEDevice, adv: AdvertisementData) -> bool:
        if device.address.upper() != address.upper():
            return False
        seen["adv"] = adv
        return True

    found = await BleakScanner.find_device_by_filter(match, timeout=timeout)
    assert found is not None, f"{address} not found by scanning"
    return found, seen["adv"]


async def connected(vble: VBleHandle, device: FakePeripheral, **kwargs: object) -> BleakClient:
    ble_device, _ = await scan_for(device.address)
    client = BleakClient(ble_device, timeout=5, **kwargs)  # type: ignore[arg-type]
    await client.connect()
    return client


def in_thread(fn: Callable[..., object], *args: object) -> asyncio.Future[object]:
    """Device-side calls block on a socket: keep them off bleak's event loop."""
    return asyncio.ensure_future(asyncio.to_thread(fn, *args))


# -- discovery ---------------------------------------------------------------------------------


async def test_scan_reports_rssi_name_uuids_and_manufacturer_data(vble: VBleHandle) -> None:
    dev = vble.add_device(table(), name="Neckline-5D10", adv_uuids=[SVC],
                          manufacturer={0x0FFF: b"\x01\x02\x03"},
                          service_data={"180f": b"\x57"})
    vble.faults.set_rssi(dev.address, -42)
    device, adv = await scan_for(dev.address)
    assert device.name == "Neckline-5D10"
    assert adv.local_name == "Neckline-5D10"
    assert adv.rssi == -42
    assert adv.service_uuids == [SVC]
    assert adv.manufacturer_data == {0x0FFF: b"\x01\x02\x03"}
    assert adv.service_data == {full("180f"): b"\x57"}
    props = adv.platform_data[1]
    assert props["Appearance"] == 0x0540
    assert props["AddressType"] == "public"
    assert props["Paired"] is False


async def test_scan_filter_by_service_uuid(vble: VBleHandle) -> None:
    wanted = vble.add_device(table(), adv_uuids=[SVC])
    other = vble.add_device(table(), adv_uuids=[full("1234")])
    found = await BleakScanner.discover(timeout=0.6, service_uuids=[SVC], return_adv=True)
    assert wanted.address in found
    assert other.address not in found


# -- connection and GATT -----------------------------------------------------------------------


async def test_services_match_the_registered_table(vble: VBleHandle) -> None:
    dev = vble.add_device(table(), adv_uuids=[SVC])
    client = await connected(vble, dev)
    try:
        services = {s.uuid: s for s in client.services}
        assert set(services) == {SVC, full(BATTERY_SVC)}
        for registered in dev.services:
            service = services[full(registered.uuid)]
            assert service.handle == registered.handle
            chars = {c.uuid: c for c in service.characteristics}
            assert set(chars) == {full(c.uuid) for c in registered.chars}
            for rc in registered.chars:
                char = chars[full(rc.uuid)]
                # BlueZ names a characteristic by its declaration handle.
                assert char.handle == rc.decl_handle
                expected_props = {name for bit, name in (
                    (FLAG_READ, "read"), (FLAG_WRITE, "write"),
                    (FLAG_WRITE_NO_RESPONSE, "write-without-response"),
                    (FLAG_NOTIFY, "notify"), (FLAG_INDICATE, "indicate")) if rc.flags & bit}
                assert set(char.properties) == expected_props
                descs = {(d.uuid, d.handle) for d in char.descriptors}
                expected = {(full(d.uuid), d.handle) for d in rc.descs}
                if rc.cccd_handle is not None:
                    expected.add((full("2902"), rc.cccd_handle))
                assert descs == expected
        status = client.services.get_characteristic(STATUS)
        assert status is not None
        label = status.get_descriptor(full("2901"))
        assert label is not None
        assert await client.read_gatt_descriptor(label) == b"status"
    finally:
        await client.disconnect()


@pytest.mark.parametrize("use_start_notify", [True, False], ids=["StartNotify", "AcquireNotify"])
async def test_notifications_arrive(vble: VBleHandle, use_start_notify: bool) -> None:
    dev = vble.add_device(table(), adv_uuids=[SVC])
    client = await connected(vble, dev)
    got: list[bytes] = []
    arrived = asyncio.Event()

    def on_value(_: object, data: bytearray) -> None:
        got.append(bytes(data))
        if len(got) == 50:
            arrived.set()

    try:
        await client.start_notify(STREAM, on_value, bluez={"use_start_notify": use_start_notify})
        assert dev.wait(lambda: dev.subscribed(STREAM) == 0x0001)
        sent = [bytes([i]) * (1 + i % 20) for i in range(50)]

        def send_all() -> None:
            for value in sent:
                dev.notify(STREAM, value)

        await asyncio.to_thread(send_all)
        await asyncio.wait_for(arrived.wait(), 5)
        assert got == sent
        state = vble.faults.device(dev.address)
        assert state is not None
        key = "notify_signal" if use_start_notify else "notify_fd"
        assert state["link_stats"][key] == 50
        await client.stop_notify(STREAM)
        assert dev.wait(lambda: dev.subscribed(STREAM) == 0)
    finally:
        await client.disconnect()


async def test_indication_is_confirmed_to_the_device(vble: VBleHandle) -> None:
    dev = vble.add_device([Service(SVC, [Char(SECURE_CP, FLAG_WRITE | FLAG_INDICATE)])])
    client = await connected(vble, dev)
    got: list[bytes] = []
    try:
        await client.start_notify(SECURE_CP, lambda _, data: got.append(bytes(data)))
        # StartNotify on an indicate-only characteristic enables indications (0x0002).
        assert dev.wait(lambda: dev.subscribed(SECURE_CP) == 0x0002)
        await in_thread(dev.indicate, SECURE_CP, b"\x17\x01\x01")
        assert await asyncio.to_thread(
            dev.wait, lambda: any(op == "indicate_done" for op, _ in dev.events))
        assert got == [b"\x17\x01\x01"]
    finally:
        await client.disconnect()


async def test_writes_with_and_without_response_reach_the_device(vble: VBleHandle) -> None:
    dev = vble.add_device(table(), adv_uuids=[SVC])
    client = await connected(vble, dev)
    handle = dev.char(CMD).value_handle
    try:
        await client.write_gatt_char(CMD, b"\x01request", response=True)
        await client.write_gatt_char(CMD, b"\x02command", response=False)
        assert await asyncio.to_thread(dev.wait, lambda: len(dev.writes) == 2)
        assert dev.writes == [(handle, b"\x01request", True), (handle, b"\x02command", False)]
    finally:
        await client.disconnect()


async def test_read_returns_the_device_value(vble: VBleHandle) -> None:
    dev = vble.add_device(table(), adv_uuids=[SVC])
    client = await connected(vble, dev)
    try:
        assert await client.read_gatt_char(STATUS) == b"\x15" + bytes(range(27))
        assert await client.read_gatt_char(full(BATTERY_LEVEL)) == b"\x57"
        dev.char(STATUS).value = b"\x15changed"
        assert await client.read_gatt_char(STATUS) == b"\x15changed"
    finally:
        await client.disconnect()


@pytest.mark.parametrize(("device_mtu", "forced", "expected"), [
    (185, None, 185),   # negotiated: min(BlueZ 517, device 185)
    (None, 23, 23),     # chosen through the fault API
])
async def test_mtu_is_exchanged_and_visible(
    vble: VBleHandle, device_mtu: int | None, forced: int | None, expected: int
) -> None:
    dev = vble.add_device(table(), adv_uuids=[SVC], mtu=device_mtu)
    if forced is not None:
        vble.faults.set_mtu(dev.address, forced)
    client = await connected(vble, dev)
    try:
        cmd = client.services.get_characteristic(CMD)
        assert cmd is not None
        assert cmd.max_write_without_response_size == expected - 3
        assert await asyncio.to_thread(
            dev.wait, lambda: dev.link is not None and dev.link.mtu == expected)
        # A write command must fit one PDU; BlueZ refuses a longer one before sending.
        with pytest.raises(BleakDBusError) as info:
            await client.write_gatt_char(CMD, bytes(expected - 2), response=False)
        assert info.value.dbus_error == "org.bluez.Error.Failed"
        await client.write_gatt_char(CMD, bytes(expected - 3), response=False)
        assert await asyncio.to_thread(dev.wait, lambda: len(dev.writes) == 1)
        # bleak's documented way to learn the MTU on BlueZ (AcquireWrite reports it).
        await client._backend._acquire_mtu()  # type: ignore[attr-defined]
        assert client.mtu_size == expected
    finally:
        await client.disconnect()


# -- disconnects -------------------------------------------------------------------------------


async def test_host_disconnect_is_reported(vble: VBleHandle) -> None:
    dev = vble.add_device(table(), adv_uuids=[SVC])
    gone = asyncio.Event()
    client = await connected(vble, dev, disconnected_callback=lambda _: gone.set())
    await client.disconnect()
    assert gone.is_set()
    assert not client.is_connected
    assert await asyncio.to_thread(dev.wait, lambda: dev.link is None)
    disconnects = [m for op, m in dev.events if op == "disconnect"]
    assert disconnects[-1]["reason"] == 0x13
    state = vble.faults.wait_for(dev.address, "advertising")
    assert not state["connected"]


async def test_link_loss_is_reported_and_device_returns_after_the_outage(
    vble: VBleHandle,
) -> None:
    dev = vble.add_device(table(), adv_uuids=[SVC])
    gone = asyncio.Event()
    client = await connected(vble, dev, disconnected_callback=lambda _: gone.set())
    assert vble.faults.drop_link(dev.address, 1.0)
    await asyncio.wait_for(gone.wait(), 5)
    assert not client.is_connected
    assert await asyncio.to_thread(dev.wait, lambda: dev.link is None)
    disconnects = [m for op, m in dev.events if op == "disconnect"]
    assert disconnects[-1]["reason"] == 0x08  # supervision timeout, as the device sees it
    # The device re-advertises at once, but the central hears nothing during the outage.
    assert await BleakScanner.find_device_by_address(dev.address, timeout=0.5) is None
    ble_device, _ = await scan_for(dev.address, timeout=5)
    async with BleakClient(ble_device, timeout=5) as again:
        assert await again.read_gatt_char(STATUS)


async def test_device_initiated_disconnect_and_power_off_are_reported(vble: VBleHandle) -> None:
    dev = vble.add_device(table(), adv_uuids=[SVC])
    gone = asyncio.Event()
    client = await connected(vble, dev, disconnected_callback=lambda _: gone.set())
    await in_thread(dev.disconnect)
    await asyncio.wait_for(gone.wait(), 5)
    assert not client.is_connected

    gone.clear()
    client = await connected(vble, dev, disconnected_callback=lambda _: gone.set())
    await in_thread(dev.stop)
    await asyncio.wait_for(gone.wait(), 5)
    assert not client.is_connected


async def test_two_devices_at_once(vble: VBleHandle) -> None:
    first = vble.add_device(table(), adv_uuids=[SVC], name="Neckline-0001")
    second = vble.add_device(table(), adv_uuids=[SVC], name="Neckline-0002")
    a = await connected(vble, first)
    b = await connected(vble, second)
    got_a: list[bytes] = []
    got_b: list[bytes] = []
    try:
        await a.start_notify(STREAM, lambda _, d: got_a.append(bytes(d)))
        await b.start_notify(STREAM, lambda _, d: got_b.append(bytes(d)))
        await in_thread(first.notify, STREAM, b"from-1")
        await in_thread(second.notify, STREAM, b"from-2")
        await a.write_gatt_char(CMD, b"to-1", response=True)
        await b.write_gatt_char(CMD, b"to-2", response=True)
        for _ in range(100):
            if got_a and got_b:
                break
            await asyncio.sleep(0.02)
        assert got_a == [b"from-1"]
        assert got_b == [b"from-2"]
        assert [w[1] for w in first.writes] == [b"to-1"]
        assert [w[1] for w in second.writes] == [b"to-2"]
    finally:
        await a.disconnect()
        await b.disconnect()


# -- security ----------------------------------------------------------------------------------


async def test_encrypted_characteristics_fail_without_a_bond(vble: VBleHandle) -> None:
    dev = vble.add_device(table(), adv_uuids=[SVC])
    client = await connected(vble, dev)
    try:
        # BlueZ turns ATT "insufficient encryption" into NotPermitted "Not paired"
        # (src/gatt-client.c create_gatt_dbus_error); bleak passes it on as BleakDBusError.
        for attempt in (
            client.read_gatt_char(SECRET),
            client.write_gatt_char(SECURE_CP, b"\x07", response=True),
            client.start_notify(SECRET_STREAM, lambda *_: None),
        ):
            with pytest.raises(BleakDBusError) as info:
                await attempt
            assert info.value.dbus_error == "org.bluez.Error.NotPermitted"
            assert info.value.dbus_error_details == "Not paired"
        assert dev.writes == []
        assert dev.subscribed(SECRET_STREAM) == 0
    finally:
        await client.disconnect()


async def test_pair_then_reconnect_reencrypts_and_unpair_forgets(vble: VBleHandle) -> None:
    dev = vble.add_device(table(), adv_uuids=[SVC])
    client = await connected(vble, dev)
    try:
        await client.pair()
        assert await client.read_gatt_char(SECRET) == b"secret"
        await client.write_gatt_char(SECURE_CP, b"\x07", response=True)
        state = vble.faults.device(dev.address)
        assert state is not None and state["bonded"] and state["encrypted"]
    finally:
        await client.disconnect()

    # A later connection is encrypted with the stored key, without pairing again.
    ble_device, adv = await scan_for(dev.address)
    assert adv.platform_data[1]["Paired"] is True
    assert adv.platform_data[1]["Bonded"] is True
    client = BleakClient(ble_device, timeout=5)
    await client.connect()
    try:
        assert await client.read_gatt_char(SECRET) == b"secret"
        encrypts = [m for op, m in dev.events if op == "encrypt"]
        assert len(encrypts) == 1
        central = vble.faults.state()["adapter"]["address"].lower()
        assert bytes.fromhex(encrypts[0]["ltk"]) == dev.keys[central]
        await client.unpair()
    finally:
        await client.disconnect()
    assert vble.faults.state()["bonds"] == []

    ble_device, adv = await scan_for(dev.address)
    assert adv.platform_data[1]["Paired"] is False
    async with BleakClient(ble_device, timeout=5) as client:
        with pytest.raises(BleakDBusError):
            await client.read_gatt_char(SECRET)


async def test_device_that_lost_its_key_leaves_the_link_unencrypted(vble: VBleHandle) -> None:
    dev = vble.add_device(table(), adv_uuids=[SVC])
    async with BleakClient((await scan_for(dev.address))[0], timeout=5) as client:
        await client.pair()
    dev.keys.clear()  # e.g. the wearable was reflashed
    async with BleakClient((await scan_for(dev.address))[0], timeout=5) as client:
        with pytest.raises(BleakDBusError) as info:
            await client.read_gatt_char(SECRET)
        assert info.value.dbus_error_details == "Not paired"
    state = vble.faults.device(dev.address)
    assert state is not None and state["stats"]["bond_broken"] == 1


# -- faults ------------------------------------------------------------------------------------


async def test_connect_in_progress_error(vble: VBleHandle) -> None:
    dev = vble.add_device(table(), adv_uuids=[SVC])
    ble_device, _ = await scan_for(dev.address)
    vble.faults.fail_next_connect(dev.address, "in_progress")
    client = BleakClient(ble_device, timeout=5)
    with pytest.raises(BleakDBusError) as info:
        await client.connect()
    assert info.value.dbus_error == "org.bluez.Error.InProgress"
    # Only the next connect was poisoned.
    await client.connect()
    await client.disconnect()


async def test_le_connection_abort_by_local_is_retried_by_bleak(vble: VBleHandle) -> None:
    dev = vble.add_device(table(), adv_uuids=[SVC])
    ble_device, _ = await scan_for(dev.address)
    vble.faults.fail_next_connect(dev.address, "abort_by_local")
    async with BleakClient(ble_device, timeout=5) as client:
        assert await client.read_gatt_char(STATUS)
    connects = [m for op, m in dev.events if op == "connect"]
    assert len(connects) == 2  # the aborted link and bleak's retry
    state = vble.faults.device(dev.address)
    assert state is not None and state["stats"]["injected_abort"] == 1


async def test_out_of_range_device_is_not_seen_and_cannot_connect(vble: VBleHandle) -> None:
    dev = vble.add_device(table(), adv_uuids=[SVC])
    ble_device, _ = await scan_for(dev.address)
    vble.faults.set_in_range(dev.address, False)
    vble.faults.set_connect_timeout(0.3)
    assert await BleakScanner.find_device_by_address(dev.address, timeout=0.5) is None
    # BlueZ answers Connect with Failed "le-connection-abort-by-local"; bleak then waits for
    # a Connected change that never comes, so the caller sees its connect timeout.
    client = BleakClient(ble_device, timeout=1.5)
    with pytest.raises(asyncio.TimeoutError):
        await client.connect()
    state = vble.faults.device(dev.address)
    assert state is not None and state["stats"]["connect_failed"] >= 1
    vble.faults.set_in_range(dev.address, True)
    async with BleakClient((await scan_for(dev.address))[0], timeout=5) as client:
        assert client.is_connected


async def test_slow_discovery(vble: VBleHandle) -> None:
    dev = vble.add_device(table(), adv_uuids=[SVC])
    vble.faults.set_discovery_delay(1.0)
    assert await BleakScanner.find_device_by_address(dev.address, timeout=0.5) is None
    assert await BleakScanner.find_device_by_address(dev.address, timeout=3) is not None


async def test_injected_att_errors(vble: VBleHandle) -> None:
    dev = vble.add_device(table(), adv_uuids=[SVC])
    client = await connected(vble, dev)
    try:
        vble.faults.fail_next_att(dev.address, 0x0E, op="read")
        with pytest.raises(BleakGATTProtocolError) as info:
            await client.read_gatt_char(STATUS)
        assert info.value.code == BleakGATTProtocolErrorCode.UNLIKELY_ERROR
        vble.faults.fail_next_att(dev.address, 0x03, op="write", uuid=CMD)
        with pytest.raises(BleakGATTProtocolError) as info:
            await client.write_gatt_char(CMD, b"x", response=True)
        assert info.value.code == BleakGATTProtocolErrorCode.WRITE_NOT_PERMITTED
        # InProgress is retried by bleak until the characteristic is free.
        vble.faults.fail_next_att(dev.address, "in_progress", op="read", count=3)
        assert await client.read_gatt_char(STATUS)
        state = vble.faults.device(dev.address)
        assert state is not None and state["link_stats"]["injected_read"] == 4
        assert dev.writes == []
    finally:
        await client.disconnect()


# -- a MicroPython peripheral on the firmware's bluetooth shim ---------------------------------


MP_SVC = "6e6b00b0-8a3c-4b5e-9f1d-2c7a4e0b5d10"
MP_COUNTER = "6e6b00b1-8a3c-4b5e-9f1d-2c7a4e0b5d10"
MP_INBOX = "6e6b00b2-8a3c-4b5e-9f1d-2c7a4e0b5d10"


@pytest.mark.skipif(micropython_binary() is None or not SHIM.exists(),
                    reason="needs the micropython binary and firmware/sim/bluetooth.py")
async def test_micropython_peripheral_through_the_shim(
    vble: VBleHandle, tmp_path: Path
) -> None:
    address = "C0:DE:00:00:AA:01"
    env = {"NECKLINE_VBLE_BRIDGE": vble.bridge, "NECKLINE_VBLE_ADDR": address.lower()}
    script = Path(__file__).with_name("vble_mp_peripheral.py")
    with micropython_peripheral(script, env, tmp_path / "mp.stderr") as mp:
        ready = await asyncio.to_thread(mp.read_json)
        assert "ready" in ready, ready
        h_counter, h_inbox = ready["ready"]
        ble_device, adv = await scan_for(address)
        assert adv.local_name == "Neckline-MPY0"
        assert adv.service_uuids == [MP_SVC]
        values: list[int] = []
        three = asyncio.Event()

        def on_counter(_: object, data: bytearray) -> None:
            values.append(int.from_bytes(data, "little"))
            if len(values) >= 3:
                three.set()

        async with BleakClient(ble_device, timeout=5) as client:
            counter = client.services.get_characteristic(MP_COUNTER)
            inbox = client.services.get_characteristic(MP_INBOX)
            assert counter is not None and inbox is not None
            # The handles bleak sees are the ones the shim assigned (declaration = value - 1).
            assert (counter.handle, inbox.handle) == (h_counter - 1, h_inbox - 1)
            assert set(counter.properties) == {"read", "notify"}
            await client.start_notify(counter, on_counter)
            await asyncio.wait_for(three.wait(), 10)
            assert values == sorted(values) and len(set(values)) == len(values)
            await client.write_gatt_char(inbox, b"\x01hello", response=True)
            written = await asyncio.to_thread(mp.read_json)
            assert written == {"write": "0168656c6c6f"}


# -- more of what bluetoothd does ----------------------------------------------------------------


async def test_notification_flood_arrives_complete_and_in_order(vble: VBleHandle) -> None:
    # Enough to fill the virtual BlueZ's bus socket: its writes must wait, not drop the bus.
    dev = vble.add_device(table(), adv_uuids=[SVC], mtu=247)
    client = await connected(vble, dev)
    count = 10_000
    got: list[int] = []
    done = asyncio.Event()

    def on_value(_: object, data: bytearray) -> None:
        got.append(int.from_bytes(data[:4], "little"))
        if len(got) == count:
            done.set()

    def blast() -> None:
        for i in range(count):
            dev.notify(STREAM, i.to_bytes(4, "little") + bytes(200))

    try:
        await client.start_notify(STREAM, on_value)
        await asyncio.to_thread(blast)
        await asyncio.wait_for(done.wait(), 30)
        assert got == list(range(count))
    finally:
        await client.disconnect()


async def test_security_request_from_the_device_pairs(vble: VBleHandle) -> None:
    dev = vble.add_device(table(), adv_uuids=[SVC])
    client = await connected(vble, dev)
    try:
        await in_thread(dev.request_security)
        state = await asyncio.to_thread(vble.faults.wait_for, dev.address, "bonded")
        assert state["encrypted"]
        assert await client.read_gatt_char(SECRET) == b"secret"
    finally:
        await client.disconnect()


async def test_temporary_device_is_forgotten_after_discovery_stops(vble: VBleHandle) -> None:
    dev = vble.add_device(table(), adv_uuids=[SVC])
    vble.faults.set_temporary_timeout(0.2)
    await scan_for(dev.address)
    state = await asyncio.to_thread(vble.faults.wait_for, dev.address, "absent", 3)
    assert state["powered"] and not state["exported"]
    # It is found again by the next scan, as with BlueZ.
    await scan_for(dev.address)


async def test_disconnect_cancels_a_pending_connect(vble: VBleHandle) -> None:
    dev = vble.add_device(table(), adv_uuids=[SVC])
    ble_device, _ = await scan_for(dev.address)
    vble.faults.set_in_range(dev.address, False)
    vble.faults.set_connect_timeout(10)
    with pytest.raises(asyncio.TimeoutError):
        await BleakClient(ble_device, timeout=0.5).connect()
    # bleak gave up and called Disconnect, which cancels the attempt: when the device comes
    # back, nothing connects behind the application's back.
    vble.faults.set_in_range(dev.address, True)
    await asyncio.sleep(0.3)
    state = vble.faults.device(dev.address)
    assert state is not None and not state["connected"]
    assert not [op for op, _ in dev.events if op == "connect"]
    async with BleakClient((await scan_for(dev.address))[0], timeout=5) as client:
        assert client.is_connected


async def test_unanswered_request_times_out_and_drops_the_link(vble: VBleHandle) -> None:
    dev = vble.add_device(table(), adv_uuids=[SVC])
    vble.faults.set_att_timeout(0.3)
    gone = asyncio.Event()
    client = await connected(vble, dev, disconnected_callback=lambda _: gone.set())
    dev.silent = True
    with pytest.raises(BleakDBusError) as info:
        await client.read_gatt_char(STATUS)
    assert (info.value.dbus_error, info.value.dbus_error_details) == (
        "org.bluez.Error.Failed", "Operation failed")
    await asyncio.wait_for(gone.wait(), 5)
    assert await asyncio.to_thread(dev.wait, lambda: dev.link is None)


def test_bad_bridge_input_is_counted_and_survived(vble: VBleHandle) -> None:
    host, _, port = vble.bridge.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as bad:
        bad.sendall(b'{"op": "hello", "addr": "not-an-address"}\n')
        assert bad.recv(100) == b""  # an unusable hello ends the session

    address = "C0:DE:00:00:BB:01"
    lines = [
        b"this is not json",
        b'{"op": "adv", "interval_us": 100000}',           # before hello
        json.dumps({"op": "hello", "addr": address.lower(), "addr_type": 0, "proto": 1,
                    "name": "raw"}).encode(),
        b'{"op": "register", "services": [{"uuid": "zz", "handle": 1}]}',
        b'{"op": "frobnicate"}',
        b'{"op": "notify", "conn": 99, "handle": 3, "data": "00"}',
        b'{"op": "read_resp", "id": 999, "status": 0, "data": ""}',
        b'{"op": "adv", "interval_us": 100000, "adv": "0201", "resp": "", "connectable": true}',
    ]
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(b"\n".join(lines) + b"\n")
        state = vble.faults.wait_for(address, "advertising")
        assert state["bridge_stats"] == {
            "rejected_bad_json": 1, "rejected_before_hello": 1, "rejected_bad_table": 1,
            "unknown_op": 1, "notify_without_link": 1, "rejected_unexpected_answer": 1,
            "rejected_bad_adv": 1,
        }
