"""Streaming posture filters with explicit state: spike rejection, then a Butterworth low-pass.

One `StreamFilter` per device and stream (live and backfill arrive interleaved and each is
contiguous only with itself). Its state is plain data (`to_state` / `from_state`), so a host restart
resumes exactly where it stopped.

Segments. A filter never reaches across a break: a sample starts a new segment unless it directly
follows the previous one, meaning same boot, seq + 1, same period, and a device-time step in
(0, max_gap_factor * period]. Samples that are not usable (not CALIBRATED, NOT_WORN, or no value in
the channel) give NaN and end the segment of that channel. A new segment starts from scratch: the
spike window is empty and the low-pass starts in its steady state for the first value
(`sosfilt_zi * x0`), so there is no start-up transient.

Spike rejection (causal Hampel). Each sample is compared with the median of the up-to-`spike_window`
raw samples before it in its segment; it is a spike when it differs by more than
max(spike_sigma * 1.4826 * MAD, spike_min_deg) and is then replaced by that median. At least three
earlier samples are needed to judge. The window holds raw values, so a genuine step is accepted once
it fills half the window (a delay of window // 2 + 1 samples), while shorter excursions are removed.

Low-pass. Butterworth of `order` at `cutoff_hz`, designed for each period as second-order sections
and run with `scipy.signal.sosfilt` carrying `zi` between chunks. If the cutoff is not below 0.45 of
the sampling rate the low-pass is skipped for that period (logged once).

Streaming equals batch bitwise: for any split of a series into chunks, the concatenated outputs
are identical, float64 bit for bit, to one call on the whole series (tests/host/test_filters.py
checks it over random chunkings and random gaps). Every operation depends only on the segment's
samples, and carrying sosfilt's final state repeats the same floating-point operations in order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view
from scipy import signal

from neckline.decode import SampleArrays
from neckline.protocol import SampleFlag

log = logging.getLogger(__name__)

CHANNELS = ("flexion", "lateral", "rotation")
_MASK32 = 0xFFFFFFFF
_MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation
_MIN_JUDGE = 3  # earlier samples needed before a sample can be called a spike
STATE_VERSION = 1

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class FilterConfig:
    cutoff_hz: float = 2.0
    order: int = 2
    spike_window: int = 5
    spike_sigma: float = 3.0
    spike_min_deg: float = 15.0
    max_gap_factor: float = 1.5
    require_flags: int = int(SampleFlag.CALIBRATED)
    exclude_flags: int = int(SampleFlag.NOT_WORN)

    def __post_init__(self) -> None:
        if self.cutoff_hz <= 0 or self.order < 1:
            raise ValueError("cutoff_hz must be positive and order at least 1")
        if self.spike_window < _MIN_JUDGE:
            raise ValueError(f"spike_window must be at least {_MIN_JUDGE}")
        if self.spike_min_deg < 0 or self.spike_sigma < 0 or self.max_gap_factor < 1:
            raise ValueError("spike thresholds must be >= 0 and max_gap_factor >= 1")


@dataclass(frozen=True)
class FilteredSamples:
    """Per input sample and channel (columns in CHANNELS order)."""

    values: FloatArray  # (n, 3) filtered degrees; NaN where the sample is not usable
    spikes: npt.NDArray[np.bool_]  # (n, 3) replaced as a spike
    starts: npt.NDArray[np.bool_]  # (n, 3) a segment started here (state reset)

    @property
    def flexion(self) -> FloatArray:
        return self.values[:, 0]

    @property
    def lateral(self) -> FloatArray:
        return self.values[:, 1]

    @property
    def rotation(self) -> FloatArray:
        return self.values[:, 2]


@dataclass
class _Channel:
    history: list[float] = field(default_factory=list)  # raw values of the open segment
    zi: FloatArray | None = None  # low-pass state of the open segment
    active: bool = False  # the last sample seen was usable in this channel


@dataclass
class FilterStats:
    samples: int = 0
    spikes: int = 0
    segments: int = 0
    unusable: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _runs(ok: npt.NDArray[np.bool_], link: npt.NDArray[np.bool_]
          ) -> list[tuple[int, int, bool]]:
    """(start, end, carried) of each run of usable samples that link to each other; the first
    run is carried when its first sample continues the segment open before the chunk."""
    n = ok.size
    breaks = np.flatnonzero(~link)
    starts = np.flatnonzero(ok & ~link).tolist()
    if link[0]:
        starts.insert(0, 0)
    out = []
    for s in starts:
        k = int(np.searchsorted(breaks, s, side="right"))
        out.append((s, int(breaks[k]) if k < breaks.size else n, s == 0 and bool(link[0])))
    return out


class StreamFilter:
    """Filters one contiguous-in-order stream of samples, chunk by chunk."""

    def __init__(self, config: FilterConfig | None = None) -> None:
        self.config = config or FilterConfig()
        self.stats = FilterStats()
        self._channels = [_Channel() for _ in CHANNELS]
        self._last: tuple[int, int, int, int] | None = None  # boot, seq, t_ms, period
        self._designs: dict[int, npt.NDArray[np.float64] | None] = {}

    def reset(self) -> None:
        """Forget the open segments (the next sample starts afresh)."""
        self._channels = [_Channel() for _ in CHANNELS]
        self._last = None

    def process(self, samples: SampleArrays) -> FilteredSamples:
        n = len(samples)
        channels = len(CHANNELS)
        values = np.full((n, channels), np.nan, dtype=np.float64)
        spikes = np.zeros((n, channels), dtype=np.bool_)
        starts = np.zeros((n, channels), dtype=np.bool_)
        if n == 0:
            return FilteredSamples(values, spikes, starts)
        cfg = self.config
        raw = np.stack(
            [samples.flexion_deg, samples.lateral_deg, samples.rotation_deg], axis=1
        ).astype(np.float64)
        flags = samples.flags.astype(np.int64)
        required = (flags & cfg.require_flags) == cfg.require_flags
        usable = required & ((flags & cfg.exclude_flags) == 0)
        follows = self._follows(samples)
        period = samples.period_ms.astype(np.int64)
        ok = usable[:, None] & np.isfinite(raw)
        before_ok = np.empty_like(ok)
        before_ok[0] = [ch.active for ch in self._channels]
        before_ok[1:] = ok[:-1]
        link = ok & follows[:, None] & before_ok
        # Usually every channel has the same segments (and, carried over, the same history
        # length): then they are despiked and low-passed together, one numpy pass per run
        # instead of three. Each value is computed exactly as channel by channel.
        same = bool((ok == ok[:, :1]).all() and (link == link[:, :1]).all()) and (
            len({len(ch.history) for ch in self._channels}) == 1)
        groups = [list(range(channels))] if same else [[c] for c in range(channels)]
        for cols in groups:
            c0 = cols[0]
            for s, e, carried in _runs(ok[:, c0], link[:, c0]):
                chans = [self._channels[c] for c in cols]
                history = [ch.history for ch in chans] if carried else [[] for _ in cols]
                zi = None
                if carried and all(ch.zi is not None for ch in chans):
                    zi = np.stack([ch.zi for ch in chans if ch.zi is not None], axis=-1)
                out, spk, history, zi = self._run(raw[s:e, cols], history, zi, int(period[s]))
                values[s:e, cols] = out
                spikes[s:e, cols] = spk
                starts[s, cols] = not carried
                if e == n:
                    for j, ch in enumerate(chans):
                        ch.history = history[j]
                        ch.zi = None if zi is None else np.ascontiguousarray(zi[..., j])
        for c, channel in enumerate(self._channels):
            if not ok[-1, c]:
                channel.history, channel.zi = [], None
            channel.active = bool(ok[-1, c])
        self.stats.unusable += int(ok.size - np.count_nonzero(ok))
        self._last = (
            int(samples.boot_id[-1]), int(samples.seq[-1]), int(samples.t_ms[-1]), int(period[-1])
        )
        self.stats.samples += n
        self.stats.spikes += int(np.count_nonzero(spikes))
        self.stats.segments += int(np.count_nonzero(starts))
        return FilteredSamples(values, spikes, starts)

    def _follows(self, samples: SampleArrays) -> npt.NDArray[np.bool_]:
        """True where a sample directly follows the one before it (in this stream)."""
        boot = samples.boot_id.astype(np.int64)
        seq = samples.seq.astype(np.int64)
        t = samples.t_ms.astype(np.int64)
        period = samples.period_ms.astype(np.int64)
        last = self._last if self._last is not None else (-1, 0, 0, 0)
        prev = np.empty((4, boot.size), np.int64)
        prev[:, 0] = last
        prev[:, 1:] = boot[:-1], seq[:-1], t[:-1], period[:-1]
        dt = (t - prev[2]) & _MASK32
        return (
            (boot == prev[0])
            & (((seq - prev[1]) & _MASK32) == 1)
            & (period == prev[3])
            & (dt > 0)
            & (dt <= self.config.max_gap_factor * period)
        )

    def _run(
        self, x: FloatArray, history: list[list[float]], zi: FloatArray | None, period_ms: int
    ) -> tuple[FloatArray, npt.NDArray[np.bool_], list[list[float]], FloatArray | None]:
        """One uninterrupted run of a segment for channels side by side (x is m x channels,
        one history list per channel): despike, then low-pass."""
        k = self.config.spike_window
        h = len(history[0])
        past = np.asarray(history, dtype=np.float64).reshape(len(history), h).T
        clean, spike = self._despike(x, past)
        kept = np.concatenate([past, x])[-k:]
        history = kept.T.tolist()
        sos = self._design(period_ms)
        if sos is None:
            return clean, spike, history, None
        if zi is None:
            zi = signal.sosfilt_zi(sos)[:, :, None] * clean[0]
        out, zf = signal.sosfilt(sos, clean, axis=0, zi=zi)
        return np.asarray(out, dtype=np.float64), spike, history, np.asarray(zf, dtype=np.float64)

    def _despike(
        self, x: FloatArray, past: FloatArray
    ) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
        """Causal Hampel over columns; `past` holds the segment's earlier raw values."""
        cfg = self.config
        k = cfg.spike_window
        m, cols = x.shape
        h = past.shape[0]
        full = np.concatenate([np.full((k, cols), np.nan), past, x])
        # windows[j, c] = the k values before x[j, c] (NaN where the segment had none yet).
        windows = sliding_window_view(full, k, axis=0)[h : h + m]
        earlier = np.minimum(np.arange(h, h + m), k)
        judged = earlier >= _MIN_JUDGE
        if not judged.any():
            return x.copy(), np.zeros(x.shape, np.bool_)
        # The median of the c real values: NaNs sort last, so it is the mean of the sorted
        # values at (c - 1) // 2 and c // 2 (the same element when c is odd), as np.median.
        lo = np.maximum(earlier - 1, 0)[:, None, None] // 2
        hi = (earlier // 2)[:, None, None]
        ordered = np.sort(windows, axis=-1)
        med = (np.take_along_axis(ordered, lo, -1) + np.take_along_axis(ordered, hi, -1)) / 2
        spread = np.sort(np.abs(windows - med), axis=-1)
        mad = (np.take_along_axis(spread, lo, -1) + np.take_along_axis(spread, hi, -1)) / 2
        med, mad = med[..., 0], mad[..., 0]
        limit = np.maximum(cfg.spike_sigma * _MAD_TO_SIGMA * mad, cfg.spike_min_deg)
        with np.errstate(invalid="ignore"):
            spike = judged[:, None] & (np.abs(x - med) > limit)
        return np.where(spike, med, x), spike

    def _design(self, period_ms: int) -> npt.NDArray[np.float64] | None:
        if period_ms not in self._designs:
            fs = 1000.0 / period_ms
            if self.config.cutoff_hz >= 0.45 * fs:
                log.warning(
                    "low-pass cutoff %.3g Hz is too close to Nyquist at %.3g Hz sampling; "
                    "not low-passing samples with period %d ms",
                    self.config.cutoff_hz, fs, period_ms,
                )
                self._designs[period_ms] = None
            else:
                sos = signal.butter(
                    self.config.order, self.config.cutoff_hz, fs=fs, output="sos"
                )
                self._designs[period_ms] = np.asarray(sos, dtype=np.float64)
        return self._designs[period_ms]

    # --- persistence -------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "last": None if self._last is None else list(self._last),
            "channels": [
                {
                    "active": ch.active,
                    "history": list(ch.history),
                    "zi": None if ch.zi is None else ch.zi.tolist(),
                }
                for ch in self._channels
            ],
            "stats": self.stats.as_dict(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], config: FilterConfig | None = None) -> StreamFilter:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"filter state version {state.get('version')!r} is not supported")
        filt = cls(config)
        last = state["last"]
        if last is not None:
            boot, seq, t_ms, period = (int(v) for v in last)
            filt._last = (boot, seq, t_ms, period)
        filt._channels = [
            _Channel(
                history=[float(v) for v in ch["history"]],
                zi=None if ch["zi"] is None else np.asarray(ch["zi"], dtype=np.float64),
                active=bool(ch["active"]),
            )
            for ch in state["channels"]
        ]
        filt.stats = FilterStats(**{k: int(v) for k, v in state["stats"].items()})
        return filt
