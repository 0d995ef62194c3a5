"""Host and firmware strain detection agree on random traces; streaming equals batch.

The firmware side is firmware/wearable/strain.py + minute_log.py under CPython (the MicroPython
runs are in tests/firmware/test_strain.py). Traces are drawn by hypothesis from segments that sit
on and around every threshold, with noise, drift, gaps, single missing samples, not-worn and
uncalibrated stretches, period changes and jitter.
"""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neckline.strain import Direction, StrainDetector, StrainResult
from neckline.strain_config import StrainConfig
from tests.firmware.strain_gen import FLAG_KINDS, Segment, Trace, build
from tests.firmware.strain_impls import firmware_outcome, host_result, host_view


@st.composite
def configs(draw: st.DrawFn) -> StrainConfig:
    thr = draw(st.integers(100, 9000))
    ext = -draw(st.integers(100, 9000))
    lat = draw(st.integers(100, 9000))
    hyst = draw(st.integers(0, min(thr, -ext, lat, 3001) - 1))
    return StrainConfig(
        threshold_cdeg=thr,
        extension_threshold_cdeg=ext,
        lateral_threshold_cdeg=lat,
        hysteresis_cdeg=hyst,
        hold_s=draw(st.sampled_from([1, 1, 2, 3, 5, 60])),
        clear_hold_s=draw(st.sampled_from([0, 1, 2, 5])),
    )


@st.composite
def segments(draw: st.DrawFn, cfg: StrainConfig, period: int) -> Segment:
    thr, hyst = cfg.threshold_cdeg, cfg.hysteresis_cdeg
    ext, lat = cfg.extension_threshold_cdeg, cfg.lateral_threshold_cdeg
    on_and_around = [
        thr + 1, thr, thr + 400, thr - hyst, thr - hyst - 1, thr - hyst // 2, 0,
        ext - 1, ext, ext + hyst + 1, -5000,
    ]
    return Segment(
        samples=draw(st.integers(1, 80)),
        flex=draw(st.sampled_from(on_and_around)),
        lateral=draw(st.sampled_from([0, lat + 1, lat, -lat - 1, -(lat - hyst) + 1])),
        noise=draw(st.sampled_from([0, 0, 30, 300])),
        drift=draw(st.sampled_from([0, 0, 300, -300])),
        flag_kind=draw(st.sampled_from([0] * 8 + list(range(1, len(FLAG_KINDS))))),
        gap_ms=draw(st.sampled_from([0] * 10 + [period, period + 1, 2 * period, 90_000])),
        period_ms=draw(st.sampled_from([period] * 4 + [10, 1000, 60_000])),
        jitter_ms=draw(st.sampled_from([0, 0, 0, 4])),
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[StrainConfig, Trace]:
    cfg = draw(configs())
    period = draw(st.sampled_from([100, 100, 40, 1000]))
    segs = draw(st.lists(segments(cfg, period), min_size=1, max_size=25))
    seed = draw(st.integers(0, 2**32 - 1))
    t0 = draw(st.integers(0, 10**10))
    return cfg, build(segs, seed, t0)


CROSS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@CROSS
@given(cases())
def test_host_matches_the_firmware_on_random_traces(case: tuple[StrainConfig, Trace]) -> None:
    cfg, trace = case
    fw = firmware_outcome(cfg, trace.rows())
    host = host_view(host_result(cfg, trace.rows()))
    assert host.episodes == fw.episodes
    assert host.starts == fw.starts
    assert host.in_strain == fw.in_strain
    # The firmware's minute log (summary records) equals the host's per-minute exposure.
    assert host.minutes == fw.minutes


def _stream(cfg: StrainConfig, trace: Trace, cuts: list[int]) -> StrainResult:
    det = StrainDetector(cfg)
    parts = []
    bounds = [0, *sorted(set(cuts)), len(trace)]
    for lo, hi in itertools.pairwise(bounds):
        parts.append(
            det.feed(trace.t[lo:hi], trace.period[lo:hi], trace.flex[lo:hi],
                     trace.lateral[lo:hi], trace.flags[lo:hi])
        )
    parts.append(det.finish())
    return StrainResult.merge(parts)


@CROSS
@given(cases(), st.lists(st.integers(0, 5000), max_size=40))
def test_streaming_in_any_chunks_equals_batch(
    case: tuple[StrainConfig, Trace], cuts: list[int]
) -> None:
    cfg, trace = case
    batch = host_result(cfg, trace.rows())
    stream = _stream(cfg, trace, [c for c in cuts if c <= len(trace)])
    assert stream.episodes == batch.episodes
    assert sorted(stream.started) == sorted(batch.started)
    assert stream.in_strain.tolist() == batch.in_strain.tolist()
    for name in batch.minutes.__dataclass_fields__:
        assert getattr(stream.minutes, name).tolist() == getattr(batch.minutes, name).tolist(), name


@CROSS
@given(cases())
def test_episode_statistics_are_those_of_the_samples_inside(
    case: tuple[StrainConfig, Trace],
) -> None:
    """Brute force: an episode's samples are the usable ones starting in [start_ms, end_ms)."""
    cfg, trace = case
    result = host_result(cfg, trace.rows())
    usable = (trace.flags & 0x03) == 0x01
    for ep in result.episodes:
        inside = (trace.t >= ep.start_ms) & (trace.t < ep.end_ms)
        if ep.direction == Direction.LATERAL:
            sel = inside & usable & (trace.lateral != -32768)
            values = np.abs(trace.lateral[sel])
        else:
            sel = inside & usable & (trace.flex != -32768)
            values = trace.flex[sel]
        assert sel.sum() == ep.samples
        peak = values.min() if ep.direction == Direction.EXTENSION else values.max()
        assert peak == ep.peak_cdeg
        assert abs(values.mean() - ep.mean_cdeg) < 1e-6
        assert ep.duration_ms > 0


@CROSS
@given(cases())
def test_minute_totals_add_up(case: tuple[StrainConfig, Trace]) -> None:
    cfg, trace = case
    result = host_result(cfg, trace.rows())
    m = result.minutes
    # Minutes come in order, once each; strain never exceeds wear.
    assert np.all(np.diff(m.minute) > 0)
    assert np.all(m.strain_ms <= m.wear_ms)
    assert np.all(m.extension_ms <= m.wear_ms)
    assert np.all(m.strain_s <= m.wear_s)
    assert m.samples.sum() == len(trace)
    assert m.episodes.sum() == sum(e.direction == Direction.FLEXION for e in result.episodes)
    # Usable time: every usable sample's whole period lands in some minute.
    usable = ((trace.flags & 0x03) == 0x01) & (trace.flex != -32768)
    assert m.wear_ms.sum() == trace.period[usable].sum()
    # Strain time equals the usable time inside flexion episodes, sample by sample.
    in_ep = np.zeros(len(trace), bool)
    for ep in result.episodes:
        if ep.direction == Direction.FLEXION:
            in_ep |= (trace.t >= ep.start_ms) & (trace.t < ep.end_ms)
    assert m.strain_ms.sum() == trace.period[in_ep & usable].sum()
