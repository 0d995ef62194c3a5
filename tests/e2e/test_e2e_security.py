"""End to end, security: a central without a bond cannot use the control point and cannot read
posture data from the real firmware; after pairing the same central can (so the refusals are
the device's security, not a broken link). Subscribing is
allowed (CCCDs are never protected) but no posture notification reaches an unencrypted link.

The wearer is the real firmware under MicroPython on the virtual BlueZ, driven with the
unmodified bleak; it is not calibrated by a button press, so a CALIBRATE that got through would
show in its status.
"""

from __future__ import annotations

import asyncio

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakDBusError, BleakError

from neckline.control import encode_calibrate, encode_request_raw
from neckline.protocol import CONFIG_UUID, CONTROL_POINT_UUID, POSTURE_UUID
from neckline.vsim import SimStack
from tests.e2e.wearer_fixtures import needs_micropython

pytestmark = needs_micropython


async def _refused(op: object) -> str:
    with pytest.raises((BleakDBusError, BleakError)) as info:
        await op  # type: ignore[misc]
    return str(info.value)


async def test_unbonded_central_gets_neither_control_nor_posture(sim: SimStack) -> None:
    wearer = sim.add_wearer(1, calibrate=False)
    sim.wait_advertising(1)
    device = await BleakScanner.find_device_by_address(wearer.address, timeout=20)
    assert device is not None, "the virtual wearer was not heard"
    received: list[bytes] = []
    async with BleakClient(device, timeout=30) as client:
        assert not (sim.faults.device(wearer.address) or {}).get("encrypted", True)
        for msg in (
            await _refused(client.write_gatt_char(CONTROL_POINT_UUID, encode_calibrate(),
                                                  response=True)),
            await _refused(client.write_gatt_char(CONTROL_POINT_UUID,
                                                  encode_request_raw(0, 100), response=True)),
            await _refused(client.read_gatt_char(CONFIG_UUID)),
        ):
            assert "Not paired" in msg, msg
        # The posture value is never readable (notify only): refused either way.
        msg = await _refused(client.read_gatt_char(POSTURE_UUID))
        assert "Not paired" in msg or "Read Not Permitted" in msg, msg
        # CCCDs are never protected (docs/ble.md): subscribing works, but the firmware sends
        # posture only to encrypted links.
        await client.start_notify(POSTURE_UUID, lambda _c, data: received.append(bytes(data)))
        await asyncio.sleep(3.0)  # 15 s of device time: a stream would have sent ~150 samples
        assert received == []
        assert not wearer.status()["calibrated"], "an unbonded CALIBRATE got through"

        # The same central, once bonded, is served: the refusals above were security.
        await client.pair()
        got = asyncio.Event()

        def on_posture(_c: object, data: bytearray) -> None:
            received.append(bytes(data))
            got.set()

        await client.stop_notify(POSTURE_UUID)
        await client.start_notify(POSTURE_UUID, on_posture)
        await asyncio.wait_for(got.wait(), 30)
        await client.start_notify(CONTROL_POINT_UUID, lambda _c, _d: None)
        await client.write_gatt_char(CONTROL_POINT_UUID, encode_calibrate(), response=True)
        await client.read_gatt_char(CONFIG_UUID)
    assert (sim.faults.device(wearer.address) or {}).get("bonded")
