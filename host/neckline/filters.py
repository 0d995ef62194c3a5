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
        values = np.full((n, len(CHANNELS)), np.nan, dtype=np.float64)
        spikes = np.zeros((n, len(CHANNELS)), dtype=np.bool_)
        starts = np.zeros((n, len(CHANNELS)), dtype=np.bool_)
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
        for c, channel in enumerate(self._channels):
            ok = usable & np.isfinite(raw[:, c])
            before_ok = np.r_[channel.active, ok[:-1]]
            link = ok & follows & before_ok
            run_starts = np.flatnonzero(ok & ~link)
            if link[0]:
                run_starts = np.r_[0, run_starts]
            breaks = np.flatnonzero(~link)
            for s in run_starts.tolist():
                k = int(np.searchsorted(breaks, s, side="right"))
                e = int(breaks[k]) if k < breaks.size else n
                carried = s == 0 and bool(link[0])
                history = channel.history if carried else []
                zi = channel.zi if carried else None
                out, spk, history, zi = self._run(raw[s:e, c], history, zi, int(period[s]))
                values[s:e, c] = out
                spikes[s:e, c] = spk
                starts[s, c] = not carried
                if e == n:
                    channel.history, channel.zi = history, zi
            if not ok[-1]:
                channel.history, channel.zi = [], None
            channel.active = bool(ok[-1])
            self.stats.unusable += int(n - np.count_nonzero(ok))
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
        prev_boot = np.r_[last[0], boot[:-1]]
        prev_seq = np.r_[last[1], seq[:-1]]
        prev_t = np.r_[last[2], t[:-1]]
        prev_period = np.r_[last[3], period[:-1]]
        dt = (t - prev_t) & _MASK32
        return (
            (boot == prev_boot)
            & (((seq - prev_seq) & _MASK32) == 1)
            & (period == prev_period)
            & (dt > 0)
            & (dt <= self.config.max_gap_factor * period)
        )

    def _run(
        self, x: FloatArray, history: list[float], zi: FloatArray | None, period_ms: int
    ) -> tuple[FloatArray, npt.NDArray[np.bool_], list[float], FloatArray | None]:
        """One uninterrupted run of a segment: despike, then low-pass."""
        clean, spike = self._despike(x, history)
        history = (history + x.tolist())[-self.config.spike_window :]
        sos = self._design(period_ms)
        if sos is None:
            return clean, spike, history, None
        if zi is None:
            zi = signal.sosfilt_zi(sos) * clean[0]
        out, zf = signal.sosfilt(sos, clean, zi=zi)
        return np.asarray(out, dtype=np.float64), spike, history, np.asarray(zf, dtype=np.float64)

    def _despike(
        self, x: FloatArray, history: list[float]
    ) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
        cfg = self.config
        k = cfg.spike_window
        h = len(history)
        full = np.concatenate([np.full(k, np.nan), np.asarray(history, dtype=np.float64), x])
        windows = sliding_window_view(full, k)[h : h + x.size]  # the k values before each x
        earlier = np.minimum(np.arange(h, h + x.size), k)
        med = np.zeros(x.size)
        mad = np.zeros(x.size)
        whole = earlier == k
        if whole.any():
            w = windows[whole]
            m = np.median(w, axis=1)
            med[whole] = m
            mad[whole] = np.median(np.abs(w - m[:, None]), axis=1)
        part = (earlier >= _MIN_JUDGE) & ~whole
        for j in np.flatnonzero(part).tolist():  # only the first few samples of a segment
            w = windows[j, k - int(earlier[j]) :]
            m = float(np.median(w))
            med[j] = m
            mad[j] = float(np.median(np.abs(w - m)))
        limit = np.maximum(cfg.spike_sigma * _MAD_TO_SIGMA * mad, cfg.spike_min_deg)
        spike = (earlier >= _MIN_JUDGE) & (np.abs(x - med) > limit)
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
