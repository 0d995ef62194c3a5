"""Benchmark the simulator: one simulated week at 100 Hz, orientation plus sensor model.

    python bench/sim.py [--days 7] [--rate 100] [--seed 1] [--workers 1|2]

Prints ONE JSON line. Also times the fast exposure path for one 12-week person, the unit of
work of a validation study.

--workers 2 uses a second process. The week cannot be cut into independent days (filter
states, the temperature and the random streams run on across midnight), so the work is shared
as a pipeline instead: this process renders each chunk and hands it over in shared memory; the
helper runs the sensor model on the tail of the chunk while this process runs it on the head
and renders the next chunk. Each side skips the other's part with `ImuModel.skip`, which leaves
its model exactly where processing would have, so the output is bit-identical to one process:
`checksum` (sums of every register over the run) shows it. The head's share adapts chunk by
chunk so that both sides finish together.

Fields: seconds (wall, schedule to last sample), schedule_seconds, render_seconds,
sensor_seconds (summed over both processes), samples_per_s and realtime_factor from the wall
time; with two workers also sensor_main_seconds, sensor_helper_seconds, copy_seconds (into
shared memory), wait_seconds (this process waiting for the helper) and main_share (the share of
samples whose sensor output this process made).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import time
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

from neckline.sim import (
    ImuModel,
    ImuSamples,
    RenderConfig,
    SensorConfig,
    TraceChunk,
    generate_schedule,
    render,
    simulate_person,
)
from neckline.sim.wearer import DAY_S

SLOTS = 2  # chunks in flight between the two processes
SAMPLE_BYTES = 8 + 32 + 24 + 1  # t, q, lin_acc, worn


def checksum(out: ImuSamples) -> np.ndarray:
    """Sums of each register (ax..az, gx..gz, temp) over a block, as int64."""
    return np.concatenate((
        out.raw_accel.sum(axis=0, dtype=np.int64),
        out.raw_gyro.sum(axis=0, dtype=np.int64),
        [out.raw_temp.sum(dtype=np.int64)],
    ))


class Slot:
    """One chunk's inputs to the sensor model, laid out in a shared-memory block."""

    def __init__(self, shm: SharedMemory, capacity: int) -> None:
        self.shm = shm
        buf = shm.buf
        self.t = np.ndarray((capacity,), np.float64, buf, 0)
        self.q = np.ndarray((capacity, 4), np.float64, buf, 8 * capacity)
        self.lin = np.ndarray((capacity, 3), np.float64, buf, 40 * capacity)
        self.worn = np.ndarray((capacity,), np.bool_, buf, 64 * capacity)

    def fill(self, chunk: TraceChunk) -> None:
        n = len(chunk)
        self.t[:n] = chunk.t
        self.q[:n] = chunk.q
        self.lin[:n] = chunk.lin_acc
        self.worn[:n] = chunk.worn


def helper(conn: Connection, names: list[str], capacity: int, seed: int, rate: float) -> None:
    """The second process: sensor output for the tail [m, n) of every chunk it is handed."""
    shms = [SharedMemory(name=name) for name in names]
    slots = [Slot(shm, capacity) for shm in shms]
    imu = ImuModel(seed, SensorConfig(rate_hz=rate))
    total = np.zeros(7, dtype=np.int64)
    busy = 0.0
    conn.send("ready")
    while (msg := conn.recv()) is not None:
        k, n, m = msg
        s = slots[k]
        t0 = time.perf_counter()
        imu.skip(s.t[:m], s.q[:m], s.worn[:m])
        out = imu.process(s.t[m:n], s.q[m:n], s.lin[m:n], s.worn[m:n])
        total += checksum(out)
        busy += time.perf_counter() - t0
        conn.send((k, time.perf_counter() - t0))
    conn.send((total.tolist(), busy))
    del slots
    for shm in shms:
        shm.close()


def run_serial(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    schedule = generate_schedule(args.seed, duration_s=args.days * DAY_S)
    imu = ImuModel(args.seed, SensorConfig(rate_hz=args.rate))
    total = np.zeros(7, dtype=np.int64)
    samples = 0
    render_s = 0.0
    sensor_s = 0.0
    mark = time.perf_counter()
    schedule_s = mark - t0
    for chunk in render(schedule, args.seed, RenderConfig(rate_hz=args.rate)):
        now = time.perf_counter()
        render_s += now - mark
        total += checksum(imu.process_chunk(chunk))
        mark = time.perf_counter()
        sensor_s += mark - now
        samples += len(chunk)
    return {
        "seconds": time.perf_counter() - t0,
        "schedule_seconds": schedule_s,
        "render_seconds": render_s,
        "sensor_seconds": sensor_s,
        "samples": samples,
        "checksum": total.tolist(),
    }


def run_pipeline(args: argparse.Namespace) -> dict[str, Any]:
    config = RenderConfig(rate_hz=args.rate)
    capacity = round(config.chunk_s * config.rate_hz)
    shms = [SharedMemory(create=True, size=SAMPLE_BYTES * capacity) for _ in range(SLOTS)]
    slots = [Slot(shm, capacity) for shm in shms]
    ctx = mp.get_context("spawn")  # a clean interpreter: no inherited threads or locks
    conn, child_conn = ctx.Pipe()
    proc = ctx.Process(target=helper, args=(child_conn, [s.name for s in shms], capacity,
                                            args.seed, args.rate))
    proc.start()
    child_conn.close()  # so that a helper that dies shows up here as end of file
    try:
        if conn.recv() != "ready":
            raise RuntimeError("the helper process did not start")
        stats = _pipeline(args, config, slots, conn)
        helper_total, helper_busy = conn.recv()
        stats["checksum"] = [a + b for a, b in zip(stats["checksum"], helper_total,
                                                   strict=True)]
        stats["sensor_helper_seconds"] = helper_busy
        stats["sensor_seconds"] = stats["sensor_main_seconds"] + helper_busy
    finally:
        if proc.is_alive():
            with contextlib.suppress(OSError):
                conn.send(None)  # stop a helper still waiting for work
            proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
            proc.join()
        conn.close()
        del slots
        for shm in shms:
            shm.close()
            shm.unlink()
    return stats


def _pipeline(args: argparse.Namespace, config: RenderConfig, slots: list[Slot],
              conn: Connection) -> dict[str, Any]:
    t0 = time.perf_counter()
    schedule = generate_schedule(args.seed, duration_s=args.days * DAY_S)
    imu = ImuModel(args.seed, SensorConfig(rate_hz=args.rate))
    total = np.zeros(7, dtype=np.int64)
    free = list(range(SLOTS))
    tails = [0] * SLOTS  # samples handed to the helper in each slot
    share = 0.2  # the head's share of a chunk; tuned from the measured costs below
    samples = head = 0
    render_s = sensor_s = copy_s = wait_s = 0.0
    costs = {"helper": 0.0, "main": 0.0}  # seconds per sample, last measured

    def collect(block: bool) -> None:
        while block or conn.poll():
            k, busy = conn.recv()
            free.append(k)
            costs["helper"] = busy / tails[k]
            block = False

    mark = time.perf_counter()
    schedule_s = mark - t0
    for chunk in render(schedule, args.seed, config):
        now = time.perf_counter()
        chunk_render = now - mark
        render_s += chunk_render
        while not free:  # both slots in use: wait for the helper to give one back
            collect(block=True)
        wait_s += time.perf_counter() - now
        n = len(chunk)
        if costs["helper"] and costs["main"]:
            # Rendering and the head on this side against the tail on the other.
            share = ((costs["helper"] * n - chunk_render)
                     / ((costs["main"] + costs["helper"]) * n))
        m = min(n - 1, max(1, round(min(max(share, 0.0), 1.0) * n)))
        k = free.pop()
        tails[k] = n - m
        c0 = time.perf_counter()
        slots[k].fill(chunk)
        c1 = time.perf_counter()
        copy_s += c1 - c0
        conn.send((k, n, m))
        out = imu.process(chunk.t[:m], chunk.q[:m], chunk.lin_acc[:m], chunk.worn[:m])
        total += checksum(out)
        imu.skip(chunk.t[m:], chunk.q[m:], chunk.worn[m:])
        mark = time.perf_counter()
        sensor_s += mark - c1
        costs["main"] = (mark - c1) / m
        samples += n
        head += m
        collect(block=False)
    w0 = time.perf_counter()
    while len(free) < SLOTS:
        collect(block=True)
    conn.send(None)
    end = time.perf_counter()
    wait_s += end - w0
    return {
        "seconds": end - t0,
        "schedule_seconds": schedule_s,
        "render_seconds": render_s,
        "sensor_main_seconds": sensor_s,
        "copy_seconds": copy_s,
        "wait_seconds": wait_s,
        "main_share": head / samples,
        "samples": samples,
        "checksum": total.tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, choices=(1, 2), default=1)
    args = parser.parse_args()

    stats = run_serial(args) if args.workers == 1 else run_pipeline(args)

    t1 = time.perf_counter()
    person = simulate_person(args.seed, days=84.0)
    person_s = time.perf_counter() - t1

    result: dict[str, Any] = {"bench": "sim", "days": args.days, "rate_hz": args.rate,
                              "workers": args.workers}
    for key, value in stats.items():
        result[key] = round(value, 4) if isinstance(value, float) else value
    result["samples_per_s"] = round(stats["samples"] / stats["seconds"])
    result["realtime_factor"] = round(args.days * DAY_S / stats["seconds"], 1)
    result["person_12wk_seconds"] = round(person_s, 4)
    result["person_12wk_headaches"] = len(person.diary)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
