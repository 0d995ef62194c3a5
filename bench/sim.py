"""Benchmark the simulator: one simulated week at 100 Hz, orientation plus sensor model.

Prints ONE JSON line. Also times the fast exposure path for one 12-week person, the unit of
work of a validation study. Usage: python bench/sim.py [--days 7] [--rate 100] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import time

from neckline.sim import (
    ImuModel,
    RenderConfig,
    SensorConfig,
    generate_schedule,
    render,
    simulate_person,
)
from neckline.sim.wearer import DAY_S


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    t0 = time.perf_counter()
    schedule = generate_schedule(args.seed, duration_s=args.days * DAY_S)
    imu = ImuModel(args.seed, SensorConfig(rate_hz=args.rate))
    samples = 0
    render_s = 0.0
    sensor_s = 0.0
    mark = time.perf_counter()
    for chunk in render(schedule, args.seed, RenderConfig(rate_hz=args.rate)):
        now = time.perf_counter()
        render_s += now - mark
        imu.process_chunk(chunk)
        mark = time.perf_counter()
        sensor_s += mark - now
        samples += len(chunk)
    total = time.perf_counter() - t0

    t1 = time.perf_counter()
    person = simulate_person(args.seed, days=84.0)
    person_s = time.perf_counter() - t1

    print(json.dumps({
        "bench": "sim",
        "days": args.days,
        "rate_hz": args.rate,
        "samples": samples,
        "seconds": round(total, 3),
        "render_seconds": round(render_s, 3),
        "sensor_seconds": round(sensor_s, 3),
        "samples_per_s": round(samples / total),
        "realtime_factor": round(args.days * DAY_S / total, 1),
        "person_12wk_seconds": round(person_s, 4),
        "person_12wk_headaches": len(person.diary),
    }))


if __name__ == "__main__":
    main()
