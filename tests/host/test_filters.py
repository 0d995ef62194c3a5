"""Streaming posture filters (neckline.filters): streaming == batch, gaps, spikes, attenuation."""

from __future__ import annotations

import json
import struct
from dataclasses import replace
from itertools import pairwise

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from neckline.decode import SampleArrays, decode_samples
from neckline.filters import FilterConfig, FilteredSamples, StreamFilter
from neckline.protocol import SampleFlag

OK = int(SampleFlag.CALIBRATED)


def arrays(
    flexion: npt.ArrayLike,
    *,
    lateral: npt.ArrayLike | None = None,
    seq: npt.ArrayLike | None = None,
    t_ms: npt.ArrayLike | None = None,
    boot: npt.ArrayLike | None = None,
    period: int | npt.ArrayLike = 100,
    flags: npt.ArrayLike | None = None,
) -> SampleArrays:
    """SampleArrays built directly, as decode_samples would return them."""
    flex = np.asarray(flexion, dtype=np.float32)
    n = flex.size
    per = np.broadcast_to(np.asarray(period, dtype=np.int64), (n,))
    seq_a = np.arange(n, dtype=np.int64) if seq is None else np.asarray(seq, dtype=np.int64)
    t_a = np.cumsum(per) - per[0] if t_ms is None else np.asarray(t_ms, dtype=np.int64)
    return SampleArrays(
        seq=(seq_a & 0xFFFFFFFF).astype(np.uint32),
        t_ms=t_a & 0xFFFFFFFF,
        boot_id=np.broadcast_to(np.asarray(1 if boot is None else boot), (n,)).astype(np.uint8),
        period_ms=per.astype(np.uint16),
        flexion_deg=flex,
        lateral_deg=(np.zeros(n) if lateral is None else np.asarray(lateral)).astype(np.float32),
        rotation_deg=(-flex).astype(np.float32),
        flags=np.broadcast_to(np.asarray(OK if flags is None else flags), (n,)).astype(np.uint8),
        backfill=np.zeros(n, dtype=np.bool_),
        packet_index=np.arange(n, dtype=np.int64),
    )


def take(s: SampleArrays, a: int, b: int) -> SampleArrays:
    return SampleArrays(**{name: getattr(s, name)[a:b] for name in s.__dataclass_fields__})


def run_chunks(s: SampleArrays, cuts: list[int], save_at: int = -1,
               config: FilterConfig | None = None) -> FilteredSamples:
    filt = StreamFilter(config)
    bounds = [0, *sorted(c for c in set(cuts) if 0 < c < len(s)), len(s)]
    parts = []
    for k, (a, b) in enumerate(pairwise(bounds)):
        if k == save_at:
            filt = StreamFilter.from_state(json.loads(json.dumps(filt.to_state())), config)
        parts.append(filt.process(take(s, a, b)))
    return FilteredSamples(
        np.concatenate([p.values for p in parts]),
        np.concatenate([p.spikes for p in parts]),
        np.concatenate([p.starts for p in parts]),
    )


def same_bits(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> bool:
    return a.shape == b.shape and a.tobytes() == b.tobytes()


@st.composite
def series(draw: st.DrawFn) -> SampleArrays:
    n = draw(st.integers(1, 300))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    flex = np.cumsum(rng.normal(0, 2, n)) + 20
    spikes = rng.random(n) < 0.05
    flex[spikes] += rng.choice([-60.0, 60.0], spikes.sum())
    flex[rng.random(n) < 0.02] = np.nan
    seq_step = np.where(rng.random(n) < 0.04, rng.integers(2, 50, n), 1)
    seq = draw(st.integers(0, 2**32 - 1)) + np.cumsum(seq_step) - seq_step[0]
    t_step = np.where(rng.random(n) < 0.04, rng.integers(151, 10_000, n), 100)
    t = draw(st.integers(0, 2**32 - 1)) + np.cumsum(t_step) - t_step[0]
    boot = np.cumsum(rng.random(n) < 0.02).astype(np.int64) % 256
    flags = np.where(rng.random(n) < 0.03, SampleFlag.NOT_WORN | OK, OK)
    flags = np.where(rng.random(n) < 0.03, 0, flags)
    lateral = rng.normal(0, 1, n)
    return arrays(flex, lateral=lateral, seq=seq, t_ms=t, boot=boot, flags=flags)


@settings(max_examples=120, deadline=None)
@given(s=series(), cuts=st.lists(st.integers(1, 299), max_size=30), save_at=st.integers(-1, 10))
def test_streaming_in_any_chunks_equals_batch_bitwise(
    s: SampleArrays, cuts: list[int], save_at: int
) -> None:
    batch = StreamFilter().process(s)
    streamed = run_chunks(s, cuts, save_at)
    assert same_bits(streamed.values, batch.values)
    assert np.array_equal(streamed.spikes, batch.spikes)
    assert np.array_equal(streamed.starts, batch.starts)


def _step(n: int = 60) -> npt.NDArray[np.float64]:
    return np.r_[np.zeros(n), np.full(n, 30.0)]


def test_contiguous_step_is_smoothed_so_the_gap_tests_can_fail() -> None:
    out = StreamFilter().process(arrays(_step())).flexion
    assert 0.0 < out[63] < 30.0  # the low-pass does reach across a step without a gap


def assert_no_leak(out: FilteredSamples, n: int = 60) -> None:
    before, after = out.flexion[:n], out.flexion[n:]
    assert np.array_equal(before, np.zeros(n))
    assert np.allclose(after, 30.0, rtol=0, atol=1e-9)
    assert abs(after[0] - 30.0) < 1e-9  # starts in its steady state: no transient
    assert out.starts[n, 0]


def test_seq_gap_resets_the_filter() -> None:
    seq = np.r_[np.arange(60), np.arange(61, 121)]
    assert_no_leak(StreamFilter().process(arrays(_step(), seq=seq)))


def test_time_gap_resets_the_filter() -> None:
    t = np.r_[np.arange(60) * 100, 60_000 + np.arange(60) * 100]
    assert_no_leak(StreamFilter().process(arrays(_step(), t_ms=t)))


def test_boot_change_resets_the_filter() -> None:
    assert_no_leak(StreamFilter().process(arrays(_step(), boot=np.r_[np.zeros(60), np.ones(60)])))


def test_chunk_boundary_gap_resets_the_filter() -> None:
    s = arrays(_step(), seq=np.r_[np.arange(60), np.arange(100, 160)])
    filt = StreamFilter()
    out = np.r_[filt.process(take(s, 0, 60)).flexion, filt.process(take(s, 60, 120)).flexion]
    assert np.array_equal(out[:60], np.zeros(60))
    assert np.allclose(out[60:], 30.0, rtol=0, atol=1e-9)


def test_not_worn_and_uncalibrated_samples_break_segments_and_give_nan() -> None:
    for bad in (int(SampleFlag.NOT_WORN | SampleFlag.CALIBRATED), 0):
        x = np.r_[np.zeros(60), 999.0, np.full(59, 30.0)]
        flags = np.full(120, OK)
        flags[60] = bad
        out = StreamFilter().process(arrays(x, flags=flags))
        assert np.isnan(out.flexion[60])
        assert np.array_equal(out.flexion[:60], np.zeros(60))
        assert np.allclose(out.flexion[61:], 30.0, rtol=0, atol=1e-9)


def test_no_value_in_one_channel_breaks_only_that_channel() -> None:
    x = _step()
    x[60] = np.nan
    lateral = np.sin(np.arange(120) / 5.0)
    out = StreamFilter().process(arrays(x, lateral=lateral))
    assert np.isnan(out.flexion[60]) and out.starts[61, 0]
    assert not out.starts[60:62, 1].any()  # lateral keeps filtering through
    whole = StreamFilter().process(arrays(np.zeros(120), lateral=lateral))
    assert same_bits(out.lateral, whole.lateral)


def test_spikes_are_removed_and_flagged() -> None:
    rng = np.random.default_rng(7)
    n = 3000
    clean = 20 * np.sin(2 * np.pi * 0.05 * np.arange(n) / 10) + rng.normal(0, 0.3, n)
    dirty = clean.copy()
    where = np.sort(rng.choice(np.arange(20, n - 20, 10), 80, replace=False))
    doubles = where[::4]
    dirty[where] += rng.choice([-70.0, -40.0, 40.0, 90.0], where.size)
    dirty[doubles + 1] += 50.0  # some spikes last two samples
    out = StreamFilter().process(arrays(dirty))
    reference = StreamFilter().process(arrays(clean))
    truth = np.zeros(n, dtype=np.bool_)
    truth[where] = True
    truth[doubles + 1] = True
    assert np.array_equal(out.spikes[:, 0], truth)
    # A spike is replaced by the median of the samples before it, which trails a moving signal
    # by about half a window: the error is bounded by that lag times the signal's slope.
    lag = FilterConfig().spike_window // 2 + 1
    bound = lag * np.max(np.abs(np.diff(clean))) + 0.5
    assert np.max(np.abs(out.flexion - reference.flexion)) < bound
    unfiltered = StreamFilter(replace(FilterConfig(), spike_min_deg=1e9)).process(arrays(dirty))
    assert np.max(np.abs(unfiltered.flexion - reference.flexion)) > 10.0


def test_a_real_step_passes_after_half_a_window() -> None:
    cfg = FilterConfig()
    out = StreamFilter(cfg).process(arrays(_step()))
    delay = cfg.spike_window // 2 + 1
    assert out.spikes[60 : 60 + delay, 0].all()
    assert not out.spikes[60 + delay :, 0].any()
    assert np.allclose(out.flexion[-5:], 30.0, atol=1e-6)


def test_noise_is_attenuated_as_designed() -> None:
    cfg = FilterConfig(cutoff_hz=2.0, order=2)
    fs = 10.0
    sos = signal.butter(cfg.order, cfg.cutoff_hz, fs=fs, output="sos")
    impulse = signal.sosfilt(sos, np.r_[1.0, np.zeros(999)])
    expected_ratio = float(np.sum(impulse**2))  # output/input variance for white noise
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 2.0, 40_000)
    out = StreamFilter(cfg).process(arrays(noise)).flexion
    ratio = np.var(out[100:]) / np.var(noise[100:])
    assert abs(ratio / expected_ratio - 1) < 0.05
    assert ratio < 0.5
    # A sinusoid well above the cutoff comes out scaled by |H(f)|; one well below passes.
    t = np.arange(4000) / fs
    for f in (0.2, 3.5):
        out = StreamFilter(cfg).process(arrays(3 * np.sin(2 * np.pi * f * t))).flexion
        gain = np.abs(signal.sosfreqz(sos, worN=[f], fs=fs)[1][0])
        measured = np.sqrt(2 * np.mean(out[1000:] ** 2)) / 3
        assert abs(measured - gain) < 0.01


def test_cutoff_too_close_to_nyquist_skips_the_low_pass() -> None:
    x = np.sin(np.arange(50))
    out = StreamFilter(FilterConfig(cutoff_hz=2.0)).process(arrays(x, period=250)).flexion
    assert same_bits(out, x.astype(np.float32).astype(np.float64))


def test_period_change_starts_a_new_segment_with_its_own_design() -> None:
    period = np.r_[np.full(60, 100), np.full(60, 40)]
    t = np.cumsum(period) - 100
    out = StreamFilter().process(arrays(_step(), t_ms=t, period=period))
    assert out.starts[60, 0]
    assert abs(out.flexion[60] - 30.0) < 1e-9


def test_packets_from_the_decoder_filter_like_arrays() -> None:
    payloads = []
    for k in range(10):
        head = struct.pack("<BBIIBH", 0x11, 10, 10 * k, 1000 * k, 4, 100)
        body = b"".join(struct.pack("<hhhB", 1000 + 10 * (10 * k + i), 0, 0, OK)
                        for i in range(10))
        payloads.append(head + body)
    samples, rejections = decode_samples(payloads)
    assert rejections.total == 0
    out = StreamFilter().process(samples)
    assert out.starts[:, 0].tolist() == [True] + [False] * 99
    # A ramp through a low-pass with unity DC gain lags but keeps the slope.
    assert np.allclose(np.diff(out.flexion[60:]), 0.1, atol=1e-3)


def test_state_roundtrip_and_version_check() -> None:
    filt = StreamFilter()
    filt.process(arrays(np.linspace(0, 10, 30)))
    state = json.loads(json.dumps(filt.to_state()))
    assert StreamFilter.from_state(state).to_state() == filt.to_state()
    state["version"] = 2
    try:
        StreamFilter.from_state(state)
    except ValueError as exc:
        assert "version" in str(exc)
    else:
        raise AssertionError("a state of another version was accepted")
