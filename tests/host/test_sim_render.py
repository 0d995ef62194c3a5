"""Rendering a schedule into smooth ground-truth orientation."""

from __future__ import annotations

import types
from datetime import UTC, datetime

import numpy as np

from neckline.sim import (
    Activity,
    RenderConfig,
    Schedule,
    TraceChunk,
    generate_schedule,
    render,
    rotation,
)
from neckline.sim.render import table_pose

MONDAY = datetime(2026, 1, 5, tzinfo=UTC)
A = Activity

# (duration_s, activity, worn, flexion, drift deg/s, lateral, axial)
ROWS = [
    (60.0, A.BREAK, False, 5.0, 0.0, 0.0, 0.0),
    (120.0, A.DESK, True, 15.0, 0.1, 2.0, -5.0),
    (60.0, A.PHONE, True, 45.0, 0.0, -3.0, 4.0),
    (60.0, A.WALK, True, 8.0, 0.0, 0.0, 20.0),
    (60.0, A.TALK, True, 2.0, 0.0, 3.0, -30.0),
    (30.0, A.BREAK, True, 5.0, 0.0, 0.0, 0.0),
    (60.0, A.BREAK, False, 5.0, 0.0, 0.0, 0.0),
    (60.0, A.DESK, True, 20.0, 0.0, 0.0, 0.0),
]


def _schedule() -> Schedule:
    return Schedule.from_rows(MONDAY, ROWS)


def _all(chunks: list[TraceChunk]) -> dict[str, np.ndarray]:
    return {
        f: np.concatenate([getattr(c, f) for c in chunks])
        for f in ("t", "q", "flexion", "lateral", "axial", "worn", "activity", "lin_acc")
    }


def _rates_dps(q: np.ndarray, rate_hz: float) -> np.ndarray:
    dq = rotation.multiply(rotation.conj(q[:-1]), q[1:])
    return np.degrees(rotation.to_rotvec(dq)) * rate_hz


def test_same_seed_same_trace_and_chunking_does_not_matter() -> None:
    s = _schedule()
    one = _all(list(render(s, 4, RenderConfig(chunk_s=10_000))))
    again = _all(list(render(s, 4, RenderConfig(chunk_s=10_000))))
    odd = _all(list(render(s, 4, RenderConfig(chunk_s=7.37))))
    other = _all(list(render(s, 5, RenderConfig(chunk_s=10_000))))
    for key in one:
        assert np.array_equal(one[key], again[key], equal_nan=True)
        assert np.allclose(one[key], odd[key], rtol=0, atol=1e-12, equal_nan=True), key
    assert not np.allclose(one["q"], other["q"])


def test_samples_timing_norm_and_flags() -> None:
    s = _schedule()
    chunks = list(render(s, 1, RenderConfig(rate_hz=200.0, chunk_s=60.0)))
    assert all(len(c) == 12_000 for c in chunks[:-1])
    d = _all(chunks)
    n = int(s.duration_s * 200)
    assert d["t"].size == n
    assert np.allclose(np.diff(d["t"]), 1 / 200)
    assert np.allclose(np.linalg.norm(d["q"], axis=1), 1.0, atol=1e-9)
    seg = s.segment_at(d["t"])
    assert np.array_equal(d["activity"], s.activity[seg])
    assert not np.any(d["worn"] & ~s.worn[seg])
    # Worn except while the device is being put on: about 9 s each of the two times.
    putting_on = np.sum(~d["worn"][s.worn[seg]]) / 200.0
    assert 10.0 < putting_on < 25.0
    assert np.array_equal(np.isnan(d["flexion"]), ~d["worn"])
    assert np.array_equal(np.isnan(d["axial"]), ~d["worn"])
    axial, flexion, lateral = rotation.to_posture(d["q"][d["worn"]])
    assert np.allclose(flexion, d["flexion"][d["worn"]])
    assert np.allclose(lateral, d["lateral"][d["worn"]])
    assert np.allclose(axial, d["axial"][d["worn"]])


def test_motion_is_smooth_everywhere() -> None:
    d = _all(list(render(_schedule(), 2)))
    rate = _rates_dps(d["q"], 100.0)
    speed = np.linalg.norm(rate, axis=1)
    assert speed.max() < 200.0  # degrees per second
    # Continuous angular velocity: no step changes, even at segment edges or put-on.
    assert np.abs(np.diff(rate, axis=0)).max() < 15.0


def test_targets_are_reached_without_wander() -> None:
    s = _schedule()
    d = _all(list(render(s, 3, RenderConfig(wiggle_scale=0.0))))
    t = d["t"]

    def at(time_s: float) -> int:
        return int(np.searchsorted(t, time_s))

    # Phone: 45° forward, 3° to the left.
    i = at(240.0 - 1.0)
    assert abs(d["flexion"][i] - 45.0) < 0.01
    assert abs(d["lateral"][i] + 3.0) < 0.01
    assert abs(d["axial"][i] - 4.0) < 0.01
    # Desk drift: 15° + 0.1°/s, measured near the end of the segment.
    i = at(170.0)
    assert abs(d["flexion"][i] - (15.0 + 0.1 * 110.0)) < 0.2


def test_walking_bobs_at_step_frequency() -> None:
    cfg = RenderConfig(wiggle_scale=0.0)
    d = _all(list(render(_schedule(), 3, cfg)))
    walking = (d["t"] > 250.0) & (d["t"] < 290.0)
    az = d["lin_acc"][walking, 2]
    spectrum = np.abs(np.fft.rfft(az - az.mean()))
    freqs = np.fft.rfftfreq(az.size, 1 / cfg.rate_hz)
    assert abs(freqs[np.argmax(spectrum)] - cfg.step_hz) < 0.05
    assert 0.8 * cfg.bob_vertical_ms2 < np.abs(az).max() <= cfg.bob_vertical_ms2 + 1e-9
    desk = (d["t"] > 70.0) & (d["t"] < 170.0)
    assert np.all(d["lin_acc"][desk] == 0.0)


def test_talking_nods() -> None:
    cfg = RenderConfig(wiggle_scale=0.0)
    d = _all(list(render(_schedule(), 3, cfg)))
    talking = (d["t"] > 305.0) & (d["t"] < 355.0)
    flex = d["flexion"][talking]
    spectrum = np.abs(np.fft.rfft(flex - flex.mean()))
    freqs = np.fft.rfftfreq(flex.size, 1 / cfg.rate_hz)
    band = np.abs(freqs - cfg.nod_hz) < 0.1
    assert spectrum[band].max() > 10 * np.median(spectrum[freqs > 0.5])
    phone = (d["t"] > 185.0) & (d["t"] < 235.0)
    assert np.ptp(d["flexion"][phone]) < 1e-4  # no wander configured, no nodding


def test_off_the_neck_the_device_lies_still_on_a_table() -> None:
    d = _all(list(render(_schedule(), 3)))
    first_off = d["t"] < 60.0
    q = d["q"][first_off]
    assert np.allclose(q, q[0], atol=1e-15)
    assert np.allclose(np.abs(np.sum(q[0] * table_pose(np.array([1]))[0])), 1.0)
    later_off = (d["t"] > 425.0) & (d["t"] < 450.0)  # settled after taking it off again
    q2 = d["q"][later_off]
    assert np.allclose(q2, q2[0], atol=1e-15)
    assert not np.allclose(np.abs(np.sum(q2[0] * q[0])), 1.0)  # a different spot this time
    assert np.all(d["lin_acc"][first_off] == 0.0)


def test_long_spans_render_lazily() -> None:
    s = generate_schedule(1, MONDAY, 7 * 86400.0)
    gen = render(s, 1, RenderConfig(chunk_s=600.0))
    assert isinstance(gen, types.GeneratorType)
    first = next(gen)
    assert len(first) == 60_000
    assert first.start == MONDAY
    second = next(gen)
    assert second.index0 == 60_000
    assert second.t[0] == 600.0
