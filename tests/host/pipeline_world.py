"""A simulated wearer and link for the pipeline tests: the records the BLE link would hand over.

Bytes are packed with `struct` straight from docs/protocol.md (a reading independent of both the
firmware and the host decoder). The device has a drifting crystal, reboots (with its sample
counter continuing or restarting), u32 wraps of seq and t_ms, and a one-sided, heavy-tailed
delivery latency. Posture content has sustained flexion, short glances, spikes, a not-worn
stretch and an uncalibrated start, so strain episodes, exposure rows and non-wear minutes appear.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from neckline.link.records import (
    Kind,
    LinkRecord,
    RawBackfilled,
    Received,
    SessionDown,
    SessionUp,
    StatusRead,
    SummaryBackfilled,
    TimeSynced,
)
from neckline.protocol import CPStatus, RawBackfillResult, StateFlag, Status
from neckline.sequence import SeqRange

MASK = 0xFFFFFFFF
CAL, NOT_WORN, IN_STRAIN = 0x01, 0x02, 0x08
NO_VALUE = -32768


def sample_packet(backfill: bool, seq: int, t_ms: int, boot: int, period: int,
                  rows: list[tuple[int, int, int, int]]) -> bytes:
    head = struct.pack("<BBIIBH", 0x12 if backfill else 0x11, len(rows), seq & MASK,
                       t_ms & MASK, boot, period)
    return head + b"".join(struct.pack("<hhhB", *r) for r in rows)


def summary_packet(first_index: int, records: list[tuple[int, ...]]) -> bytes:
    head = struct.pack("<BBI", 0x13, len(records), first_index & MASK)
    return head + b"".join(struct.pack("<IBBhhBBB", *r) for r in records)


def event_payload(code: int, event_seq: int, boot: int, t_ms: int, body: bytes) -> bytes:
    return struct.pack("<BBHBI", 0x14, code, event_seq, boot, t_ms & MASK) + body


def cp_set_time_response(boot: int, t_ms: int) -> bytes:
    return struct.pack("<BBBBI", 0x17, 0x02, 0x01, boot, t_ms & MASK)


MALFORMED = [
    b"",  # empty
    b"\x21\x01\x00\x00\x00\x00",  # protocol v2
    b"\x11\x05\x00\x00",  # truncated samples header
    struct.pack("<BBIIBH", 0x11, 0, 1, 1, 1, 100),  # count 0
    struct.pack("<BBIIBH", 0x11, 2, 1, 1, 1, 100) + b"\x00" * 7,  # inconsistent count
    struct.pack("<BBIIBH", 0x11, 1, 1, 1, 1, 0) + b"\x00" * 7,  # period 0
    b"\x14\x01",  # an event on the posture characteristic
]


@dataclass
class Boot:
    boot_id: int
    start_utc: int  # true UTC at device time t_ms = t0
    t0: int  # device t_ms of the boot's first sample (near 2^32 tests the wrap)
    seq0: int  # seq of the boot's first sample
    samples: int


@dataclass
class Sample:
    utc: float  # true capture time
    seq: int
    t_ms: int
    boot: int
    period: int
    flexion: int
    lateral: int
    rotation: int
    flags: int


@dataclass
class World:
    """One wearer. `samples` is the ground truth, in device order; `useq` the 64-bit counter
    the host's tracker gives each (the host first hears of the device at sample 0)."""

    address: str = "C0:DE:00:00:00:01"
    period: int = 100
    per_packet: int = 5
    drift_ppm: float = 40.0
    seed: int = 1
    jitter: bool = True
    samples: list[Sample] = field(default_factory=list)
    boots: list[Boot] = field(default_factory=list)
    useq: list[int] = field(default_factory=list)


def make_world(start_utc: int, plan: list[tuple[int, int, int, int, int]], *, period: int = 100,
               per_packet: int = 5, drift_ppm: float = 40.0, seed: int = 1,
               address: str = "C0:DE:00:00:00:01") -> World:
    """plan: per boot (boot_id, n_samples, gap_ms_before, t0, seq0 or -1 to continue)."""
    rng = np.random.default_rng(seed)
    world = World(address=address, period=period, per_packet=per_packet, drift_ppm=drift_ppm,
                  seed=seed)
    utc = float(start_utc)
    seq_next = 0
    k = 0
    u = None
    for boot_id, n, gap, t0, seq0 in plan:
        utc += gap
        seq = seq_next if seq0 < 0 else seq0
        if u is None:
            u = seq
        elif seq0 >= 0:
            u = (((u - 1) >> 32) + 1 << 32) + seq  # a restarted counter: the tracker's new epoch
        world.boots.append(Boot(boot_id, int(utc), t0, seq, n))
        for i in range(n):
            world.useq.append(u + i)
            flex, lat, rot, flags = _content(k, rng)
            t_dev = t0 + i * period
            true = utc + i * period / (1 + drift_ppm * 1e-6)
            world.samples.append(Sample(true, (seq + i) & MASK, t_dev & MASK, boot_id, period,
                                        flex, lat, rot, flags))
            k += 1
        utc += n * period / (1 + drift_ppm * 1e-6)
        seq_next = (seq + n) & MASK
        u += n
    return world


def _content(k: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """Posture by sample index, a 3000-sample cycle (5 minutes at 10 Hz): 100 s of sustained
    flexion (an episode), a 10 s glance (too short), 125 s off the neck (whole minutes of no
    wear), good posture in between, a spike now and then, and an uncalibrated start."""
    phase = k % 3000
    flags = CAL if k >= 30 else 0
    if phase < 1000:
        flex = 3500 + int(rng.integers(-300, 300))
    elif 1300 <= phase < 1400:
        flex = 3200
    elif 1700 <= phase < 2950:
        flex = 3000 + int(rng.integers(-300, 300))  # lying on a desk, tilted
        flags |= NOT_WORN
    else:
        flex = 800 + int(rng.integers(-200, 200))
    if k % 997 == 500:
        flex = 9000  # a spike
    lat = int(rng.integers(-500, 500))
    rot = int(rng.integers(-2000, 2000))
    return flex, lat, rot, flags


@dataclass
class Feed:
    """Records as the link delivers them, in order."""

    records: list[LinkRecord] = field(default_factory=list)
    malformed: int = 0

    def add(self, record: LinkRecord) -> None:
        self.records.append(record)


class Link:
    """Turns a World into link records: live packets, reconnects with backfill, events."""

    def __init__(self, world: World, seed: int = 2) -> None:
        self.w = world
        self.rng = np.random.default_rng(seed)
        self.feed = Feed()
        self.mono = 0

    def _latency(self) -> float:
        if not self.w.jitter:
            return 20.0
        base = 7.5 + self.rng.uniform(0, 30)
        if self.rng.random() < 0.02:
            base += self.rng.pareto(1.5) * 50
        return float(base)

    def _received(self, utc: float, kind: Kind, data: bytes) -> None:
        self.mono += 1
        self.feed.add(Received(self.w.address, int(utc), self.mono, kind, data))

    def status(self, idx: int, boot: Boot, utc: float) -> Status:
        """The STATUS value right before sample `idx` would be taken."""
        next_seq = self.w.samples[idx].seq if idx < len(self.w.samples) else (
            self.w.samples[-1].seq + 1) & MASK
        first_of_boot = next(i for i, s in enumerate(self.w.samples) if s.boot == boot.boot_id)
        oldest = self.w.samples[max(first_of_boot, idx - 20_000)].seq if idx else next_seq
        return Status(1, boot.boot_id, int(utc - boot.start_utc) & MASK, next_seq, oldest,
                      0, 0, 3900, 80, StateFlag.CALIBRATED | StateFlag.TIME_SET, self.w.period)

    def boot_of(self, idx: int) -> Boot:
        s = self.w.samples[idx]
        return next(b for b in self.w.boots if b.boot_id == s.boot)

    def connect(self, idx: int, set_time: bool = True) -> None:
        """SessionUp, SET_TIME (response bytes and the TimeSynced notice), StatusRead."""
        s = self.w.samples[min(idx, len(self.w.samples) - 1)]
        boot = self.boot_of(min(idx, len(self.w.samples) - 1))
        utc = s.utc - 50
        status = self.status(idx, boot, utc)
        self.feed.add(SessionUp(self.w.address, int(utc), "Neckline-0001", 247, status))
        if set_time:
            sent = utc + 5
            t_dev = (s.t_ms - int((s.utc - sent) * (1 + self.w.drift_ppm * 1e-6))) & MASK
            self._received(sent + 80, Kind.CP, cp_set_time_response(boot.boot_id, t_dev))
            self.feed.add(TimeSynced(self.w.address, boot.boot_id, t_dev, int(sent),
                                     int(sent) + 80))
        self.feed.add(StatusRead(self.w.address, int(utc) + 40, status))

    def disconnect(self, utc: float, reason: str = "link lost") -> None:
        self.feed.add(SessionDown(self.w.address, int(utc), reason))

    def live(self, start: int, end: int, *, drop: set[int] | None = None) -> None:
        """Live packets for samples [start, end); packets whose index is in `drop` are lost."""
        for pk, i in enumerate(range(start, end, self.w.per_packet)):
            chunk = self.w.samples[i : min(end, i + self.w.per_packet)]
            # A packet never spans a boot: split where the boot changes.
            groups = _split_boot(chunk)
            for g in groups:
                if drop and pk in drop:
                    continue
                # Sent right after its last sample was taken (docs/alignment.md).
                self._received(g[-1].utc + self._latency(), Kind.POSTURE, _packet(False, g))

    def backfill(self, ranges: list[tuple[int, int]], at_utc: float) -> None:
        """REQUEST_RAW answers: backfill packets for sample index ranges, then RawBackfilled."""
        utc = at_utc
        for a, b in ranges:
            sent = 0
            for i in range(a, b, 20):
                for g in _split_boot(self.w.samples[i : min(b, i + 20)]):
                    utc += 2
                    self._received(utc, Kind.POSTURE, _packet(True, g))
                    sent += len(g)
            requested = SeqRange(self.w.useq[a], self.w.useq[b - 1])
            self.feed.add(RawBackfilled(self.w.address, requested, CPStatus.SUCCESS,
                                        RawBackfillResult(sent, self.w.samples[a].seq)))

    def event(self, code: int, event_seq: int, idx: int, body: bytes) -> None:
        s = self.w.samples[idx]
        self._received(s.utc + 30, Kind.EVENT, event_payload(code, event_seq, s.boot, s.t_ms,
                                                              body))

    def summaries(self, first_index: int, records: list[tuple[int, ...]], utc: float) -> None:
        for i in range(0, len(records), 18):
            self._received(utc + i, Kind.POSTURE, summary_packet(first_index + i,
                                                                 records[i : i + 18]))
        self.feed.add(SummaryBackfilled(self.w.address, first_index, CPStatus.SUCCESS, None))

    def malformed(self, utc: float) -> None:
        for payload in MALFORMED:
            self._received(utc, Kind.POSTURE, payload)
            self.feed.malformed += 1
        self._received(utc, Kind.EVENT, b"\x14\x09\x00\x00\x01\x00\x00\x00\x00")  # bad code
        self._received(utc, Kind.CP, b"\x17\x02")  # truncated response
        self.feed.malformed += 2


def _split_boot(chunk: list[Sample]) -> list[list[Sample]]:
    out: list[list[Sample]] = []
    for s in chunk:
        if out and out[-1][-1].boot == s.boot and (out[-1][-1].seq + 1) & MASK == s.seq and (
                out[-1][-1].t_ms + s.period) & MASK == s.t_ms:
            out[-1].append(s)
        else:
            out.append([s])
    return out


def _packet(backfill: bool, g: list[Sample]) -> bytes:
    return sample_packet(backfill, g[0].seq, g[0].t_ms, g[0].boot, g[0].period,
                         [(s.flexion, s.lateral, s.rotation, s.flags) for s in g])


def chunks(records: list[LinkRecord], sizes: Iterator[int]) -> Iterator[list[LinkRecord]]:
    i = 0
    while i < len(records):
        n = max(1, next(sizes))
        yield records[i : i + n]
        i += n


@dataclass
class Scenario:
    world: World
    link: Link
    records: list[LinkRecord]
    malformed: int
    summary_minutes_uncovered: list[int]  # UTC minute starts only the device has data for
    summary_minutes_covered: list[int]  # minutes the host computes itself
    events: dict[str, int]  # device_event type -> count sent


STRAIN_START, STRAIN_END, HEADACHE_MARKER, CALIBRATION, BUFFER_OVERFLOW, LOW_BATTERY = range(1, 7)


def scenario(start_utc: int, *, jitter: bool = True, drift_ppm: float = 40.0,
             seed: int = 1) -> Scenario:
    """Three boots (u32 wraps of seq and t_ms in the first, a continuing counter in the second,
    a restarted counter in the third), lost notifications, a disconnection bridged by backfill
    with duplicates, malformed payloads, events and device summary records."""
    world = make_world(start_utc, [
        (7, 4000, 0, (1 << 32) - 150_000, (1 << 32) - 1000),  # seq wraps at 1000, t_ms at 1500
        (8, 3000, 5000, 500, -1),  # reboot, counter continues
        (9, 3000, 3000, 300, 0),  # reboot, counter restarts
    ], drift_ppm=drift_ppm, seed=seed)
    world.jitter = jitter
    link = Link(world, seed=seed + 1)
    s = world.samples
    link.connect(0)
    link.live(0, 1500)
    link.malformed(s[1500].utc)
    dropped = {3, 17, 40}  # lost notifications: holes the next backfill fills
    link.live(1500, 2500, drop=dropped)
    link.event(STRAIN_START, 1, 1210, struct.pack("<h", 3500))
    link.disconnect(s[2500].utc)
    link.connect(3200)
    holes = [(1500 + p * world.per_packet, 1500 + (p + 1) * world.per_packet) for p in dropped]
    link.backfill([*sorted(holes), (2400, 3200)], s[3200].utc + 100)  # 2400..2500: duplicates
    link.live(3200, 4000)
    link.disconnect(s[3999].utc + 200, "device rebooted")
    link.connect(4000)
    link.event(CALIBRATION, 1, 4020, struct.pack("<Bhh", 0, 120, -40))
    link.live(4000, 5500)
    link.event(HEADACHE_MARKER, 2, 5000, b"")
    link.event(LOW_BATTERY, 3, 5400, struct.pack("<HB", 3550, 14))
    link.live(5500, 7000)
    link.disconnect(s[6999].utc + 200, "device rebooted")
    link.connect(7000)
    link.live(7000, 10_000)
    # Device summary records: three minutes from before the host ever heard of the device
    # (only the device has them) and three minutes the host computes itself.
    first_minute = (int(s[0].utc) // 60_000) * 60_000
    uncovered = [first_minute - k * 60_000 for k in (30, 29, 28)]
    covered = [first_minute + 5 * 60_000, first_minute + 6 * 60_000, first_minute + 12 * 60_000]
    records = [
        (m // 1000, 9, 60, 1800, 3600, 40, 1, 0x01 | 0x08) for m in uncovered
    ] + [(m // 1000, 9, 60, 900, 3000, 10, 0, 0x01) for m in covered]
    link.summaries(100, records, s[9990].utc)
    link.disconnect(s[-1].utc + 500)
    return Scenario(world, link, link.feed.records, link.feed.malformed, uncovered, covered,
                    {"strain_start": 1, "calibration": 1, "headache_marker": 1,
                     "low_battery": 1})
