"""Clock alignment (neckline.align) against a simulated ground truth.

The simulated device has a crystal off by up to ±100 ppm, reboots (new boot_id, t_ms starting
anywhere in the u32 range so it may wrap), packets of 1..20 samples at 10 Hz sent right after their
last sample, one-sided heavy-tailed latency (a floor, a connection-interval wait, a Pareto tail and
1 % multi-second stalls), disconnections whose samples come back later as backfill, and duplicate
deliveries, live and backfill. Packets are built as bytes and decoded with decode_samples.

The bound checked here is the one docs/alignment.md states: for a boot streamed live, every placed
sample satisfies  -ERR_BELOW <= utc - true_utc - latency_floor <= ERR_ABOVE.
"""

from __future__ import annotations

import json
import logging
import struct
from dataclasses import dataclass, replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neckline.align import AlignConfig, ClockAligner, Placement, fit_envelope
from neckline.decode import SummaryArrays, decode_samples
from neckline.protocol import SummaryFlag

U32 = 1 << 32
PERIOD = 100
UTC0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
ERR_BELOW = 15.0  # ms, documented in docs/alignment.md
ERR_ABOVE = 25.0


@dataclass(frozen=True)
class Boot:
    boot_id: int
    t0: int  # device t_ms of sample 0 (u32)
    utc0: float  # true UTC of sample 0
    n: int

    def true_utc(self, t_ms: np.ndarray, ppm: float) -> np.ndarray:
        k = ((t_ms - self.t0) & (U32 - 1)) // PERIOD
        return self.utc0 + k * PERIOD * (1 + ppm * 1e-6)


@dataclass(frozen=True)
class Delivery:
    arrival: float
    payload: bytes
    live: bool


@dataclass(frozen=True)
class World:
    ppm: float
    floor_ms: float
    boots: list[Boot]
    deliveries: list[Delivery]  # in arrival order


def payload(boot: Boot, k0: int, n: int, live: bool) -> bytes:
    head = struct.pack(
        "<BBIIBH", 0x11 if live else 0x12, n, (1000 + k0) & (U32 - 1),
        (boot.t0 + k0 * PERIOD) & (U32 - 1), boot.boot_id, PERIOD,
    )
    return head + struct.pack("<hhhB", 100, 0, 0, 1) * n


def simulate(
    seed: int, ppm: float, floor_ms: float, per_packet: int, boots: int, minutes: float
) -> World:
    rng = np.random.default_rng(seed)
    ci = rng.uniform(7.5, 50.0)
    first_id = int(rng.integers(0, 256))
    utc = UTC0 + rng.uniform(0, 1e9)
    out_boots: list[Boot] = []
    deliveries: list[Delivery] = []
    for b in range(boots):
        n = int(minutes * 600 * rng.uniform(0.6, 1.0))
        t0 = int(rng.integers(U32 - n * PERIOD, U32)) if rng.random() < 0.4 else int(
            rng.integers(0, U32)
        )
        boot = Boot((first_id + b) % 256, t0, utc, n)
        out_boots.append(boot)
        # Device time runs slow or fast against UTC: one device-ms is (1 + ppm 1e-6) UTC-ms.
        last = np.arange(per_packet - 1, n, per_packet)
        if last[-1] != n - 1:
            last = np.r_[last, n - 1]
        first = np.r_[0, last[:-1] + 1]
        send = boot.true_utc(boot.t0 + last * PERIOD, ppm)
        latency = floor_ms + rng.uniform(0, ci, last.size) + rng.pareto(1.5, last.size) * 5.0
        stalls = rng.random(last.size) < 0.01
        latency[stalls] += rng.uniform(200, 3000, int(stalls.sum()))
        arrive = send + latency
        # Up to two disconnections of up to five minutes inside the boot, with live evidence on
        # both sides; their samples come back as backfill shortly after the link returns.
        offline = np.zeros(last.size, dtype=np.bool_)
        for _ in range(int(rng.integers(0, 3))):
            a = int(rng.integers(int(0.3 * last.size), int(0.7 * last.size)))
            room = max(2, min(3000 // per_packet, int(0.9 * last.size) - a))
            offline[a : a + int(rng.integers(1, room))] = True
        for j in range(last.size):
            k0, k1 = int(first[j]), int(last[j])
            if offline[j]:
                back = np.flatnonzero(~offline[j:])
                resume = arrive[j + back[0]] if back.size else arrive[-1]
                when = resume + rng.uniform(100, 5000)
                deliveries.append(Delivery(when, payload(boot, k0, k1 - k0 + 1, False), False))
                continue
            deliveries.append(Delivery(arrive[j], payload(boot, k0, k1 - k0 + 1, True), True))
            r = rng.random()
            if r < 0.03:  # the link layer delivered it twice
                again = arrive[j] + rng.uniform(0, 3000)
                deliveries.append(Delivery(again, payload(boot, k0, k1 - k0 + 1, True), True))
            elif r < 0.06:  # a later backfill request covered it again
                again = arrive[j] + rng.uniform(1000, 600_000)
                deliveries.append(Delivery(again, payload(boot, k0, k1 - k0 + 1, False), False))
        utc = boot.utc0 + (n - 1) * PERIOD * (1 + ppm * 1e-6) + rng.uniform(1e3, 6e4)
    deliveries.sort(key=lambda d: d.arrival)
    return World(ppm, floor_ms, out_boots, deliveries)


Result = dict[tuple[int, int], int]  # (delivery index, sample index) -> utc ms


def run(world: World, chunk_ms: float, save_at: float | None,
        config: AlignConfig | None = None) -> tuple[Result, ClockAligner]:
    """Feed deliveries chunk by chunk as the pipeline would; place what has settled. With
    `save_at` (a fraction of the way through the chunks) the state goes through JSON there."""
    aligner = ClockAligner(config)
    results: Result = {}
    pending_boot = np.zeros(0, dtype=np.int64)
    pending_t = np.zeros(0, dtype=np.int64)
    pending_key: list[tuple[int, int]] = []
    arrivals = np.array([d.arrival for d in world.deliveries])
    edges = np.arange(arrivals[0], arrivals[-1] + chunk_ms, chunk_ms)
    bounds = np.searchsorted(arrivals, edges[1:], side="left")
    ends = [*bounds.tolist(), len(world.deliveries)]
    save_chunk = None if save_at is None else int(save_at * (len(ends) - 1))
    start = 0
    for c, end in enumerate(ends):
        if c == save_chunk:
            aligner = ClockAligner.from_json(aligner.to_json(), config)
        chunk = list(range(start, end))
        start = end
        if not chunk:
            continue
        samples, rejections = decode_samples([world.deliveries[i].payload for i in chunk])
        assert rejections.total == 0
        receive = np.array([round(world.deliveries[i].arrival) for i in chunk], dtype=np.int64)
        aligner.observe(samples, receive)
        keys = [(chunk[int(p)], int(j)) for p, j in zip(
            samples.packet_index,
            np.arange(len(samples)) - np.searchsorted(samples.packet_index,
                                                      samples.packet_index),
            strict=True,
        )]
        boot = np.r_[pending_boot, samples.boot_id.astype(np.int64)]
        t = np.r_[pending_t, samples.t_ms]
        keys = pending_key + keys
        placed = aligner.place(boot, t, now_utc_ms=int(receive.max()))
        done = placed.status == Placement.PLACED
        assert np.isin(placed.status, [Placement.PLACED, Placement.PENDING]).all()
        for i in np.flatnonzero(done).tolist():
            results[keys[i]] = int(placed.utc_ms[i])
        wait = np.flatnonzero(~done)
        pending_boot, pending_t = boot[wait], t[wait]
        pending_key = [keys[i] for i in wait.tolist()]
    if pending_key:
        placed = aligner.place(pending_boot, pending_t, now_utc_ms=None)
        assert (placed.status == Placement.PLACED).all()
        for i, key in enumerate(pending_key):
            results[key] = int(placed.utc_ms[i])
    return results, aligner


def check_world(world: World, results: Result) -> None:
    """Every sample placed once per delivery, same UTC for every copy, within the stated bound,
    strictly increasing with device time."""
    by_boot = {b.boot_id: b for b in world.boots}
    per_sample: dict[tuple[int, int], int] = {}
    errors = []
    for (d, j), utc in results.items():
        head = world.deliveries[d].payload
        _, _, _, t0, boot_id, _ = struct.unpack_from("<BBIIBH", head)
        t = (t0 + j * PERIOD) & (U32 - 1)
        key = (boot_id, t)
        assert per_sample.setdefault(key, utc) == utc, "a sample got two timestamps"
        truth = float(by_boot[boot_id].true_utc(np.array([t]), world.ppm)[0])
        errors.append(utc - truth - world.floor_ms)
    total = sum((len(d.payload) - 13) // 7 for d in world.deliveries)
    assert len(results) == total
    err = np.array(errors)
    assert err.min() >= -ERR_BELOW, f"error {err.min():.1f} ms below the bound"
    assert err.max() <= ERR_ABOVE, f"error {err.max():.1f} ms above the bound"
    for boot in world.boots:
        items = sorted(
            (((t - boot.t0) & (U32 - 1)), utc) for (b, t), utc in per_sample.items()
            if b == boot.boot_id
        )
        utcs = np.array([u for _, u in items])
        assert np.all(np.diff(utcs) > 0), "timestamps must increase with device time"


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    ppm=st.floats(-100, 100),
    floor_ms=st.floats(0, 20),
    per_packet=st.integers(1, 20),
    boots=st.integers(1, 3),
    chunk_ms=st.floats(500, 20_000),
    save_at=st.floats(0, 1),
)
def test_alignment_is_bounded_idempotent_and_restart_safe(
    seed: int, ppm: float, floor_ms: float, per_packet: int, boots: int, chunk_ms: float,
    save_at: float,
) -> None:
    world = simulate(seed, ppm, floor_ms, per_packet, boots, minutes=12)
    plain, aligner = run(world, chunk_ms, save_at=None)
    check_world(world, plain)
    restored, _ = run(world, chunk_ms, save_at=save_at)
    assert restored == plain  # a save/restore anywhere changes nothing
    assert len(aligner.to_json()) < 40_000


def test_long_stream_stays_within_bound_with_few_knots() -> None:
    world = simulate(11, ppm=-93.0, floor_ms=12.0, per_packet=5, boots=1, minutes=100)
    results, aligner = run(world, 5000.0, save_at=None)
    check_world(world, results)
    boot = world.boots[0].boot_id
    assert aligner.knots(boot) < 100
    line = aligner.estimate(boot)
    assert line is not None and line.fitted
    assert abs(line.rate * 1e6 - -93.0) < 2.0  # drift recovered to within 2 ppm


def test_same_sample_same_timestamp_whatever_the_arrival_order() -> None:
    world = simulate(5, ppm=60.0, floor_ms=3.0, per_packet=4, boots=2, minutes=10)
    results, aligner = run(world, 2000.0, save_at=None)
    # Deliver everything again, reversed and as backfill, after the fact: nothing moves.
    again = aligner.place(
        np.array([b for (b, _) in _identities(world, results)]),
        np.array([t for (_, t) in _identities(world, results)]),
        now_utc_ms=None,
    )
    assert (again.status == Placement.PLACED).all()
    expected = list(_identities(world, results).values())
    assert again.utc_ms.tolist() == expected
    rev = aligner.place(
        np.array([b for (b, _) in reversed(_identities(world, results))]),
        np.array([t for (_, t) in reversed(_identities(world, results))]),
    )
    assert rev.utc_ms.tolist() == expected[::-1]


def _identities(world: World, results: Result) -> dict[tuple[int, int], int]:
    out: dict[tuple[int, int], int] = {}
    for (d, j), utc in sorted(results.items()):
        _, _, _, t0, boot_id, _ = struct.unpack_from("<BBIIBH", world.deliveries[d].payload)
        out[(boot_id, (t0 + j * PERIOD) & (U32 - 1))] = utc
    return out


def test_fit_envelope_recovers_a_line_under_one_sided_noise() -> None:
    rng = np.random.default_rng(2)
    t = np.sort(rng.choice(np.arange(0, 3_600_000, 10_000), 200, replace=False))
    true = 5000.0 + 40e-6 * t
    y = true + rng.exponential(20.0, t.size)
    touching = [0, 57, 123, 199]
    y[touching] = true[touching]
    points = [(int(a), round(b)) for a, b in zip(t, y, strict=True)]
    line = fit_envelope(points, max_rate=250e-6, prior_rate=0.0, min_span=60_000)
    assert line.fitted
    assert abs(line.rate - 40e-6) < 1e-6
    for ti in (0, 1_800_000, 3_600_000):
        assert abs(line.offset_ms + line.rate * (ti - line.t_ref) - (5000 + 40e-6 * ti)) < 1.5
    assert all(b >= line.offset_ms + line.rate * (a - line.t_ref) - 1e-6 for a, b in points)
    clamped = fit_envelope(points, max_rate=10e-6, prior_rate=0.0, min_span=60_000)
    assert 0 < clamped.rate <= 10e-6
    # Over a short, noisy span the slope is pulled towards the prior instead of trusted.
    few = [(t, y + (17 if k % 2 else 0)) for k, (t, y) in enumerate(points[:7])]
    raw = fit_envelope(few, max_rate=250e-6, prior_rate=0.0, min_span=1, prior_sd=1.0)
    shrunk = fit_envelope(few, max_rate=250e-6, prior_rate=0.0, min_span=1, prior_sd=20e-6)
    assert abs(shrunk.rate) < 0.5 * abs(raw.rate)
    short = fit_envelope(points[:3], max_rate=250e-6, prior_rate=7e-6, min_span=10**9)
    assert not short.fitted and short.rate == 7e-6


def test_u32_wrap_inside_a_boot_keeps_time_continuous() -> None:
    aligner = ClockAligner()
    t = (U32 - 60_000 + np.arange(0, 120_000, 100)) & (U32 - 1)  # wraps half way
    utc_true = UTC0 + np.arange(0, 120_000, 100)
    aligner.add_evidence(9, t, utc_true + 4)
    placed = aligner.place(np.full(t.size, 9), t)
    assert placed.placed.all()
    assert np.all(np.diff(placed.utc_ms) > 0)
    assert np.max(np.abs(placed.utc_ms - utc_true - 4)) <= 1


def test_anchor_alone_places_backfill_of_a_boot_without_live_evidence() -> None:
    ppm = 50.0
    aligner = ClockAligner()
    t_anchor = 1_000_000
    true = lambda t: UTC0 + (t - t_anchor) * (1 + ppm * 1e-6)  # noqa: E731
    sent, response = true(t_anchor) - 18, true(t_anchor) + 22  # 40 ms round trip
    aligner.add_anchor(3, t_anchor, round(sent), round(response))
    t = np.arange(t_anchor - 300_000, t_anchor + 300_000, 100)
    placed = aligner.place(np.full(t.size, 3), t)
    assert placed.placed.all()
    err = placed.utc_ms - true(t)
    # Midpoint of the round trip (±20 ms) plus drift the prior does not know (50 ppm x 300 s).
    assert np.max(np.abs(err)) <= 20 + 50e-6 * 300_000 + 1


def test_anchor_bounds_a_envelope_biased_by_a_large_latency_floor() -> None:
    aligner = ClockAligner()
    t = np.arange(0, 600_000, 500)
    utc_true = UTC0 + t.astype(float)
    jitter = np.random.default_rng(1).exponential(5, t.size)
    aligner.add_evidence(1, t, np.round(utc_true + 400 + jitter))
    aligner.add_anchor(1, 300_000, round(UTC0 + 300_000 - 30), round(UTC0 + 300_000 + 30))
    placed = aligner.place(np.ones(t.size, dtype=np.int64), t)
    err = placed.utc_ms - utc_true
    assert np.max(np.abs(err)) <= 31  # without the anchor it would be ~400 ms late
    free = ClockAligner()
    free.add_evidence(1, t, np.round(utc_true + 400))
    assert np.min(free.place(np.ones(t.size, dtype=np.int64), t).utc_ms - utc_true) >= 399


def test_unknown_boot_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    aligner = ClockAligner()
    aligner.add_evidence(1, np.arange(0, 60_000, 1000), UTC0 + np.arange(0, 60_000, 1000))
    with caplog.at_level(logging.WARNING, logger="neckline.align"):
        placed = aligner.place(np.array([1, 2, 2]), np.array([1000, 1000, 2000]))
    assert placed.status.tolist() == [Placement.PLACED, Placement.NO_CLOCK, Placement.NO_CLOCK]
    assert placed.counts() == {"placed": 1, "no_clock": 2}
    assert aligner.stats.no_clock == 2
    assert "2 device times cannot be placed: no clock evidence" in caplog.text


def test_times_covered_by_flowing_evidence_are_placed_at_once() -> None:
    cfg = AlignConfig()
    aligner = ClockAligner(cfg)
    t = np.arange(0, 60_000, 100)
    aligner.add_evidence(4, t[9::10], UTC0 + t[9::10] + 5)  # a packet every second
    now = UTC0 + 60_000
    beyond = np.arange(60_000, 61_000, 100)  # made after the newest live packet
    placed = aligner.place(np.full(t.size + beyond.size, 4), np.r_[t, beyond], now_utc_ms=now)
    assert placed.placed[: t.size].all()  # no waiting behind the newest evidence
    assert (placed.status[t.size :] == Placement.PENDING).all()
    # Once the evidence has been quiet for quiet_ms (the link went down) those are placed too,
    # and nothing placed before moves.
    later = aligner.place(np.full(beyond.size, 4), beyond, now_utc_ms=now + cfg.quiet_ms)
    assert later.placed.all() and np.all(np.diff(later.utc_ms) > 0)
    assert aligner.place(np.full(t.size, 4), t).utc_ms.tolist() == placed.utc_ms[: t.size].tolist()
    # settle_ms asks for that much evidence after a time before it is placed.
    waits = ClockAligner(replace(cfg, settle_ms=5_000))
    waits.add_evidence(4, t[9::10], UTC0 + t[9::10] + 5)
    held = waits.place(np.full(t.size, 4), t, now_utc_ms=now)
    assert (held.status[t <= 59_900 - 5_000] == Placement.PLACED).all()
    assert (held.status[t > 59_900 - 5_000] == Placement.PENDING).all()


def test_warmup_holds_the_first_mapping_until_enough_evidence() -> None:
    cfg = AlignConfig()
    sparse = ClockAligner(cfg)  # a packet every 2 s: 5 packets in 10 s, not enough
    t = np.arange(0, 10_000, 2000)
    sparse.add_evidence(4, t, UTC0 + t)
    first = sparse.place(np.array([4]), np.array([0]), now_utc_ms=UTC0 + 10_000)
    assert first.status.tolist() == [Placement.PENDING]
    assert sparse.place(np.array([4]), np.array([0])).placed.all()  # flush places anyway
    t = np.arange(10_000, 32_000, 2000)  # ... until the evidence spans warmup_ms
    sparse.add_evidence(4, t, UTC0 + t)
    assert sparse.place(np.array([4]), np.array([30_000]), now_utc_ms=UTC0 + 32_000).placed.all()
    dense = ClockAligner(cfg)  # a packet every 250 ms: warm after warmup_packets of them
    t = np.arange(0, 250 * (cfg.warmup_packets - 1), 250)
    dense.add_evidence(4, t, UTC0 + t)
    now = int(UTC0 + t[-1] + 10)
    assert dense.place(np.array([4]), np.array([0]), now_utc_ms=now).status.tolist() == [
        Placement.PENDING]
    dense.add_evidence(4, [t[-1] + 250], [UTC0 + t[-1] + 250])
    assert dense.place(np.array([4]), np.array([0]), now_utc_ms=now + 250).placed.all()
    # A pause longer than gap_ms (a disconnection) starts a new warm-up for mapping beyond it.
    resume = int(t[-1]) + 250 + cfg.gap_ms + 60_000
    dense.add_evidence(4, [resume], [UTC0 + resume])
    assert dense.place(np.array([4]), np.array([resume]), now_utc_ms=UTC0 + resume + 10
                       ).status.tolist() == [Placement.PENDING]
    again = resume + np.arange(1, cfg.warmup_packets) * 250
    dense.add_evidence(4, again, UTC0 + again)
    assert dense.place(np.array([4]), np.array([resume]), now_utc_ms=int(UTC0 + again[-1])
                       ).placed.all()
    # The count survives a save and restore.
    state = json.loads(dense.to_json())
    assert state["boots"][0]["resume_packets"] == cfg.warmup_packets
    assert ClockAligner.from_state(state).to_state() == dense.to_state()


def test_expired_times_are_refused_not_remapped() -> None:
    cfg = replace(AlignConfig(), retain_ms=600_000, tolerance_ms=0.5)
    aligner = ClockAligner(cfg)
    rng = np.random.default_rng(4)
    wander = np.cumsum(rng.integers(-20, 21, 40))  # the offset wanders, so knots get added
    for k in range(40):
        t = np.arange(k * 60_000, (k + 1) * 60_000, 1000)
        aligner.add_evidence(1, t, UTC0 + t + wander[k] + rng.exponential(1, t.size).round())
        aligner.place(np.ones(t.size, dtype=np.int64), t)
    old = aligner.place(np.array([1, 1]), np.array([0, 39 * 60_000]))
    assert old.status.tolist() == [Placement.EXPIRED, Placement.PLACED]
    assert aligner.stats.expired == 1


def test_summaries_time_valid_direct_boot_relative_through_the_model(
    caplog: pytest.LogCaptureFixture,
) -> None:
    aligner = ClockAligner()
    t = np.arange(0, 900_000, 1000)
    aligner.add_evidence(6, t, UTC0 + t + 7)
    records = SummaryArrays(
        record_index=np.arange(3, dtype=np.uint32),
        start=np.array([1_767_225_660, 600, 600], dtype=np.uint32),
        boot_id=np.array([5, 6, 200], dtype=np.uint8),
        wear_s=np.full(3, 60, dtype=np.uint8),
        mean_flexion_deg=np.zeros(3, dtype=np.float32),
        max_flexion_deg=np.zeros(3, dtype=np.float32),
        strain_s=np.zeros(3, dtype=np.uint8),
        episodes=np.zeros(3, dtype=np.uint8),
        flags=np.array([SummaryFlag.TIME_VALID, 0, 0], dtype=np.uint8),
        packet_index=np.arange(3, dtype=np.int64),
    )
    with caplog.at_level(logging.WARNING, logger="neckline.align"):
        placed = aligner.place_summaries(records)
    assert placed.status.tolist() == [Placement.PLACED, Placement.PLACED, Placement.NO_CLOCK]
    assert placed.utc_ms[0] == 1_767_225_660_000
    assert abs(placed.utc_ms[1] - (UTC0 + 600_000 + 7)) <= 1
    assert "cannot be placed" in caplog.text


def test_state_roundtrip_and_version_check() -> None:
    aligner = ClockAligner()
    t = np.arange(0, 120_000, 100)
    aligner.add_evidence(1, t, UTC0 + t + 3)
    aligner.add_anchor(1, 5000, UTC0 + 4990, UTC0 + 5020)
    aligner.place(np.ones(t.size, dtype=np.int64), t)
    state = json.loads(aligner.to_json())
    assert ClockAligner.from_state(state).to_state() == aligner.to_state()
    state["version"] = 0
    with pytest.raises(ValueError, match="version"):
        ClockAligner.from_state(state)
