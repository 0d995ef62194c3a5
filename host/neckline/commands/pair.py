"""`neckline pair ADDRESS`: bond with a wearer and put it on the allow-list."""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass, replace

from bleak import BleakClient
from bleak.exc import BleakError

from neckline.errors import NecklineError
from neckline.link.allowlist import AllowList, Wearer, normalise_address
from neckline.link.discovery import AllowPolicy, Sighting, WearerFinder
from neckline.link.session import Session
from neckline.link.settings import LinkSettings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "pair",
        help="pair with a wearer and allow Neckline to connect to it",
        description=(
            "Connect to the wearer, check that it speaks this host's protocol version, pair and "
            "bond with it (BlueZ keeps the keys) and add its address to Neckline's allow-list. "
            "Find addresses with `neckline scan`."
        ),
    )
    parser.add_argument("address", help="the wearer's Bluetooth address, AA:BB:CC:DD:EE:FF")
    parser.add_argument("--timeout", type=float, default=20.0,
                        help="seconds to wait for the wearer to be heard")
    parser.add_argument(
        "--repair", action="store_true",
        help="forget the existing bond first (after the wearer was reset or paired elsewhere)",
    )
    parser.set_defaults(func=_run)


@dataclass(frozen=True)
class Paired:
    wearer: Wearer
    sighting: Sighting


async def _find(address: str, timeout: float) -> Sighting:
    finder = WearerFinder(AllowPolicy(allow_any=True))  # pairing is how a wearer gets allowed
    sighting = await finder.find(address, timeout)
    if sighting is None:
        raise NecklineError(
            f"{address} was not heard advertising the Neckline service within {timeout:g} s; "
            "is it switched on and close by?"
        )
    return sighting


async def pair(
    address: str, allow_list: AllowList, *, timeout: float = 20.0, repair: bool = False,
    settings: LinkSettings | None = None,
) -> Paired:
    key = normalise_address(address)
    sighting = await _find(key, timeout)
    if repair:
        try:
            await BleakClient(sighting.device).unpair()
        except BleakError as exc:
            raise NecklineError(f"could not forget the old bond with {key}: {exc}") from exc
        sighting = await _find(key, timeout)
    session = Session(
        sighting.device, sink=lambda _: None, name=sighting.name,
        settings=replace(settings or LinkSettings(), allow_pairing=True),
    )
    await session.open()  # connects, checks the version, pairs, proves encryption, sets time
    await session.close("paired")
    wearer = allow_list.add(key, sighting.name)
    return Paired(wearer, sighting)


def _run(args: argparse.Namespace) -> int:
    try:
        address = normalise_address(args.address)
    except ValueError as exc:
        raise NecklineError(str(exc)) from None
    allow_list = AllowList()
    result = asyncio.run(pair(address, allow_list, timeout=args.timeout, repair=args.repair))
    name = result.wearer.name or "wearer"
    print(f"paired with {name} ({result.wearer.address}); on the allow-list in {allow_list.path}")
    return 0
