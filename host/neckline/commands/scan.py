"""`neckline scan`: list the Neckline wearers in range."""

from __future__ import annotations

import argparse
import asyncio
import sys

from neckline.link.allowlist import AllowList
from neckline.link.discovery import AllowPolicy, Sighting, WearerFinder


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "scan",
        help="list Neckline wearers in range",
        description=(
            "Scan for devices advertising the Neckline service and list each with its address, "
            "name, signal strength and whether this computer is bonded with it. ALLOWED says "
            "whether `neckline run` would connect to it (bonded, or on the allow-list)."
        ),
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to listen")
    parser.set_defaults(func=_run)


async def scan(duration: float, allow_list: AllowList) -> list[Sighting]:
    finder = WearerFinder(AllowPolicy.from_allow_list(allow_list))
    return await finder.scan(duration)


def format_sightings(sightings: list[Sighting]) -> str:
    rows = [("ADDRESS", "NAME", "RSSI", "BONDED", "ALLOWED")]
    for s in sightings:
        rows.append((
            s.address, s.name or "-", f"{s.rssi}", "yes" if s.bonded or s.paired else "no",
            "yes" if s.allowed else "no",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _run(args: argparse.Namespace) -> int:
    if args.timeout <= 0:
        print("neckline scan: --timeout must be positive", file=sys.stderr)
        return 2
    sightings = asyncio.run(scan(args.timeout, AllowList()))
    if not sightings:
        print(f"no Neckline wearers heard in {args.timeout:g} s")
        return 1
    print(format_sightings(sightings))
    return 0
