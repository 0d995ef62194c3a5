"""Finding Neckline wearers: scan by the Neckline service UUID, apply the allow-list.

Devices are recognised by the service UUID they advertise (docs/protocol.md §3.3), never by
name. By default a device is *allowed* only if BlueZ has a bond with it (Device1 Paired or
Bonded) or its address is on the allow-list (`neckline pair` puts it there); any other Neckline
device in range is ignored, with one log line per address saying why and what to do.

One process has one BlueZ discovery session per D-Bus client, and a second StartDiscovery from
the same client fails with InProgress, so every wearer of a process shares one `WearerFinder`:
the scanner runs while at least one caller is looking and stops when the last one is done.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError

from neckline.link.allowlist import AllowList
from neckline.protocol import SERVICE_UUID

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sighting:
    """One Neckline device heard advertising."""

    address: str
    name: str | None
    rssi: int
    paired: bool
    bonded: bool
    allowed: bool
    device: BLEDevice
    seen_mono: float


@dataclass(frozen=True)
class AllowPolicy:
    """Which Neckline devices this host may connect to."""

    allow_list: frozenset[str] = frozenset()
    allow_any: bool = False  # connect to every Neckline device (tests, `neckline pair`)

    @classmethod
    def from_allow_list(cls, allow_list: AllowList, allow_any: bool = False) -> AllowPolicy:
        return cls(frozenset(allow_list.addresses()), allow_any)

    def allows(self, address: str, bonded: bool) -> bool:
        return self.allow_any or bonded or address.upper() in self.allow_list


def _props(device: BLEDevice, adv: AdvertisementData) -> dict[str, Any]:
    """BlueZ's Device1 properties, where the backend gives them (empty elsewhere)."""
    platform = adv.platform_data
    if len(platform) > 1 and isinstance(platform[1], dict):
        return platform[1]
    details = device.details
    if isinstance(details, dict) and isinstance(details.get("props"), dict):
        props: dict[str, Any] = details["props"]
        return props
    return {}


def is_neckline(adv: AdvertisementData) -> bool:
    return SERVICE_UUID in (u.lower() for u in adv.service_uuids)


class WearerFinder:
    """The shared scanner of one process."""

    def __init__(self, policy: AllowPolicy | None = None) -> None:
        self.policy = policy or AllowPolicy()
        self._scanner: BleakScanner | None = None
        self._users = 0
        self._lock = asyncio.Lock()
        self._seen: dict[str, Sighting] = {}
        self._waiters: dict[str, list[asyncio.Future[Sighting]]] = {}
        self._ignored: set[str] = set()

    # --- scanner lifetime --------------------------------------------------------------------
    @asynccontextmanager
    async def _scanning(self) -> Any:
        async with self._lock:
            if self._users == 0:
                scanner = BleakScanner(self._on_advert, service_uuids=[SERVICE_UUID])
                await scanner.start()
                self._scanner = scanner
            self._users += 1
        try:
            yield
        finally:
            async with self._lock:
                self._users -= 1
                if self._users == 0 and self._scanner is not None:
                    scanner, self._scanner = self._scanner, None
                    with suppress(BleakError, OSError):
                        await scanner.stop()

    def _on_advert(self, device: BLEDevice, adv: AdvertisementData) -> None:
        if not is_neckline(adv):
            return
        props = _props(device, adv)
        paired = bool(props.get("Paired", False))
        bonded = bool(props.get("Bonded", False))
        address = device.address.upper()
        allowed = self.policy.allows(address, paired or bonded)
        sighting = Sighting(
            address=address, name=adv.local_name or device.name, rssi=adv.rssi,
            paired=paired, bonded=bonded, allowed=allowed, device=device,
            seen_mono=time.monotonic(),
        )
        self._seen[address] = sighting
        if not allowed:
            if address not in self._ignored:
                self._ignored.add(address)
                log.info(
                    "ignoring Neckline device %s (%s): not bonded and not on the allow-list; "
                    "`neckline pair %s` adds it", address, sighting.name or "no name", address,
                )
            return
        for waiter in self._waiters.pop(address, []):
            if not waiter.done():
                waiter.set_result(sighting)

    # --- queries -----------------------------------------------------------------------------
    async def scan(self, duration: float) -> list[Sighting]:
        """Every Neckline device heard within `duration` seconds (allowed or not), by RSSI."""
        started = time.monotonic()
        async with self._scanning():
            await asyncio.sleep(duration)
        found = [s for s in self._seen.values() if s.seen_mono >= started]
        return sorted(found, key=lambda s: (-s.rssi, s.address))

    async def find(self, address: str, timeout: float) -> Sighting | None:
        """Wait until the allowed device `address` is heard advertising now; None on timeout.

        A fresh advertisement is required (not an old sighting): it shows the wearer is in range
        and connectable before the host spends a connect attempt on it.
        """
        key = address.upper()
        waiter: asyncio.Future[Sighting] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, []).append(waiter)
        try:
            async with self._scanning():
                done, _ = await asyncio.wait({waiter}, timeout=timeout)
                return waiter.result() if done else None
        finally:
            waiters = self._waiters.get(key, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(key, None)
            waiter.cancel()

    def sightings(self) -> Iterator[Sighting]:
        return iter(list(self._seen.values()))

    def last_sighting(self, address: str) -> Sighting | None:
        """The latest advertisement heard from `address`, allowed or not."""
        return self._seen.get(address.upper())
