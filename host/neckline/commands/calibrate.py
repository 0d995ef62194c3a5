"""`neckline calibrate [ADDRESS]`: capture the wearer's neutral posture now."""

from __future__ import annotations

import argparse
import asyncio

from neckline.errors import NecklineError
from neckline.link.allowlist import AllowList, normalise_address
from neckline.link.discovery import AllowPolicy, WearerFinder
from neckline.link.session import Session
from neckline.link.settings import LinkSettings
from neckline.protocol import CalibrationOutcome, CalibrationResult

ADVICE: dict[CalibrationResult, str] = {
    CalibrationResult.MOVING: "too much movement; sit still, look straight ahead and try again",
    CalibrationResult.NOT_WORN: "the wearer does not seem to be worn; put it on and try again",
    CalibrationResult.NO_IMU: "the motion sensor did not answer; the wearer needs attention",
    CalibrationResult.TIMEOUT: "the capture did not finish in time; try again",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "calibrate",
        help="capture the neutral head posture",
        description=(
            "Sit upright and look straight ahead, then run this: the wearer captures your "
            "neutral posture, and angles are measured from it afterwards. Without ADDRESS the "
            "only wearer on the allow-list is used."
        ),
    )
    parser.add_argument("address", nargs="?", help="the wearer's address (see `neckline scan`)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait for the wearer and for the result")
    parser.set_defaults(func=_run)


def choose_address(address: str | None, allow_list: AllowList) -> str:
    if address is not None:
        try:
            return normalise_address(address)
        except ValueError as exc:
            raise NecklineError(str(exc)) from None
    known = allow_list.addresses()
    if len(known) == 1:
        return known[0]
    if not known:
        raise NecklineError("no wearer is paired yet; run `neckline pair ADDRESS` first")
    raise NecklineError(f"several wearers are paired ({', '.join(known)}); name one")


async def calibrate(
    address: str, allow_list: AllowList, *, timeout: float = 30.0,
    settings: LinkSettings | None = None,
) -> CalibrationOutcome:
    finder = WearerFinder(AllowPolicy.from_allow_list(allow_list))
    sighting = await finder.find(address, timeout)
    if sighting is None:
        raise NecklineError(
            f"{address} was not heard within {timeout:g} s (is it on, close by, and paired? "
            "`neckline scan` shows what is in range)"
        )
    session = Session(sighting.device, sink=lambda _: None, name=sighting.name,
                      settings=settings or LinkSettings())
    await session.open()
    try:
        return await session.calibrate(timeout)
    except TimeoutError:
        raise NecklineError(f"{address} sent no calibration result within {timeout:g} s") from None
    finally:
        await session.close("calibration done")


def describe(outcome: CalibrationOutcome) -> str:
    if outcome.result is CalibrationResult.OK:
        def deg(cdeg: int | None) -> str:
            return "unknown" if cdeg is None else f"{cdeg / 100:+.2f}°"

        return (f"calibrated: neutral posture captured (pitch {deg(outcome.pitch_cdeg)}, "
                f"roll {deg(outcome.roll_cdeg)})")
    return f"calibration failed: {outcome.result.name} — {ADVICE[outcome.result]}"


def _run(args: argparse.Namespace) -> int:
    allow_list = AllowList()
    address = choose_address(args.address, allow_list)
    outcome = asyncio.run(calibrate(address, allow_list, timeout=args.timeout))
    print(describe(outcome))
    return 0 if outcome.result is CalibrationResult.OK else 1
