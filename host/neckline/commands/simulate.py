"""`neckline simulate imu|exposure|headaches`: write simulated data files."""

from __future__ import annotations

import argparse
import math
from datetime import datetime, timedelta
from pathlib import Path

from neckline.errors import NecklineError
from neckline.sim.exposure import StrainParams, schedule_exposure, trace_exposure
from neckline.sim.files import (
    write_exposure_csv,
    write_headache_csv,
    write_imu_stream,
)
from neckline.sim.headache import HeadacheConfig
from neckline.sim.person import simulate_person
from neckline.sim.render import RenderConfig, render
from neckline.sim.sensor import SensorConfig
from neckline.sim.stream import simulate_imu
from neckline.sim.timebase import DEFAULT_START, iso, parse_utc, require_minute
from neckline.sim.wearer import DAY_S, generate_schedule

MAX_DAYS = 3660.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="write simulated IMU, exposure or headache files",
        description="Simulate a wearer, the neck sensor and a headache-prone person "
        "(see docs/simulation.md for the models and file formats).",
    )
    sub = parser.add_subparsers(dest="simulate_command", metavar="WHAT", required=True)

    imu = sub.add_parser("imu", help="IMU samples as the firmware replay tool reads them")
    _common(imu, default_hours=1.0, default_start=DEFAULT_START + timedelta(hours=9))
    imu.add_argument("--truth", type=Path, help="also write ground truth to this CSV")
    imu.add_argument("--raw", type=Path, help="also write raw MPU-6050 register counts here")
    imu.add_argument("--rate", type=float, default=100.0, help="sample rate in Hz (default 100)")
    imu.add_argument("--ideal", action="store_true",
                     help="error-free sensor: no noise, bias, scale or mounting errors")
    imu.set_defaults(func=_run_imu)

    exp = sub.add_parser("exposure", help="per-minute strain exposure")
    _common(exp, default_hours=7 * 24.0)
    _strain_options(exp)
    exp.add_argument("--from-trace", action="store_true",
                     help="measure on a rendered 100 Hz trace instead of the schedule (slow)")
    exp.add_argument("--rate", type=float, default=100.0,
                     help="render rate for --from-trace in Hz (default 100)")
    exp.add_argument("--all-time", action="store_true",
                     help="count every minute as worn (the wearer's true exposure)")
    exp.set_defaults(func=_run_exposure)

    head = sub.add_parser("headaches", help="a headache diary (and the matching exposure)")
    _common(head, default_hours=84 * 24.0)
    _strain_options(head)
    head.add_argument("--exposure-out", type=Path,
                      help="also write the same person's observed exposure here")
    head.add_argument("--rate-per-week", type=float, default=2.5,
                      help="mean headaches per week (default 2.5)")
    head.add_argument("--effect", type=float, default=0.0,
                      help="log odds ratio per hour of strain in the lag window (0 = no effect)")
    head.add_argument("--lag", default="6,12", help="lag window START,END in hours (default 6,12)")
    head.add_argument("--refractory", type=float, default=12.0,
                      help="minimum hours between onsets (default 12)")
    head.add_argument("--prodrome", action="store_true",
                      help="make posture worse in the hours before each onset")
    head.set_defaults(func=_run_headaches)


def _common(
    p: argparse.ArgumentParser, default_hours: float, default_start: datetime = DEFAULT_START
) -> None:
    p.add_argument("--out", type=Path, required=True, help="CSV file to write")
    p.add_argument("--seed", type=int, default=0, help="simulated person (default 0)")
    p.add_argument("--start", default=iso(default_start),
                   help=f"first UTC minute, ISO 8601 (default {iso(default_start)})")
    default = f"{default_hours / 24:g} days" if default_hours >= 24 else f"{default_hours:g} h"
    span = p.add_mutually_exclusive_group()
    span.add_argument("--days", type=float, help=f"length in days (default {default})")
    span.add_argument("--hours", type=float, help=f"length in hours (default {default})")
    p.set_defaults(default_hours=default_hours)


def _strain_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threshold", type=float, default=25.0, help="strain flexion, degrees")
    p.add_argument("--hold", type=float, default=60.0, help="minimum bout length, seconds")
    p.add_argument("--gap", type=float, default=5.0, help="longest gap inside a bout, seconds")


def _start(args: argparse.Namespace) -> datetime:
    try:
        return require_minute(parse_utc(args.start))
    except ValueError as exc:
        raise NecklineError(f"--start: {exc}") from exc


def _duration_s(args: argparse.Namespace) -> float:
    if args.days is not None:
        seconds = args.days * DAY_S
    elif args.hours is not None:
        seconds = args.hours * 3600.0
    else:
        seconds = args.default_hours * 3600.0
    if not (math.isfinite(seconds) and seconds >= 1.0):
        raise NecklineError("the span must be at least one second")
    if seconds > MAX_DAYS * DAY_S:
        raise NecklineError(f"the span is limited to {MAX_DAYS:g} days")
    return float(round(seconds))


def _output(path: Path) -> Path:
    if not path.parent.is_dir():
        raise NecklineError(f"{path}: the directory {path.parent} does not exist")
    return path


def _strain(args: argparse.Namespace) -> StrainParams:
    try:
        return StrainParams(args.threshold, args.hold, args.gap)
    except ValueError as exc:
        raise NecklineError(str(exc)) from exc


def _rate(value: float) -> float:
    if not (math.isfinite(value) and 1.0 <= value <= 2000.0):
        raise NecklineError("--rate must be between 1 and 2000 Hz")
    return value


def _run_imu(args: argparse.Namespace) -> int:
    out = _output(args.out)
    truth = _output(args.truth) if args.truth else None
    raw = _output(args.raw) if args.raw else None
    rate = _rate(args.rate)
    sensor = SensorConfig.ideal(rate) if args.ideal else SensorConfig(rate_hz=rate)
    stream = simulate_imu(args.seed, _start(args), _duration_s(args),
                          RenderConfig(rate_hz=rate), sensor)
    try:
        rows = write_imu_stream(stream, out, truth, raw)
    except OSError as exc:
        raise NecklineError(f"cannot write IMU files: {exc}") from exc
    print(f"wrote {rows} samples at {rate:g} Hz to {out}")
    return 0


def _run_exposure(args: argparse.Namespace) -> int:
    out = _output(args.out)
    params = _strain(args)
    schedule = generate_schedule(args.seed, _start(args), _duration_s(args))
    if args.from_trace:
        if args.all_time:
            raise NecklineError("--all-time needs the schedule path, not --from-trace")
        chunks = render(schedule, args.seed, RenderConfig(rate_hz=_rate(args.rate)))
        exposure = trace_exposure(chunks, params)
    else:
        exposure = schedule_exposure(schedule, params, worn_only=not args.all_time)
    try:
        write_exposure_csv(out, exposure)
    except OSError as exc:
        raise NecklineError(f"cannot write {out}: {exc}") from exc
    wear = exposure.wear_s.sum()
    share = exposure.strain_s.sum() / wear if wear > 0 else math.nan
    print(f"wrote {len(exposure)} minutes to {out} "
          f"(worn {wear / 3600:.1f} h, strain {100 * share:.1f} % of wear)")
    return 0


def _lag(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError as exc:
        raise NecklineError(f"--lag must look like START,END in hours, got {text!r}") from exc
    return lo, hi


def _run_headaches(args: argparse.Namespace) -> int:
    out = _output(args.out)
    exposure_out = _output(args.exposure_out) if args.exposure_out else None
    try:
        config = HeadacheConfig(
            rate_per_week=args.rate_per_week,
            log_or_per_hour=args.effect,
            lag_h=_lag(args.lag),
            refractory_h=args.refractory,
            prodrome=args.prodrome,
        )
    except ValueError as exc:
        raise NecklineError(str(exc)) from exc
    person = simulate_person(
        args.seed, _start(args), _duration_s(args) / DAY_S, headache=config,
        strain=_strain(args),
    )
    try:
        write_headache_csv(out, person.diary)
        if exposure_out:
            write_exposure_csv(exposure_out, person.observed)
    except OSError as exc:
        raise NecklineError(f"cannot write headache files: {exc}") from exc
    print(f"wrote {len(person.diary)} headaches to {out}")
    return 0
