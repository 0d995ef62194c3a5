"""The virtual BlueZ's parts on their own: AD parsing, GATT tables, the BlueZ error mapping (and
what bleak makes of it), bonds on disk, the EAGAIN-proof bus socket, restart and CLI."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from bleak.backends.bluezdbus.utils import assert_gatt_reply
from bleak.exc import BleakDBusError, BleakGATTProtocolError, BleakGATTProtocolErrorCode
from dbus_fast import Message, MessageType

from neckline.vble import running_vble
from neckline.vble.advdata import parse_advertisement
from neckline.vble.bonds import Bond, BondStore
from neckline.vble.busconn import _PatientSocket, connect_bus
from neckline.vble.errors import gatt_error
from neckline.vble.gatt import TableError, parse_table

NECKLINE_SVC = "6e6b0001-8a3c-4b5e-9f1d-2c7a4e0b5d10"


def ad(ad_type: int, data: bytes) -> bytes:
    return bytes([len(data) + 1, ad_type]) + data


# -- advertising data --------------------------------------------------------------------------


def test_neckline_advertisement_is_parsed_like_bluez() -> None:
    svc_le = bytes.fromhex(NECKLINE_SVC.replace("-", ""))[::-1]
    adv = ad(0x01, b"\x06") + ad(0x07, svc_le) + ad(0x19, struct.pack("<H", 0x0540))
    resp = (ad(0x09, b"Neckline-5D10") + ad(0xFF, b"\xff\x0f\x01\x02")
            + ad(0x16, b"\x0f\x18\x57") + ad(0x03, b"\x0f\x18\x0a\x18") + ad(0x0A, b"\xf8"))
    parsed = parse_advertisement(adv + b"\x00\x00", resp)
    assert parsed.errors == []
    assert parsed.flags == 0x06
    assert parsed.name == "Neckline-5D10"
    assert parsed.appearance == 0x0540
    assert parsed.tx_power == -8
    assert parsed.uuids == [NECKLINE_SVC, "0000180f-0000-1000-8000-00805f9b34fb",
                            "0000180a-0000-1000-8000-00805f9b34fb"]
    assert parsed.manufacturer_data == {0x0FFF: b"\x01\x02"}
    assert parsed.service_data == {"0000180f-0000-1000-8000-00805f9b34fb": b"\x57"}


def test_complete_name_beats_short_name_in_either_packet() -> None:
    assert parse_advertisement(ad(0x09, b"Full"), ad(0x08, b"Fu")).name == "Full"
    assert parse_advertisement(ad(0x08, b"Fu"), ad(0x09, b"Full")).name == "Full"


@pytest.mark.parametrize("payload", [
    b"\x05\x09ab",                # length runs past the end
    ad(0x03, b"\x0f"),            # odd 16-bit UUID list
    ad(0x19, b"\x40"),            # short appearance
    ad(0xFF, b"\x01"),            # manufacturer data without a full company id
])
def test_malformed_advertising_data_is_reported_not_raised(payload: bytes) -> None:
    parsed = parse_advertisement(ad(0x01, b"\x06") + payload)
    assert parsed.flags == 0x06
    assert len(parsed.errors) == 1


# -- GATT tables -------------------------------------------------------------------------------


def table(**overrides: object) -> list[dict[str, object]]:
    char: dict[str, object] = {"uuid": "2a19", "flags": 0x0012 | 0x0200, "decl_handle": 2,
                               "value_handle": 3, "cccd_handle": 4,
                               "descs": [{"uuid": "2901", "flags": 2, "handle": 5}]}
    char.update(overrides)
    return [{"uuid": "180f", "handle": 1, "chars": [char]}]


def test_table_is_typed_and_security_stays_invisible() -> None:
    parsed = parse_table(table())
    (service,) = parsed.services
    (char,) = service.characteristics
    assert service.uuid == "0000180f-0000-1000-8000-00805f9b34fb"
    assert char.uuid == "00002a19-0000-1000-8000-00805f9b34fb"
    # Over ATT a central only learns the properties byte, never the permissions.
    assert char.bluez_flags == ["read", "notify"]
    assert [(d.uuid[4:8], d.handle) for d in char.descriptors] == [("2902", 4), ("2901", 5)]
    assert parsed.characteristic(3) is char


@pytest.mark.parametrize(("overrides", "message"), [
    ({"value_handle": 2}, "used twice"),
    ({"uuid": "not-a-uuid"}, "not a Bluetooth UUID"),
    ({"decl_handle": 0}, "handle 1..65535"),
    ({"flags": "read"}, "'flags'"),
    ({"descs": "none"}, "'descs' must be a list"),
])
def test_bad_tables_are_rejected_with_the_reason(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(TableError, match=message):
        parse_table(table(**overrides))


# -- BlueZ's error mapping and what bleak raises -------------------------------------------------


def error_reply(att: int) -> Message:
    err = gatt_error(att)
    call = Message(destination="org.bluez", path="/x", interface="org.bluez.GattCharacteristic1",
                   member="ReadValue", serial=1)
    reply = Message.new_error(call, err.name, err.text)
    assert reply.message_type == MessageType.ERROR
    return reply


@pytest.mark.parametrize(("att", "name", "text"), [
    (0x05, "org.bluez.Error.NotPermitted", "Not paired"),
    (0x0F, "org.bluez.Error.NotPermitted", "Not paired"),
    (0x0C, "org.bluez.Error.NotPermitted", "Not paired"),
    (0x02, "org.bluez.Error.NotPermitted", "Read not permitted"),
    (0x03, "org.bluez.Error.NotPermitted", "Write not permitted"),
    (0x08, "org.bluez.Error.NotAuthorized", "Operation Not Authorized"),
    (0x06, "org.bluez.Error.NotSupported", "Operation is not supported"),
    (0x07, "org.bluez.Error.InvalidArguments", "Invalid offset"),
    (0x0D, "org.bluez.Error.InvalidArguments", "Invalid Length"),
    (0x0E, "org.bluez.Error.Failed", "Operation failed with ATT error: 0x0e"),
    (0x00, "org.bluez.Error.Failed", "Operation failed"),
])
def test_att_errors_map_like_bluez_gatt_client(att: int, name: str, text: str) -> None:
    err = gatt_error(att)
    assert (err.name, err.text) == (name, text)


@pytest.mark.parametrize(("att", "code"), [
    (0x02, BleakGATTProtocolErrorCode.READ_NOT_PERMITTED),
    (0x03, BleakGATTProtocolErrorCode.WRITE_NOT_PERMITTED),
    (0x08, BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHORIZATION),
    (0x06, BleakGATTProtocolErrorCode.REQUEST_NOT_SUPPORTED),
    (0x0E, BleakGATTProtocolErrorCode.UNLIKELY_ERROR),
])
def test_bleak_turns_most_att_errors_back_into_codes(
    att: int, code: BleakGATTProtocolErrorCode
) -> None:
    with pytest.raises(BleakGATTProtocolError) as info:
        assert_gatt_reply(error_reply(att))
    assert info.value.code == code


@pytest.mark.parametrize("att", [0x05, 0x0F, 0x0C])
def test_bleak_reports_missing_encryption_as_a_dbus_error(att: int) -> None:
    # BlueZ folds three ATT codes into "Not paired"; bleak cannot tell them apart.
    with pytest.raises(BleakDBusError) as info:
        assert_gatt_reply(error_reply(att))
    assert not isinstance(info.value, BleakGATTProtocolError)
    assert info.value.dbus_error == "org.bluez.Error.NotPermitted"
    assert info.value.dbus_error_details == "Not paired"


# -- bonds ---------------------------------------------------------------------------------------


def test_bonds_survive_in_the_state_file(tmp_path: Path) -> None:
    path = tmp_path / "bonds.json"
    store = BondStore(path)
    store.store(Bond("c0:de:00:00:00:01", 0, "00" * 16, "Neckline-0001"))
    again = BondStore(path)
    bond = again.get("C0:DE:00:00:00:01")
    assert bond is not None and bond.name == "Neckline-0001"
    assert again.remove("c0:de:00:00:00:01")
    assert BondStore(path).all() == []


def test_unreadable_bond_file_starts_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "bonds.json"
    path.write_text('{"bonds": [{"address": "x"}, {"address": "C0:DE:00:00:00:02",'
                    ' "address_type": 0, "ltk": "zz"}]}')
    assert BondStore(path).all() == []
    assert caplog.text.count("ignoring malformed bond") == 2


# -- the bus socket ------------------------------------------------------------------------------


def test_full_socket_makes_send_wait_instead_of_failing() -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    patient = _PatientSocket(a)
    try:
        sent = 0
        while (n := patient.send(b"x" * 65536)) > 0:
            sent += n
        assert patient.stalls == 1
        b.setblocking(False)
        while True:
            try:
                b.recv(1 << 20)
            except BlockingIOError:
                break
        assert patient.send(b"y") == 1
    finally:
        a.close()
        b.close()


# -- a whole process: restart with bonds, and the CLI ------------------------------------------


def test_restart_exports_bonded_devices_and_cli_drives_it(tmp_path: Path) -> None:
    state_file = tmp_path / "bonds.json"
    BondStore(state_file).store(Bond("C0:DE:00:00:00:09", 0, "11" * 16, "Neckline-0009"))
    with running_vble(tmp_path / "run", state_file=state_file) as vble:

        async def managed() -> dict[str, dict[str, dict[str, object]]]:
            bus = await connect_bus(vble.dbus_address)
            try:
                reply = await bus.call(Message(
                    destination="org.bluez", path="/", member="GetManagedObjects",
                    interface="org.freedesktop.DBus.ObjectManager"))
                assert reply is not None and reply.message_type == MessageType.METHOD_RETURN
                return {p: {i: {k: v.value for k, v in props.items()}
                            for i, props in ifaces.items()}
                        for p, ifaces in reply.body[0].items()}
            finally:
                bus.disconnect()

        objects = asyncio.run(managed())
        device = objects["/org/bluez/hci0/dev_C0_DE_00_00_00_09"]["org.bluez.Device1"]
        assert device["Paired"] is True and device["Bonded"] is True
        assert device["Alias"] == "Neckline-0009"
        assert device["Connected"] is False and "RSSI" not in device
        adapter = objects["/org/bluez/hci0"]["org.bluez.Adapter1"]
        assert adapter["Powered"] is True
        assert adapter["Roles"] == ["central", "peripheral"]

        out = subprocess.run(
            [sys.executable, "-m", "neckline.vble", "ctl", "--control", vble.control, "state"],
            capture_output=True, text=True, timeout=30, check=True)
        assert json.loads(out.stdout)["bonds"] == ["C0:DE:00:00:00:09"]
        bad = subprocess.run(
            [sys.executable, "-m", "neckline.vble", "ctl", "--control", vble.control,
             "fail_next_connect", "addr=C0:DE:00:00:00:09", "error=nonsense"],
            capture_output=True, text=True, timeout=30, check=False)
        assert bad.returncode == 1 and "connect error must be one of" in bad.stderr
        daemon_pid = vble.dbus_pid
    assert vble.process.poll() is not None
    assert daemon_pid is not None and not Path(f"/proc/{daemon_pid}").exists()
