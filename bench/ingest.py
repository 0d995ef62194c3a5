"""Benchmark the whole host ingest: link records -> decode -> sequence -> align -> filter ->
detect -> line protocol -> spool -> POST /write into a private influxd.

Input: one simulated day at 25 Hz of one wearer, and the same for 20 wearers, rendered by the
simulator (neckline.sim: ground-truth posture) and packed as protocol v1 SAMPLES_LIVE packets
with `struct` per docs/protocol.md (7 samples a packet, as the firmware's 250 ms latency gives at
25 Hz), each stamped with a simulated receive time (drifting device clock, one-sided latency).
Records are built before the clock starts.

Measured per scenario:
* samples_per_s: samples / Neckline's total time (first record in -> last point acknowledged
  by the server), with the service's defaults (spool fdatasync per batch, 5000-line batches).
* ratio_vs_raw_post: that time / the time a bare http.client loop needs to POST the identical
  line protocol Neckline produced (captured on its way to the spool) to the same server, in
  batches of the same size, into a fresh database.
* ratio_vs_influxdb_client: Neckline's client-side time to turn samples into line protocol (the
  pipeline with no server) / influxdb-client's Point API time to serialise the same samples.

Prints ONE JSON line. Usage: .venv/bin/python bench/ingest.py [--hours 24] [--wearers 20]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import http.client
import json
import os
import queue
import struct
import sys
import tempfile
import threading
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from neckline.influxd import temporary_influxd
from neckline.influxql import query, series_values
from neckline.link.records import Kind, LinkRecord, Received, SessionUp, StatusRead, TimeSynced
from neckline.pipeline import Pipeline, PipelineSettings
from neckline.protocol import StateFlag, Status
from neckline.sim import RenderConfig, generate_schedule, render
from neckline.store import Batcher, LineBatch, Spool, V1Writer, ensure_schema_v1

RATE_HZ = 25
PERIOD_MS = 40
PER_PACKET = 7
BATCH_LINES = 5000
CAL, NOT_WORN = 0x01, 0x02
_HEADER = np.dtype([("vt", "u1"), ("count", "u1"), ("seq", "<u4"), ("t_ms", "<u4"),
                    ("boot", "u1"), ("period", "<u2")])
_SAMPLE = np.dtype([("flexion", "<i2"), ("lateral", "<i2"), ("rotation", "<i2"),
                    ("flags", "u1")])


def address(k: int) -> str:
    return f"C0:DE:00:00:{(k >> 8) & 0xFF:02X}:{k & 0xFF:02X}"


def _cdeg(deg: np.ndarray) -> np.ndarray:
    out = np.full(deg.shape, -32768, np.int16)
    ok = np.isfinite(deg)
    out[ok] = np.clip(np.rint(deg[ok] * 100), -32767, 32767).astype(np.int16)
    return out


def wearer_records(k: int, start: datetime, hours: float) -> list[LinkRecord]:
    """One wearer's day as the link hands it over: session set-up, then live packets."""
    rng = np.random.default_rng([k, 99])
    schedule = generate_schedule(k + 1, start, hours * 3600)
    flex, lat, rot, worn = [], [], [], []
    for chunk in render(schedule, k + 1, RenderConfig(rate_hz=RATE_HZ, chunk_s=3600)):
        flex.append(chunk.flexion)
        lat.append(chunk.lateral)
        rot.append(chunk.axial)
        worn.append(chunk.worn)
    n = sum(len(f) for f in flex)
    n -= n % PER_PACKET
    samples = np.empty(n, _SAMPLE)
    samples["flexion"] = _cdeg(np.concatenate(flex)[:n])
    samples["lateral"] = _cdeg(np.concatenate(lat)[:n])
    samples["rotation"] = _cdeg(np.concatenate(rot)[:n])
    samples["flags"] = np.where(np.concatenate(worn)[:n], CAL, CAL | NOT_WORN)
    packets = n // PER_PACKET
    seq0 = int(rng.integers(0, 2**32 - n))
    t0 = 60_000 + int(rng.integers(0, 10_000))
    idx = np.arange(packets, dtype=np.int64) * PER_PACKET
    head = np.empty(packets, _HEADER)
    head["vt"], head["count"], head["boot"], head["period"] = 0x11, PER_PACKET, 1, PERIOD_MS
    head["seq"] = (seq0 + idx) & 0xFFFFFFFF
    head["t_ms"] = (t0 + idx * PERIOD_MS) & 0xFFFFFFFF
    body = samples.view(np.uint8).reshape(packets, PER_PACKET * _SAMPLE.itemsize)
    raw = np.concatenate([head.view(np.uint8).reshape(packets, -1), body], axis=1)
    # Device clock 30 ppm fast; a packet leaves right after its last sample, latency >= 7.5 ms.
    start_ms = int(start.timestamp() * 1000)
    last = idx + PER_PACKET - 1
    true_ms = start_ms + last * PERIOD_MS / (1 + 30e-6)
    latency = 7.5 + rng.uniform(0, 30, packets) + (rng.random(packets) < 0.01) * rng.pareto(
        1.5, packets) * 40
    receive = (true_ms + latency).astype(np.int64)
    dev = address(k)
    status = Status(1, 1, t0, seq0, seq0, 0, 0, 3900, 90, StateFlag.CALIBRATED, PERIOD_MS)
    sent = start_ms - 200
    records: list[LinkRecord] = [
        SessionUp(dev, sent - 10, f"Neckline-{k:04X}", 247, status),
        TimeSynced(dev, 1, t0 - 200, sent, sent + 60),
        StatusRead(dev, sent + 70, status),
    ]
    rows = raw.tobytes()
    width = raw.shape[1]
    records.extend(
        Received(dev, int(r), i, Kind.POSTURE, rows[i * width : (i + 1) * width])
        for i, r in enumerate(receive.tolist())
    )
    return records


def interleave(per_wearer: list[list[LinkRecord]]) -> list[LinkRecord]:
    """All wearers' records in arrival order, as one link process would see them."""
    if len(per_wearer) == 1:
        return per_wearer[0]
    keys = np.concatenate([
        np.array([getattr(r, "utc_ms", getattr(r, "sent_utc_ms", 0)) for r in recs])
        for recs in per_wearer
    ])
    flat = [r for recs in per_wearer for r in recs]
    order = np.argsort(keys, kind="stable")
    return [flat[i] for i in order.tolist()]


class CountingSink:
    """Counts what the pipeline hands to the store (the timed run keeps no copy)."""

    def __init__(self, batcher: Batcher) -> None:
        self.batcher = batcher
        self.lines = 0

    def submit(self, batch: LineBatch) -> int:
        self.lines += batch.lines
        return self.batcher.submit(batch)


class FileSink:
    """Writes the pipeline's batches to a file (for the bare client's replay)."""

    def __init__(self, path: Path) -> None:
        self.file = open(path, "wb")  # noqa: SIM115 - closed by the caller
        self.lines = 0

    def submit(self, batch: LineBatch) -> int:
        self.file.write(struct.pack("<BII", 0 if batch.dest == "raw" else 1, batch.lines,
                                    len(batch.body)))
        self.file.write(batch.body)
        self.lines += batch.lines
        return 0


async def neckline_run(url: str, db: str, records: list[LinkRecord], tmp: Path,
                       fsync_interval: float) -> dict[str, float]:
    spool = Spool(tmp / "spool", fsync_interval=fsync_interval, max_bytes=64 * 2**30)
    batcher = Batcher(spool, V1Writer(url, db, timeout=300), max_lines=BATCH_LINES)
    await batcher.start()
    sink = CountingSink(batcher)
    settings = PipelineSettings(fsync=fsync_interval == 0)
    pipeline = Pipeline(sink, tmp / "state", settings, max_lines=BATCH_LINES)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    # The service's own path: the link's sink, then the pipeline's consumer (steps of CPU work
    # in a worker thread, spool appends on the event loop, the sender POSTing meanwhile).
    for record in records:
        pipeline.put(record)
    stop = asyncio.Event()
    stop.set()  # process everything queued, then return
    await pipeline.run(stop)
    pipeline.flush()
    if not await batcher.flush(timeout=3600):
        raise RuntimeError("the store did not drain")
    total = time.perf_counter() - t0
    status = batcher.status()
    await batcher.close()
    if status.rejected_points or status.written_points != sink.lines:
        raise RuntimeError(f"store lost or refused points: {status}")
    return {"total_s": total, "lines": sink.lines, "steps": pipeline.stats.steps}


def capture(records: list[LinkRecord], tmp: Path, path: Path, fsync_interval: float) -> int:
    """Neckline's line protocol again, untimed: the same steps give the same bytes (the
    pipeline depends on nothing but its input; tests/host/test_pipeline_influx.py checks it,
    and `fingerprint` compares what both runs stored)."""
    sink = FileSink(path)
    settings = PipelineSettings(fsync=fsync_interval == 0)
    pipeline = Pipeline(sink, tmp / "state-capture", settings, max_lines=BATCH_LINES)  # type: ignore[arg-type]
    i = 0
    while i < len(records):  # the steps `run` made: same sizes, same order
        n = pipeline.step_size()
        pipeline.process(records[i : i + n])
        i += n
    pipeline.flush()
    sink.file.close()
    return sink.lines


def fingerprint(url: str, db: str) -> list[Any]:
    out: list[Any] = []
    for statement in (
        'SELECT count("seq"), sum("seq"), sum("flexion"), sum("lateral"), sum("strain") '
        'FROM "raw"."posture"',
        'SELECT first("seq"), last("seq") FROM "raw"."posture"',
        'SELECT count("wear_s"), sum("wear_s"), sum("strain_s") FROM "forever"."exposure"',
        'SELECT count("duration_s"), sum("duration_s") FROM "forever"."strain_episode"',
    ):
        out.append(series_values(query(url, statement, db=db)))
    return out


def frames(capture: Path, out: Path) -> int:
    """Re-cut the captured stream into BATCH_LINES-line bodies per destination (untimed)."""
    buffers: dict[int, list[bytes]] = {0: [], 1: []}
    posts = 0
    with open(capture, "rb") as src, open(out, "wb") as dst:
        def emit(dest: int, lines: list[bytes]) -> None:
            nonlocal posts
            body = b"\n".join(lines)
            dst.write(struct.pack("<BI", dest, len(body)) + body)
            posts += 1

        while head := src.read(9):
            dest, _, size = struct.unpack("<BII", head)
            buf = buffers[dest]
            buf.extend(src.read(size).split(b"\n"))
            while len(buf) >= BATCH_LINES:
                emit(dest, buf[:BATCH_LINES])
                del buf[:BATCH_LINES]
        for dest, buf in buffers.items():
            if buf:
                emit(dest, buf)
    return posts


def raw_posts(url: str, db: str, framed: Path) -> float:
    """A bare client: POST the pre-encoded bodies, one request at a time, keep-alive. The
    bodies are read ahead from disk by a helper thread, so the loop only POSTs."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=300)
    paths = {d: f"/write?db={db}&rp={rp}&precision=ms" for d, rp in ((0, "raw"), (1, "forever"))}
    ahead: queue.Queue[tuple[int, bytes] | None] = queue.Queue(maxsize=32)

    def reader() -> None:
        with open(framed, "rb") as fh:
            while head := fh.read(5):
                dest, size = struct.unpack("<BI", head)
                ahead.put((dest, fh.read(size)))
        ahead.put(None)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    while ahead.qsize() < ahead.maxsize and thread.is_alive():
        time.sleep(0.01)  # start with a full read-ahead
    t0 = time.perf_counter()
    while (item := ahead.get()) is not None:
        dest, body = item
        conn.request("POST", paths[dest], body=body)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 204:
            raise RuntimeError(f"bare POST answered {resp.status}")
    elapsed = time.perf_counter() - t0
    thread.join()
    conn.close()
    return elapsed


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count(url: str, db: str) -> int:
    rows = series_values(query(url, 'SELECT count("seq") FROM "raw"."posture"', db=db))
    return int(rows[0]["count"]) if rows else 0


def client_side(records: list[LinkRecord], n_samples: int, point_samples: int,
                tmp: Path) -> dict[str, float]:
    """Neckline's records-to-line-protocol time vs influxdb-client's Point serialisation."""
    from influxdb_client import Point, WritePrecision

    class Null:
        def __init__(self) -> None:
            self.bodies: list[bytes] = []

        def submit(self, batch: LineBatch) -> int:
            self.bodies.append(batch.body)
            return 0

    sink = Null()
    pipeline = Pipeline(sink, tmp / "client-state", PipelineSettings(fsync=False),
                        max_lines=BATCH_LINES)
    t0 = time.perf_counter()
    i = 0
    while i < len(records):
        n = pipeline.step_size()
        pipeline.process(records[i : i + n])
        i += n
    pipeline.flush()
    neck = time.perf_counter() - t0
    # The same fields through the Point API, from the values Neckline computed.
    lines = [ln for body in sink.bodies for ln in body.split(b"\n") if ln.startswith(b"posture")]
    sample = lines[:point_samples]
    parsed: list[tuple[str, dict[str, Any], int]] = []
    for ln in sample:
        head, fields, stamp = ln.decode().split(" ")
        kv: dict[str, Any] = {}
        for f in fields.split(","):
            k, v = f.split("=")
            kv[k] = int(v[:-1]) if v.endswith("i") else float(v)
        parsed.append((head.split("=")[1], kv, int(stamp)))
    t1 = time.perf_counter()
    for device, kv, stamp in parsed:
        p = Point("posture").tag("device", device).time(stamp, WritePrecision.MS)
        for k, v in kv.items():
            p.field(k, v)
        p.to_line_protocol()
    point = (time.perf_counter() - t1) / len(parsed)
    return {"neckline_us": neck / n_samples * 1e6, "point_api_us": point * 1e6}


def scenario(wearers: int, hours: float, fsync_interval: float, point_samples: int,
             log: Any) -> dict[str, Any]:
    start = (datetime.now(UTC) - timedelta(hours=hours + 0.5)).replace(second=0, microsecond=0)
    t = time.perf_counter()
    per = [wearer_records(k, start, hours) for k in range(wearers)]
    records = interleave(per)
    del per
    n_samples = sum(PER_PACKET for r in records if isinstance(r, Received))
    print(f"[{wearers} wearer(s)] {n_samples:,} samples, {len(records):,} records built in "
          f"{time.perf_counter() - t:.1f} s", file=log, flush=True)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        with temporary_influxd(tmp / "influxd") as server:
            url = server.url
            for db in ("neckline", "bare"):
                query(url, f'CREATE DATABASE "{db}"')
                ensure_schema_v1(url, db)
            gc.collect()
            server0, client0 = cpu_s(server.pid), time.process_time()
            run = asyncio.run(neckline_run(url, "neckline", records, tmp, fsync_interval))
            run["server_cpu_s"] = cpu_s(server.pid) - server0
            run["client_cpu_s"] = time.process_time() - client0
            stored = count(url, "neckline")
            print(f"[{wearers} wearer(s)] neckline: {run['total_s']:.1f} s "
                  f"({run['steps']} steps), {stored:,} posture points",
                  file=log, flush=True)
            if stored != n_samples:
                raise RuntimeError(f"{stored} posture points stored, {n_samples} sent")
            stored_print = fingerprint(url, "neckline")
            query(url, 'DROP DATABASE "neckline"')
            if capture(records, tmp, tmp / "capture.lp", fsync_interval) != run["lines"]:
                raise RuntimeError("the capture run produced other line protocol")
            posts = frames(tmp / "capture.lp", tmp / "framed.lp")
            (tmp / "capture.lp").unlink()
            server0 = cpu_s(server.pid)
            bare = raw_posts(url, "bare", tmp / "framed.lp")
            bare_server_cpu = cpu_s(server.pid) - server0
            print(f"[{wearers} wearer(s)] bare POSTs: {bare:.1f} s ({posts} requests)",
                  file=log, flush=True)
            if fingerprint(url, "bare") != stored_print:
                raise RuntimeError("the bare replay stored something else than Neckline did")
        client = client_side(records, n_samples, point_samples, tmp) if point_samples else None
    out: dict[str, Any] = {
        "wearers": wearers,
        "samples": n_samples,
        "lines": int(run["lines"]),
        "neckline_s": round(run["total_s"], 2),
        "bare_post_s": round(bare, 2),
        "neckline_client_cpu_s": round(run["client_cpu_s"], 2),
        "influxd_cpu_s_neckline": round(run["server_cpu_s"], 2),
        "influxd_cpu_s_bare": round(bare_server_cpu, 2),
        "load_avg": round(os.getloadavg()[0], 2),
        "samples_per_s": round(n_samples / run["total_s"]),
        "ratio_vs_raw_post": round(run["total_s"] / bare, 3),
    }
    if client:
        out["neckline_client_us_per_sample"] = round(client["neckline_us"], 3)
        out["point_api_us_per_sample"] = round(client["point_api_us"], 3)
        out["ratio_vs_influxdb_client"] = round(client["neckline_us"] / client["point_api_us"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--wearers", type=int, default=20, help="the multi-wearer scenario")
    parser.add_argument("--fsync-interval", type=float, default=0.0,
                        help="spool group commit (0: fdatasync every batch, the default)")
    parser.add_argument("--point-samples", type=int, default=100_000,
                        help="samples serialised through influxdb-client's Point API")
    parser.add_argument("--only", choices=("one", "many"), default=None)
    args = parser.parse_args()
    result: dict[str, Any] = {"bench": "ingest", "hours": args.hours, "rate_hz": RATE_HZ,
                              "batch_lines": BATCH_LINES, "fsync_interval": args.fsync_interval}
    one = many = None
    if args.only != "many":
        one = scenario(1, args.hours, args.fsync_interval, args.point_samples, sys.stderr)
    if args.only != "one" and args.wearers > 1:
        many = scenario(args.wearers, args.hours, args.fsync_interval, 0, sys.stderr)
    head = one or many
    assert head is not None
    result.update({
        "samples_per_s": head["samples_per_s"],
        "ratio_vs_raw_post": head["ratio_vs_raw_post"],
        "ratio_vs_influxdb_client": (one or {}).get("ratio_vs_influxdb_client"),
        "one_wearer": one,
        "many_wearers": many,
    })
    print(json.dumps(result))


if __name__ == "__main__":
    main()
