"""Sustained neck-strain detection on the host: episodes and per-minute exposure.

docs/strain.md is the definition. firmware/wearable/strain.py (episodes) and
firmware/wearable/minute_log.py (minutes) implement it on the device; on the same samples this
module finds exactly the same episode boundaries, strain milliseconds and minute records. It works
on the device's own integer centidegrees (unfiltered: a host-side filter would move boundaries).

Use StrainDetector for a stream of chunks and detect() for one batch; feeding any split of the
same samples and then finish() gives what detect() gives. The detector's state between chunks is
explicit (_DirState per direction plus the not-yet-settled samples), and everything inside one
chunk is vectorised: numpy finds where each run, hold and release ends, so the Python loop runs
once per phase change, not once per sample.

`to_state()` / `StrainDetector.from_state()` save and restore that state as JSON-compatible data
(integers only, so the round trip is exact): a restored detector continues exactly as the
original would, so an episode or minute in progress when the host stops continues after a
restart instead of being cut.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from neckline.decode import SampleArrays
from neckline.protocol import NO_VALUE_CDEG, SampleFlag
from neckline.strain_config import StrainConfig

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

MINUTE_MS = 60_000
STATE_VERSION = 1
# Samples can be at most this long (period_ms is a u16 on the wire); bounds the hold searches.
MAX_PERIOD_MS = 0xFFFF

# Direction modes (as in the firmware).
_IDLE, _PENDING, _EPISODE, _CLEARING = 0, 1, 2, 3
# How a sample counts for one direction (as in the firmware).
C_NONE, C_CLEAN, C_STRAIN, C_TENT = 0, 1, 2, 3

_USE_MASK = int(SampleFlag.CALIBRATED | SampleFlag.NOT_WORN)
_USABLE = int(SampleFlag.CALIBRATED)


class Direction(IntEnum):
    FLEXION = 0  # the primary exposure: "strain"
    EXTENSION = 1
    LATERAL = 2


@dataclass(frozen=True)
class Episode:
    """One sustained-strain episode, [start_ms, end_ms) in the time base the samples came in.

    peak_cdeg and mean_cdeg are in the direction's own terms: flexion for FLEXION, flexion
    (negative) for EXTENSION, the absolute lateral bend for LATERAL. The mean is over the
    episode's samples, unweighted.
    """

    direction: Direction
    start_ms: int
    end_ms: int
    peak_cdeg: int
    mean_cdeg: float
    samples: int

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms

    @property
    def duration_s(self) -> int:
        """Rounded as in the device's STRAIN_END event."""
        return min((self.duration_ms + 500) // 1000, 0xFFFF)


def _device_seconds(ms: IntArray) -> IntArray:
    return np.minimum((ms + 500) // 1000, 60)


@dataclass(frozen=True)
class MinuteExposure:
    """One row per minute that any sample touched; a minute without a row has no data at all.

    `minute` is floor(t_ms / 60000) in the samples' time base (UTC epoch minutes when the times
    are UTC milliseconds). Millisecond totals are exact; wear_s, strain_s and mean_flexion_cdeg
    follow the device's rounding, so they equal its summary records on the same samples.
    enough_wear marks minutes worn long enough to be scored; the others must be treated as
    missing data, never as good posture.
    """

    minute: IntArray
    samples: IntArray  # samples starting in the minute, usable or not
    wear_ms: IntArray  # usable (worn, calibrated, with an angle) time
    strain_ms: IntArray  # time inside flexion episodes
    extension_ms: IntArray
    lateral_ms: IntArray
    strain_load_cdeg_ms: IntArray  # integral of (flexion - threshold)+ over strain time
    flexion_sum_cdeg: IntArray  # over usable samples starting in the minute
    flexion_count: IntArray
    flexion_max_cdeg: IntArray  # NO_VALUE_CDEG without usable samples
    episodes: IntArray  # flexion episodes that began in the minute
    extension_episodes: IntArray
    lateral_episodes: IntArray
    enough_wear: BoolArray

    def __len__(self) -> int:
        return int(self.minute.shape[0])

    @property
    def wear_s(self) -> IntArray:
        return _device_seconds(self.wear_ms)

    @property
    def strain_s(self) -> IntArray:
        return np.minimum(_device_seconds(self.strain_ms), self.wear_s)

    @property
    def mean_flexion_cdeg(self) -> IntArray:
        """Round-half-up mean as the device packs it; NO_VALUE_CDEG without usable samples."""
        n = self.flexion_count
        safe = np.maximum(n, 1)
        mean = (2 * self.flexion_sum_cdeg + safe) // (2 * safe)
        return np.where(n > 0, mean, NO_VALUE_CDEG)

    @property
    def mean_flexion_deg(self) -> npt.NDArray[np.float64]:
        n = self.flexion_count
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, self.flexion_sum_cdeg / np.maximum(n, 1) / 100.0, np.nan)

    @property
    def max_flexion_deg(self) -> npt.NDArray[np.float64]:
        return np.where(self.flexion_count > 0, self.flexion_max_cdeg / 100.0, np.nan)

    @property
    def strain_load_deg_min(self) -> npt.NDArray[np.float64]:
        """Degree-minutes: one minute held 10° above the threshold is 10."""
        return self.strain_load_cdeg_ms / (100.0 * MINUTE_MS)

    @property
    def strain_fraction(self) -> npt.NDArray[np.float64]:
        """Share of worn time in strain; NaN where the minute was not worn enough to score."""
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = self.strain_ms / self.wear_ms
        return np.where(self.enough_wear & (self.wear_ms > 0), frac, np.nan)

    @classmethod
    def empty(cls) -> MinuteExposure:
        z = np.zeros(0, np.int64)
        return cls(z, z, z, z, z, z, z, z, z, z, z, z, z, np.zeros(0, np.bool_))

    @classmethod
    def concat(cls, parts: Sequence[MinuteExposure]) -> MinuteExposure:
        if not parts:
            return cls.empty()
        names = [f for f in cls.__dataclass_fields__]
        return cls(**{n: np.concatenate([getattr(p, n) for p in parts]) for n in names})


@dataclass(frozen=True)
class StrainResult:
    """What one feed() (or finish()) produced."""

    # Episodes that ended, in the order the device learns of them (and sends STRAIN_END): by the
    # sample at which the end became certain, flexion before extension before lateral.
    episodes: list[Episode]
    minutes: MinuteExposure  # minutes that became final, in time order
    in_strain: BoolArray  # per fed sample: flexion episode in progress after it (IN_STRAIN)
    # (direction, start_ms) of episodes confirmed, in the same order as `episodes`.
    started: list[tuple[Direction, int]] = field(default_factory=list)

    @classmethod
    def merge(cls, parts: Sequence[StrainResult]) -> StrainResult:
        return cls(
            episodes=[e for p in parts for e in p.episodes],
            minutes=MinuteExposure.concat([p.minutes for p in parts]),
            in_strain=np.concatenate([p.in_strain for p in parts])
            if parts
            else np.zeros(0, np.bool_),
            started=[s for p in parts for s in p.started],
        )


# --- one direction ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Levels:
    direction: Direction
    on: int  # strictly above: exceeding
    off: int  # strictly below: released
    hold_ms: int
    clear_ms: int
    sign: int  # value -> reported angle


@dataclass
class _DirState:
    mode: int = _IDLE
    start_ms: int = 0  # run / episode start
    release_ms: int = 0  # start of the release being held
    peak: int = 0
    ep_sum: int = 0
    ep_count: int = 0
    tent_sum: int = 0  # stats of the tentative stretch
    tent_count: int = 0
    tent_n: int = 0  # trailing samples (so far) that are tentative


@dataclass
class _DirOutput:
    cls: npt.NDArray[np.int8]
    in_state: BoolArray
    tail: int  # class the tentative samples carried in were settled to (C_TENT: not yet)
    episodes: list[tuple[int, Episode]]  # (index of the sample that ended it, episode)
    confirmed: list[tuple[int, int]]  # (index of the confirming sample, start_ms)


def _next_true(mask: BoolArray) -> IntArray:
    """out[i] = smallest j >= i with mask[j], else n; one extra element out[n] = n."""
    n = mask.shape[0]
    idx = np.where(mask, np.arange(n, dtype=np.int64), n)
    out = np.empty(n + 1, np.int64)
    out[n] = n
    if n:
        out[:n] = np.minimum.accumulate(idx[::-1])[::-1]
    return out


def _first_reach(t: IntArray, tp: IntArray, lo: int, hi: int, target: int, pmax: int) -> int:
    """First m in [lo, hi) with t[m] + p[m] >= target, else hi; t is increasing on [lo, hi)."""
    if lo >= hi:
        return hi
    seg = t[lo:hi]
    # t[m] + p[m] >= target needs t[m] >= target - pmax, and holds once t[m] >= target.
    a = lo + int(np.searchsorted(seg, target - pmax, "left"))
    b = min(lo + int(np.searchsorted(seg, target, "left")) + 1, hi)
    hits = np.flatnonzero(tp[a:b] >= target)
    return a + int(hits[0]) if hits.size else hi


def _episode(st: _DirState, lv: _Levels, end_ms: int) -> Episode:
    return Episode(
        direction=lv.direction,
        start_ms=st.start_ms,
        end_ms=end_ms,
        peak_cdeg=lv.sign * st.peak,
        mean_cdeg=lv.sign * st.ep_sum / st.ep_count,
        samples=st.ep_count,
    )


def _run_direction(
    st: _DirState,
    lv: _Levels,
    t: IntArray,
    p: IntArray,
    v: IntArray,
    ok: BoolArray,
    brk: BoolArray,
    prev_end: int,
) -> _DirOutput:
    """Run one direction's machine over a chunk, continuing from `st` (updated in place).

    brk[i]: a gap (or new boot) lies between sample i-1 and i. prev_end: end of the sample
    before the chunk (its start + period), used when an episode breaks at the chunk's first sample.
    """
    n = int(t.shape[0])
    tp = t + p
    pmax = int(p.max()) if n else MAX_PERIOD_MS
    above = ok & (v > lv.on)
    released = ok & (v < lv.off)
    # The "next index where ..." tables each mode needs, built on first use: a chunk that stays
    # in one mode (mostly idle) builds one of the four, or none.
    tables: dict[str, IntArray] = {}

    def nxt(name: str) -> IntArray:
        table = tables.get(name)
        if table is None:
            if name == "above":
                table = _next_true(above)
            elif name == "stop_run":
                table = _next_true(~above | brk)
            elif name == "stop_episode":
                table = _next_true(brk | ~ok | released)
            else:
                table = _next_true(brk | ~released)
            tables[name] = table
        return table

    cls = np.where(ok, C_CLEAN, C_NONE).astype(np.int8)
    in_state = np.zeros(n, np.bool_)
    episodes: list[tuple[int, Episode]] = []
    confirmed: list[tuple[int, int]] = []
    carried = st.mode in (_PENDING, _CLEARING)
    tail = C_TENT
    pf = -1 if carried else n  # where the current tentative stretch began; -1: before the chunk

    def settle(to: int, upto: int) -> None:
        nonlocal tail
        if pf < 0:
            tail = to
        if to == C_STRAIN:
            cls[max(pf, 0) : upto] = C_STRAIN

    i = 0
    while i < n:
        mode = st.mode
        if mode == _EPISODE:
            k = int(nxt("stop_episode")[i])
            if k > i:
                seg = v[i:k]
                cls[i:k] = C_STRAIN
                in_state[i:k] = True
                st.ep_sum += int(seg.sum())
                st.ep_count += k - i
                st.peak = max(st.peak, int(seg.max()))
            if k >= n:
                break
            if brk[k] or not ok[k]:
                # No release seen: it lasts to the end of its last usable sample, but not past
                # the start of the sample that broke it.
                last_end = int(tp[k - 1]) if k else prev_end
                episodes.append((k, _episode(st, lv, min(last_end, int(t[k])))))
                st.mode = _IDLE
            else:
                st.mode = _CLEARING
                st.release_ms = int(t[k])
                st.tent_sum = 0
                st.tent_count = 0
                pf = k
            i = k
            continue
        if mode == _CLEARING:
            k = int(nxt("stop_clear")[i])
            m = _first_reach(t, tp, i, k, st.release_ms + lv.clear_ms, pmax)
            if m < k:
                in_state[i:m] = True
                settle(C_CLEAN, m + 1)
                episodes.append((m, _episode(st, lv, st.release_ms)))
                st.mode = _IDLE
                i = m + 1
                continue
            in_state[i:k] = True
            if k > i:
                st.tent_sum += int(v[i:k].sum())
                st.tent_count += k - i
            if k >= n:
                break
            if brk[k] or not ok[k]:
                settle(C_CLEAN, k)
                episodes.append((k, _episode(st, lv, st.release_ms)))
                st.mode = _IDLE
            else:
                settle(C_STRAIN, k)
                st.ep_sum += st.tent_sum
                st.ep_count += st.tent_count
                st.mode = _EPISODE
            i = k
            continue
        if mode == _IDLE:
            if i == 0 and not above.any():
                break
            j = int(nxt("above")[i])
            if j >= n:
                break
            st.mode = _PENDING
            st.start_ms = int(t[j])
            st.peak = int(v[j])
            st.tent_sum = 0
            st.tent_count = 0
            pf = j
            lo, k = j, int(nxt("stop_run")[j + 1])
        else:
            lo, k = i, int(nxt("stop_run")[i])
        m = _first_reach(t, tp, lo, k, st.start_ms + lv.hold_ms, pmax)
        hi = m + 1 if m < k else k
        if hi > lo:
            seg = v[lo:hi]
            st.tent_sum += int(seg.sum())
            st.tent_count += hi - lo
            st.peak = max(st.peak, int(seg.max()))
        if m < k:
            settle(C_STRAIN, m + 1)
            in_state[m] = True
            st.mode = _EPISODE
            st.ep_sum = st.tent_sum
            st.ep_count = st.tent_count
            confirmed.append((m, st.start_ms))
            i = m + 1
        elif k >= n:
            break
        else:
            settle(C_CLEAN, k)
            st.mode = _IDLE
            i = k

    if st.mode in (_PENDING, _CLEARING):
        cls[max(pf, 0) :] = C_TENT
        st.tent_n = st.tent_n + n if pf < 0 else n - pf
    else:
        st.tent_n = 0
    return _DirOutput(cls, in_state, tail, episodes, confirmed)


def _finish_direction(st: _DirState, lv: _Levels, last_end: int) -> tuple[int, list[Episode]]:
    """End of data, settled as a break after the last sample; returns (tail class, episodes)."""
    episodes: list[Episode] = []
    tail = C_TENT
    if st.mode == _PENDING:
        tail = C_CLEAN
    elif st.mode == _EPISODE:
        episodes.append(_episode(st, lv, last_end))
    elif st.mode == _CLEARING:
        tail = C_CLEAN
        episodes.append(_episode(st, lv, st.release_ms))
    st.mode = _IDLE
    st.tent_n = 0
    return tail, episodes


# --- minutes ---------------------------------------------------------------------------------
_ACC_FIELDS = (
    "samples",
    "wear_ms",
    "strain_ms",
    "extension_ms",
    "lateral_ms",
    "strain_load_cdeg_ms",
    "flexion_sum_cdeg",
    "flexion_count",
    "flexion_max_cdeg",
    "episodes",
    "extension_episodes",
    "lateral_episodes",
)
_F = {name: i for i, name in enumerate(_ACC_FIELDS)}
_EPISODE_FIELD = (_F["episodes"], _F["extension_episodes"], _F["lateral_episodes"])


@dataclass
class _Buffer:
    """Samples not yet final in every direction (always a suffix of the stream)."""

    t: IntArray
    p: IntArray
    flex: IntArray
    ok: BoolArray
    cls: list[npt.NDArray[np.int8]]

    @classmethod
    def empty(cls) -> _Buffer:
        z = np.zeros(0, np.int64)
        return cls(z, z, z, np.zeros(0, np.bool_), [np.zeros(0, np.int8) for _ in Direction])

    def __len__(self) -> int:
        return int(self.t.shape[0])

    def extend(self, other: _Buffer) -> _Buffer:
        return _Buffer(
            np.concatenate([self.t, other.t]),
            np.concatenate([self.p, other.p]),
            np.concatenate([self.flex, other.flex]),
            np.concatenate([self.ok, other.ok]),
            [np.concatenate([a, b]) for a, b in zip(self.cls, other.cls, strict=True)],
        )

    def split(self, n: int) -> tuple[_Buffer, _Buffer]:
        head = _Buffer(
            self.t[:n], self.p[:n], self.flex[:n], self.ok[:n], [c[:n] for c in self.cls]
        )
        rest = _Buffer(
            self.t[n:], self.p[n:], self.flex[n:], self.ok[n:], [c[n:] for c in self.cls]
        )
        return head, rest


def _minute_sums(b: _Buffer, threshold: int) -> tuple[IntArray, npt.NDArray[np.int64]]:
    """Per-minute sums (rows in _ACC_FIELDS order) of final samples, split at minute edges."""
    t, p = b.t, b.p
    first = int(t.min()) // MINUTE_MS
    if first == int((t + p - 1).max()) // MINUTE_MS:
        return _one_minute_sums(b, threshold, first)
    end = t + p
    m0 = t // MINUTE_MS
    minutes: list[IntArray] = []
    pieces: list[IntArray] = []
    owners: list[IntArray] = []
    # A sample is at most 65535 ms long, so it touches at most three minutes.
    for k in range(3):
        m = m0 + k
        piece = np.minimum(end, (m + 1) * MINUTE_MS) - np.maximum(t, m * MINUTE_MS)
        hit = np.flatnonzero(piece > 0)
        minutes.append(m[hit])
        pieces.append(piece[hit])
        owners.append(hit)
    pm = np.concatenate(minutes)
    pc = np.concatenate(pieces)
    ow = np.concatenate(owners)
    uniq, inv = np.unique(np.concatenate([pm, m0]), return_inverse=True)
    pinv, sinv = inv[: pm.shape[0]], inv[pm.shape[0] :]
    out = np.zeros((len(_ACC_FIELDS), uniq.shape[0]), np.int64)
    ok = b.ok[ow]
    strain = b.cls[Direction.FLEXION][ow] == C_STRAIN

    def add(name: str, idx: IntArray, values: IntArray) -> None:
        np.add.at(out[_F[name]], idx, values)

    add("wear_ms", pinv, np.where(ok, pc, 0))
    add("strain_ms", pinv, np.where(strain, pc, 0))
    add("extension_ms", pinv, np.where(b.cls[Direction.EXTENSION][ow] == C_STRAIN, pc, 0))
    add("lateral_ms", pinv, np.where(b.cls[Direction.LATERAL][ow] == C_STRAIN, pc, 0))
    excess = np.maximum(b.flex[ow] - threshold, 0)
    add("strain_load_cdeg_ms", pinv, np.where(strain, pc * excess, 0))
    add("samples", sinv, np.ones_like(sinv))
    add("flexion_sum_cdeg", sinv, np.where(b.ok, b.flex, 0))
    add("flexion_count", sinv, b.ok.astype(np.int64))
    fmax = out[_F["flexion_max_cdeg"]]
    fmax[:] = np.iinfo(np.int64).min
    np.maximum.at(fmax, sinv[b.ok], b.flex[b.ok])
    return uniq, out


def _one_minute_sums(b: _Buffer, threshold: int, minute: int
                     ) -> tuple[IntArray, npt.NDArray[np.int64]]:
    """_minute_sums when every sample lies wholly inside one minute (the usual live step):
    the same sums without splitting samples at minute edges."""
    out = np.zeros((len(_ACC_FIELDS), 1), np.int64)
    p, ok, flex = b.p, b.ok, b.flex
    strain = b.cls[Direction.FLEXION] == C_STRAIN
    col = out[:, 0]
    col[_F["samples"]] = p.shape[0]
    col[_F["wear_ms"]] = int(p[ok].sum())
    col[_F["strain_ms"]] = int(p[strain].sum())
    col[_F["extension_ms"]] = int(p[b.cls[Direction.EXTENSION] == C_STRAIN].sum())
    col[_F["lateral_ms"]] = int(p[b.cls[Direction.LATERAL] == C_STRAIN].sum())
    col[_F["strain_load_cdeg_ms"]] = int((p * np.maximum(flex - threshold, 0))[strain].sum())
    col[_F["flexion_sum_cdeg"]] = int(flex[ok].sum())
    col[_F["flexion_count"]] = int(np.count_nonzero(ok))
    col[_F["flexion_max_cdeg"]] = int(flex[ok].max()) if ok.any() else np.iinfo(np.int64).min
    return np.asarray([minute], np.int64), out


class StrainDetector:
    """Streaming strain detection: feed() chunks in time order, then finish().

    Times are integer milliseconds in one base for the whole stream (device t_ms unwrapped
    within a boot, or UTC ms); minutes are floor(t / 60000) in that base. A gap (the next sample
    starts more than two periods, the longer of the two samples', after the previous one starts,
    or not after it at all) or a change of boot_id breaks every run and episode, exactly as on
    the device.
    """

    def __init__(self, config: StrainConfig | None = None, min_wear_s: int = 30) -> None:
        self.config = config or StrainConfig()
        if not 0 <= min_wear_s <= 60:
            raise ValueError(f"min_wear_s must be 0..60, got {min_wear_s}")
        self.min_wear_s = min_wear_s
        c = self.config
        hyst = c.hysteresis_cdeg
        self._levels = (
            _Levels(Direction.FLEXION, c.threshold_cdeg, c.threshold_cdeg - hyst,
                    c.hold_ms, c.clear_hold_ms, 1),
            _Levels(Direction.EXTENSION, -c.extension_threshold_cdeg,
                    -c.extension_threshold_cdeg - hyst, c.hold_ms, c.clear_hold_ms, -1),
            _Levels(Direction.LATERAL, c.lateral_threshold_cdeg,
                    c.lateral_threshold_cdeg - hyst, c.hold_ms, c.clear_hold_ms, 1),
        )
        self._states = [_DirState() for _ in Direction]
        self._buffer = _Buffer.empty()
        self._open: dict[int, npt.NDArray[np.int64]] = {}
        self._have_last = False
        self._last_t = 0
        self._last_p = 0
        self._last_boot: int | None = None
        self._last_emitted: int | None = None
        self.reopened_minutes = 0  # rows for a minute already emitted (time went backwards)

    # --- state ---------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """The state between chunks as JSON-compatible data (configuration not included). The
        not-yet-settled samples (up to a hold time of them) are packed: base64 of their
        little-endian bytes, since a service saves this often."""
        buf = self._buffer
        return {
            "version": STATE_VERSION,
            "states": [
                {"mode": st.mode, "start_ms": st.start_ms, "release_ms": st.release_ms,
                 "peak": st.peak, "ep_sum": st.ep_sum, "ep_count": st.ep_count,
                 "tent_sum": st.tent_sum, "tent_count": st.tent_count, "tent_n": st.tent_n}
                for st in self._states
            ],
            "buffer": {
                "t": _pack(buf.t, "<i8"), "p": _pack(buf.p, "<i8"),
                "flex": _pack(buf.flex, "<i8"), "ok": _pack(buf.ok, "u1"),
                "cls": [_pack(c, "i1") for c in buf.cls],
            },
            "open": [[minute, row.tolist()] for minute, row in sorted(self._open.items())],
            "have_last": self._have_last,
            "last_t": self._last_t,
            "last_p": self._last_p,
            "last_boot": self._last_boot,
            "last_emitted": self._last_emitted,
            "reopened_minutes": self.reopened_minutes,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], config: StrainConfig | None = None,
                   min_wear_s: int = 30) -> StrainDetector:
        """A detector that continues where the one `to_state` was taken from stopped (pass
        the same configuration). Raises ValueError for another state version."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"strain state version {state.get('version')!r} is not supported")
        det = cls(config, min_wear_s)
        det._states = [_DirState(**{k: int(v) for k, v in st.items()}) for st in state["states"]]
        if len(det._states) != len(Direction):
            raise ValueError(f"strain state has {len(det._states)} directions")
        b = state["buffer"]
        det._buffer = _Buffer(
            _unpack(b["t"], "<i8").astype(np.int64),
            _unpack(b["p"], "<i8").astype(np.int64),
            _unpack(b["flex"], "<i8").astype(np.int64),
            _unpack(b["ok"], "u1").astype(np.bool_),
            [_unpack(c, "i1").astype(np.int8) for c in b["cls"]],
        )
        det._open = {int(m): np.asarray(row, np.int64) for m, row in state["open"]}
        det._have_last = bool(state["have_last"])
        det._last_t = int(state["last_t"])
        det._last_p = int(state["last_p"])
        det._last_boot = None if state["last_boot"] is None else int(state["last_boot"])
        det._last_emitted = None if state["last_emitted"] is None else int(state["last_emitted"])
        det.reopened_minutes = int(state["reopened_minutes"])
        return det

    def may_report(self, minute: int) -> bool:
        """Whether an exposure row for `minute` (floor(t / 60000) in the stream's time base)
        may still be emitted: sums for it are open, or samples not settled yet touch it."""
        if minute in self._open:
            return True
        buf = self._buffer
        if not len(buf):
            return False
        first = int(buf.t[0]) // MINUTE_MS
        last = int(buf.t[-1] + buf.p[-1] - 1) // MINUTE_MS
        return first <= minute <= last

    # --- input ---------------------------------------------------------------------------------
    def feed(
        self,
        t_ms: npt.ArrayLike,
        period_ms: npt.ArrayLike,
        flexion_cdeg: npt.ArrayLike,
        lateral_cdeg: npt.ArrayLike,
        flags: npt.ArrayLike,
        boot_id: npt.ArrayLike | None = None,
    ) -> StrainResult:
        """Process the next samples; angles in centidegrees, NO_VALUE_CDEG for none."""
        n = np.asarray(t_ms).ravel().shape[0]
        t = self._column(t_ms, n, "t_ms")
        p = self._column(period_ms, n, "period_ms")
        flex = self._column(flexion_cdeg, n, "flexion_cdeg")
        lat = self._column(lateral_cdeg, n, "lateral_cdeg")
        fl = self._column(flags, n, "flags")
        boot = None if boot_id is None else self._column(boot_id, n, "boot_id")
        if n and (p.min() < 1 or p.max() > MAX_PERIOD_MS):
            raise ValueError(f"period_ms must be 1..{MAX_PERIOD_MS}")
        for name, a in (("flexion_cdeg", flex), ("lateral_cdeg", lat)):
            if n and (a.min() < NO_VALUE_CDEG or a.max() > 32767):
                raise ValueError(f"{name} must be i16 centidegrees")
        if n == 0:
            return StrainResult([], MinuteExposure.empty(), np.zeros(0, np.bool_))

        prev_t = np.empty(n, np.int64)
        prev_p = np.empty(n, np.int64)
        prev_t[1:], prev_p[1:] = t[:-1], p[:-1]
        prev_t[0], prev_p[0] = self._last_t, self._last_p
        dt = t - prev_t
        brk = (dt <= 0) | (dt > 2 * np.maximum(prev_p, p))
        if boot is not None:
            prev_b = np.empty(n, np.int64)
            prev_b[1:] = boot[:-1]
            prev_b[0] = boot[0] if self._last_boot is None else self._last_boot
            brk |= boot != prev_b
        if not self._have_last:
            brk[0] = False
        usable = (fl & _USE_MASK) == _USABLE
        ok_f = usable & (flex != NO_VALUE_CDEG)
        ok_l = usable & (lat != NO_VALUE_CDEG)
        values = (flex, -flex, np.abs(lat))
        oks = (ok_f, ok_f, ok_l)
        prev_end = self._last_t + self._last_p

        ended: list[tuple[int, int, Episode]] = []
        confirmed: list[tuple[int, int, int]] = []
        before = [st.tent_n for st in self._states]
        outs = []
        for d in Direction:
            out = _run_direction(
                self._states[d], self._levels[d], t, p, values[d], oks[d], brk, prev_end
            )
            outs.append(out)
            ended.extend((i, d, e) for i, e in out.episodes)
            confirmed.extend((i, d, s) for i, s in out.confirmed)
            for _, s in out.confirmed:
                self._acc(s // MINUTE_MS)[_EPISODE_FIELD[d]] += 1
        ended.sort(key=lambda x: (x[0], x[1]))
        confirmed.sort()
        episodes = [e for _, _, e in ended]
        started = [(Direction(d), s) for _, d, s in confirmed]
        # Settle the buffered samples the chunk resolved, then append the chunk.
        buf = self._buffer
        for d in Direction:
            if before[d] and outs[d].tail != C_TENT:
                buf.cls[d][len(buf) - before[d] :] = outs[d].tail
        chunk = _Buffer(t, p, flex, ok_f, [o.cls for o in outs])
        buf = buf.extend(chunk)
        self._have_last = True
        self._last_t, self._last_p = int(t[-1]), int(p[-1])
        if boot is not None:
            self._last_boot = int(boot[-1])
        minutes = self._account(buf, int(t[-1]) // MINUTE_MS)
        return StrainResult(
            episodes=episodes,
            minutes=minutes,
            in_strain=outs[Direction.FLEXION].in_state,
            started=started,
        )

    def feed_samples(
        self, samples: SampleArrays, t_ms: npt.ArrayLike | None = None
    ) -> StrainResult:
        """feed() from decoded samples; t_ms replaces samples.t_ms (pass unwrapped/UTC times)."""
        return self.feed(
            samples.t_ms if t_ms is None else t_ms,
            samples.period_ms,
            cdeg_from_deg(samples.flexion_deg),
            cdeg_from_deg(samples.lateral_deg),
            samples.flags,
            samples.boot_id,
        )

    def finish(self) -> StrainResult:
        """End of data: open runs and episodes are settled as a break after the last sample."""
        episodes: list[Episode] = []
        buf = self._buffer
        end = self._last_t + self._last_p
        for d in Direction:
            before = self._states[d].tent_n
            tail, eps = _finish_direction(self._states[d], self._levels[d], end)
            episodes.extend(eps)
            if before and tail != C_TENT:
                buf.cls[d][len(buf) - before :] = tail
        minutes = self._account(buf, None)
        self._have_last = False
        self._last_boot = None
        return StrainResult(episodes, minutes, np.zeros(0, np.bool_))

    # --- internals -----------------------------------------------------------------------------
    @staticmethod
    def _column(a: npt.ArrayLike, n: int, name: str) -> IntArray:
        arr = np.asarray(a).ravel()
        if arr.shape[0] != n:
            raise ValueError(f"{name} has {arr.shape[0]} values, t_ms has {n}")
        if n and arr.dtype.kind not in "iub":
            raise ValueError(f"{name} must be integers, got {arr.dtype}")
        return arr.astype(np.int64)

    def _acc(self, minute: int) -> npt.NDArray[np.int64]:
        row = self._open.get(minute)
        if row is None:
            row = np.zeros(len(_ACC_FIELDS), np.int64)
            row[_F["flexion_max_cdeg"]] = np.iinfo(np.int64).min
            self._open[minute] = row
        return row

    def _account(self, buf: _Buffer, latest_minute: int | None) -> MinuteExposure:
        """Move final samples into minute sums and emit the minutes nothing can change any more."""
        pending = max(st.tent_n for st in self._states) if latest_minute is not None else 0
        final, self._buffer = buf.split(len(buf) - pending)
        if len(final):
            uniq, sums = _minute_sums(final, self.config.threshold_cdeg)
            fmax = _F["flexion_max_cdeg"]
            for j, minute in enumerate(uniq.tolist()):
                row = self._acc(minute)
                col = sums[:, j]
                row[:fmax] += col[:fmax]
                row[fmax + 1 :] += col[fmax + 1 :]
                row[fmax] = max(int(row[fmax]), int(col[fmax]))
        if latest_minute is None:
            bound = None
        else:
            bound = latest_minute
            if len(self._buffer):
                bound = min(bound, int(self._buffer.t[0]) // MINUTE_MS)
        done = sorted(m for m in self._open if bound is None or m < bound)
        return self._emit(done)

    def _emit(self, done: list[int]) -> MinuteExposure:
        if not done:
            return MinuteExposure.empty()
        rows = np.stack([self._open.pop(m) for m in done], axis=1)
        for m in done:
            if self._last_emitted is not None and m <= self._last_emitted:
                self.reopened_minutes += 1
            self._last_emitted = m if self._last_emitted is None else max(self._last_emitted, m)
        cols = {name: rows[i] for i, name in enumerate(_ACC_FIELDS)}
        cols["flexion_max_cdeg"] = np.where(
            cols["flexion_count"] > 0, cols["flexion_max_cdeg"], NO_VALUE_CDEG
        )
        wear_s = _device_seconds(cols["wear_ms"])
        return MinuteExposure(
            minute=np.asarray(done, np.int64),
            enough_wear=wear_s >= self.min_wear_s,
            **cols,
        )


def _pack(values: npt.NDArray[Any], dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(values, dtype=dtype).tobytes()).decode("ascii")


def _unpack(text: str, dtype: str) -> npt.NDArray[Any]:
    return np.frombuffer(base64.b64decode(text), dtype=dtype).copy()


def cdeg_from_deg(deg: npt.ArrayLike) -> IntArray:
    """Degrees (NaN for none, as decode gives them) back to the wire's integer centidegrees."""
    a = np.asarray(deg, dtype=np.float64)
    out = np.full(a.shape, NO_VALUE_CDEG, np.int64)
    good = np.isfinite(a)
    out[good] = np.clip(np.rint(a[good] * 100.0), -32767, 32767).astype(np.int64)
    return out


def detect(
    t_ms: npt.ArrayLike,
    period_ms: npt.ArrayLike,
    flexion_cdeg: npt.ArrayLike,
    lateral_cdeg: npt.ArrayLike,
    flags: npt.ArrayLike,
    boot_id: npt.ArrayLike | None = None,
    config: StrainConfig | None = None,
    min_wear_s: int = 30,
) -> StrainResult:
    """Batch detection over one stream: feed() everything, then finish()."""
    det = StrainDetector(config, min_wear_s)
    first = det.feed(t_ms, period_ms, flexion_cdeg, lateral_cdeg, flags, boot_id)
    return StrainResult.merge([first, det.finish()])
