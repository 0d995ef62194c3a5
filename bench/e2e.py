"""Benchmark the whole virtual stack: firmware (MicroPython, real time) -> virtual BlueZ ->
bleak -> `neckline run` (default settings) -> influxd.

N virtual wearers (neckline.vsim) are paired and streamed at the default rate (10 Hz) into a
`neckline run` process with the service's default settings (only the InfluxDB URL, database and
data directory are configured) and a private influxd.

* latency_p50_ms / latency_p99_ms: for every sample, the first moment a query finds it in
  InfluxDB minus its stored timestamp. The timestamp is the host's alignment of the device clock
  to UTC, i.e. when the sample was measured (the lower envelope of receive times), so this spans
  the device's packet gathering (up to 250 ms), BLE, bleak, the host's batching and the write.
  The poll runs every POLL_S, which adds up to POLL_S to each figure.
* wearers_per_core: 3600 / (CPU seconds of the `neckline run` process alone — utime+stime from
  /proc/PID/stat over the measuring window; the wearers, the virtual BlueZ and influxd are not
  counted — per wearer-hour).

Prints ONE JSON line. Usage: .venv/bin/python bench/e2e.py [--wearers 3] [--seconds 120]
[--profile FILE]: with py-spy installed, also sample the host process over the measuring window
and write its folded stacks to FILE (py-spy's `raw` format; a profiled run's figures are
perturbed, do not report them).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from neckline.influxd import temporary_influxd
from neckline.influxql import InfluxQueryError, query, series_values
from neckline.vsim import SimStack

POLL_S = 0.1
WARMUP_S = 20.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def newest(url: str, db: str, since_ms: int) -> list[tuple[str, int, int]]:
    try:
        rows = series_values(query(url, 'SELECT "seq", "device" FROM "raw"."posture" '
                                   f"WHERE time > {since_ms}ms GROUP BY \"device\"", db=db))
    except InfluxQueryError:
        return []
    return [(str(r.get("device", "")), int(r["seq"]), int(r["time"])) for r in rows]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wearers", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=120.0, help="measuring window")
    ap.add_argument("--profile", type=Path, default=None,
                    help="write py-spy folded stacks of the host process to this file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="neckline-bench-e2e-") as tmp:
        root = Path(tmp)
        with temporary_influxd(root / "influxd") as influx, SimStack(root / "sim") as sim:
            db = "bench"
            query(influx.url, f'CREATE DATABASE "{db}"')
            cfg = root / "neckline.toml"
            cfg.write_text(f'data_dir = "{root / "data"}"\n[influx]\nurl = "{influx.url}"\n'
                           f'database = "{db}"\n[devices]\nconnect_bonded = false\n')
            env = {"NECKLINE_CONFIG": str(cfg)}
            for n in range(1, args.wearers + 1):
                sim.add_wearer(n)
                sim.wait_advertising(n)
                sim.pair(n, env)
            host = subprocess.Popen(
                [sys.executable, "-m", "neckline", "run", "--config", str(cfg)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=open(root / "host.log", "wb"), start_new_session=True,  # noqa: SIM115
                env={**os.environ, **env, **sim.env()})
            try:
                time.sleep(WARMUP_S)
                seen: dict[tuple[str, int], float] = {}
                latencies: list[float] = []
                spy = None if args.profile is None else subprocess.Popen(
                    [str(Path(sys.executable).with_name("py-spy")), "record", "--pid",
                     str(host.pid), "--duration", str(int(args.seconds)), "--rate", "1000", "--gil",
                     "--format", "raw", "--output", str(args.profile)],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)
                cpu0, t0 = cpu_seconds(host.pid), time.monotonic()
                since = int(time.time() * 1000) - 5000
                while time.monotonic() - t0 < args.seconds:
                    now_ms = time.time() * 1000
                    for device, seq, ts in newest(influx.url, db, since):
                        if (device, seq) not in seen:
                            seen[device, seq] = now_ms
                            if ts >= since + 5000:  # samples made inside the window
                                latencies.append(now_ms - ts)
                    time.sleep(POLL_S)
                cpu = cpu_seconds(host.pid) - cpu0
                wall = time.monotonic() - t0
                if spy is not None:
                    try:
                        spy.wait(60)
                    except subprocess.TimeoutExpired:
                        spy.kill()
                        spy.wait()
            finally:
                host.send_signal(signal.SIGTERM)
                try:
                    host.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(host.pid, signal.SIGKILL)
                    host.wait()
    devices = {d for d, _ in seen}
    wearer_hours = args.wearers * wall / 3600.0
    lat = np.array(latencies)
    result = {
        "wearers": args.wearers, "window_s": round(wall, 1),
        "samples": len(latencies), "devices_seen": len(devices),
        "latency_p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
        "latency_p99_ms": round(float(np.percentile(lat, 99)), 1) if len(lat) else None,
        "host_cpu_s": round(cpu, 3),
        "wearers_per_core": round(3600.0 / (cpu / wearer_hours), 1) if cpu > 0 else None,
        "poll_s": POLL_S,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
