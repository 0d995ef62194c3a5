"""Host-only parts of strain detection: exposure fields, non-wear marking, input checks, and the
whole path device bytes -> decoder -> detector against the device's own summary records."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from neckline.decode import decode_posture
from neckline.protocol import NO_VALUE_CDEG
from neckline.strain import Direction, StrainDetector, cdeg_from_deg, detect
from neckline.strain_config import StrainConfig
from tests.firmware.strain_gen import build, random_segments
from tests.firmware.strain_impls import firmware_proto, strain_trace

CAL = 0x11
NOT_WORN = 0x13
CFG = StrainConfig(hold_s=2, clear_hold_s=1)


def cols(n: int, flex: int | list[int], period: int = 100, t0: int = 0,
         flags: int | list[int] = CAL, lateral: int = 0) -> tuple[np.ndarray, ...]:
    t = t0 + period * np.arange(n, dtype=np.int64)
    f = np.broadcast_to(np.asarray(flex, np.int64), (n,)).copy()
    g = np.broadcast_to(np.asarray(flags, np.int64), (n,)).copy()
    return t, np.full(n, period), f, np.full(n, lateral), g


def test_strain_load_is_degree_minutes_above_the_threshold() -> None:
    # 60 s at 35°: 10° above the 25° threshold for a whole minute = 10 degree-minutes.
    r = detect(*cols(600, 3500), config=CFG)
    assert r.minutes.strain_ms.tolist() == [60_000]
    assert r.minutes.strain_load_deg_min.tolist() == [pytest.approx(10.0)]
    assert r.minutes.strain_fraction.tolist() == [1.0]
    # Band samples inside an episode are strain time but add no load.
    r2 = detect(*cols(600, [3500] * 300 + [2200] * 300), config=CFG)
    assert r2.minutes.strain_ms.tolist() == [60_000]
    assert r2.minutes.strain_load_deg_min.tolist() == [pytest.approx(5.0)]


def test_minutes_with_too_little_wear_are_marked_not_scored() -> None:
    flags = [CAL] * 200 + [NOT_WORN] * 400 + [CAL] * 600  # minute 0: 20 s worn; minute 1: 60 s
    r = detect(*cols(1200, 0, flags=flags), config=CFG, min_wear_s=30)
    m = r.minutes
    assert m.minute.tolist() == [0, 1]
    assert m.wear_s.tolist() == [20, 60]
    assert m.enough_wear.tolist() == [False, True]
    # Good posture in minute 0 is not reported as a 0 % strain share: it is unknown.
    assert math.isnan(m.strain_fraction[0])
    assert m.strain_fraction[1] == 0.0


def test_a_minute_without_any_usable_sample_has_no_flexion_values() -> None:
    r = detect(*cols(600, 3000, flags=NOT_WORN), config=CFG)
    m = r.minutes
    assert m.wear_ms.tolist() == [0]
    assert m.mean_flexion_cdeg.tolist() == [NO_VALUE_CDEG]
    assert m.flexion_max_cdeg.tolist() == [NO_VALUE_CDEG]
    assert np.isnan(m.mean_flexion_deg).all() and np.isnan(m.max_flexion_deg).all()
    assert m.enough_wear.tolist() == [False]
    assert r.episodes == []


def test_a_new_boot_breaks_an_episode() -> None:
    t, p, f, lat, g = cols(60, 3000)
    boot = np.array([1] * 30 + [2] * 30)
    r = detect(t, p, f, lat, g, boot, config=CFG)
    assert [(e.start_ms, e.end_ms) for e in r.episodes] == [(0, 3000), (3000, 6000)]
    same = detect(t, p, f, lat, g, np.ones(60, np.int64), config=CFG)
    assert [(e.start_ms, e.end_ms) for e in same.episodes] == [(0, 6000)]


def test_streaming_keeps_a_minute_open_while_a_run_could_still_claim_it() -> None:
    det = StrainDetector(CFG)
    # The run starts at 59.5 s; after the chunk ending at 60.4 s it is not yet held for 2 s.
    first = det.feed(*cols(605, [0] * 595 + [3000] * 10, t0=0))
    assert first.minutes.minute.tolist() == []
    second = det.feed(*cols(100, 3000, t0=60_500))
    # Held: minute 0 is now final, with the episode and 0.5 s of strain (rounded to 1 s).
    assert second.minutes.minute.tolist() == [0]
    assert second.minutes.episodes.tolist() == [1]
    assert second.minutes.strain_ms.tolist() == [500]
    assert second.started == [(Direction.FLEXION, 59_500)]
    assert second.in_strain.tolist()[:10] == [False] * 9 + [True]  # 10 + 10 samples = 2 s
    last = det.finish()
    assert [(e.start_ms, e.end_ms) for e in last.episodes] == [(59_500, 70_500)]
    assert last.minutes.minute.tolist() == [1]


def test_time_going_backwards_is_counted_not_lost() -> None:
    det = StrainDetector(CFG)
    det.feed(*cols(700, 0, t0=0))
    det.feed(*cols(10, 0, t0=0))  # a second stream over the same minute
    det.finish()
    assert det.reopened_minutes == 1


def test_bad_input_is_refused_with_a_clear_error() -> None:
    det = StrainDetector(CFG)
    t, p, f, lat, g = cols(10, 0)
    with pytest.raises(ValueError, match="period_ms has 9 values"):
        det.feed(t, p[:9], f, lat, g)
    with pytest.raises(ValueError, match="period_ms must be 1"):
        det.feed(t, np.zeros(10, np.int64), f, lat, g)
    with pytest.raises(ValueError, match="flexion_cdeg must be integers"):
        det.feed(t, p, f / 100.0, lat, g)
    with pytest.raises(ValueError, match="lateral_cdeg must be i16"):
        det.feed(t, p, f, lat + 40_000, g)
    with pytest.raises(ValueError, match="min_wear_s"):
        StrainDetector(CFG, min_wear_s=61)
    # Nothing was consumed by the refused calls.
    assert det.feed(t, p, f, lat, g).in_strain.shape == (10,)


def test_cdeg_from_deg_round_trips_the_wire_values() -> None:
    cdeg = np.arange(-32767, 32768, 7, dtype=np.int64)
    deg = (cdeg / 100.0).astype(np.float32)  # what the decoder hands out
    assert cdeg_from_deg(deg).tolist() == cdeg.tolist()
    assert cdeg_from_deg(np.array([np.nan], np.float32)).tolist() == [NO_VALUE_CDEG]


def test_device_bytes_through_the_decoder_give_the_devices_summary_records() -> None:
    """Firmware encoders pack the samples and its minute log's records; the host decodes both,
    runs its own detector on the decoded samples and gets the records the device sent."""
    proto = firmware_proto
    rng = np.random.default_rng(11)
    trace = build(random_segments(rng, 30), seed=11, t0=7_000)
    # The wire carries one period per packet: keep the trace on one period, no jitter.
    trace = type(trace)(
        7_000 + 100 * np.arange(len(trace), dtype=np.int64), np.full(len(trace), 100),
        trace.flex, trace.lateral, trace.flags,
    )
    values = CFG.values_by_key()
    device = strain_trace.run(values, trace.rows(), boot_id=7)
    buf = bytearray(proto.MAX_PAYLOAD)
    packets: list[bytes] = []
    per = proto.samples_per_packet(185)
    for lo in range(0, len(trace), per):
        hi = min(lo + per, len(trace))
        for i in range(lo, hi):
            proto.pack_sample(buf, i - lo, int(trace.flex[i]), int(trace.lateral[i]), 0,
                              int(trace.flags[i]))
        n = proto.pack_samples_header(buf, False, hi - lo, lo, int(trace.t[lo]), 7, 100)
        packets.append(bytes(buf[:n]))
    for j, rec in enumerate(device["records"]):
        proto.pack_summary_record(buf, 0, rec[0], rec[1], rec[2], rec[3], rec[4], rec[5], rec[6],
                                  rec[7])
        n = proto.pack_summary_header(buf, 1, j)
        packets.append(bytes(buf[:n]))
    samples, summaries, rejections = decode_posture(packets)
    assert rejections.total == 0
    assert len(samples) == len(trace)

    det = StrainDetector(CFG)
    result = det.feed_samples(samples)
    final = det.finish()
    minutes = type(result.minutes).concat([result.minutes, final.minutes])
    assert (minutes.minute * 60).tolist() == summaries.start.tolist()
    assert minutes.wear_s.tolist() == summaries.wear_s.tolist()
    assert minutes.strain_s.tolist() == summaries.strain_s.tolist()
    assert minutes.episodes.tolist() == summaries.episodes.tolist()
    assert cdeg_from_deg(summaries.mean_flexion_deg).tolist() == minutes.mean_flexion_cdeg.tolist()
    assert cdeg_from_deg(summaries.max_flexion_deg).tolist() == minutes.flexion_max_cdeg.tolist()
    assert sum(minutes.strain_s.tolist()) > 0
    # The device's IN_STRAIN state per sample is what the host derives.
    assert "".join(str(int(x)) for x in result.in_strain) == device["in_strain"]


def test_saved_state_continues_identically_and_tells_which_minutes_may_come() -> None:
    rng = np.random.default_rng(3)
    n = 6000
    t = np.arange(n, dtype=np.int64) * 100 + 7_000_000
    t[3000:] += 250  # a gap
    flex = np.where((np.arange(n) // 700) % 2 == 0, 3300, 500) + rng.integers(-800, 800, n)
    lat = rng.integers(-2500, 2500, n)
    flags = np.full(n, CAL)
    flags[4100:4200] = NOT_WORN
    cfg = StrainConfig(hold_s=20, clear_hold_s=3)
    whole = detect(t, np.full(n, 100), flex, lat, flags, config=cfg)
    det = StrainDetector(cfg, 30)
    episodes, minutes, in_strain = [], [], []
    emitted: set[int] = set()
    cuts = sorted(rng.choice(np.arange(1, n), 25, replace=False).tolist())
    for a, b in zip([0, *cuts], [*cuts, n], strict=True):
        r = det.feed(t[a:b], np.full(b - a, 100), flex[a:b], lat[a:b], flags[a:b])
        episodes += r.episodes
        minutes.append(r.minutes)
        in_strain.append(r.in_strain)
        emitted.update(r.minutes.minute.tolist())
        det = StrainDetector.from_state(json.loads(json.dumps(det.to_state())), cfg, 30)
        # A minute already emitted cannot come again; the one the last sample is in can.
        assert not any(det.may_report(m) for m in emitted)
        assert det.may_report(int(t[b - 1]) // 60_000)
    last = det.finish()
    episodes += last.episodes
    minutes.append(last.minutes)
    assert not det.may_report(int(t[-1]) // 60_000)  # finished: nothing open any more
    assert episodes == whole.episodes and len(episodes) > 4
    assert np.concatenate(in_strain).tolist() == whole.in_strain.tolist()
    got = [m for part in minutes for m in zip(part.minute.tolist(), part.strain_ms.tolist(),
                                               part.wear_ms.tolist(), strict=True)]
    want = list(zip(whole.minutes.minute.tolist(), whole.minutes.strain_ms.tolist(),
                    whole.minutes.wear_ms.tolist(), strict=True))
    assert got == want
    state = det.to_state()
    state["version"] = 0
    with pytest.raises(ValueError, match="version"):
        StrainDetector.from_state(state, cfg, 30)
