"""Device milliseconds to UTC: one clock model per (device, boot), append-only and persisted.

docs/alignment.md explains the method, its error bounds and why it makes storage idempotent.
In short:

* Evidence. Every live packet is sent right after its last sample was taken, so
  `receive_utc - t_last` is the true clock offset plus a one-sided, heavy-tailed latency. Backfill
  packets carry no timing information and are ignored here. Each `bin_ms` of device time keeps
  only its lowest offset (the lower envelope), for `fit_window_ms`.
* Estimate. The offset line lying below every envelope point and as high as possible in the
  middle of their span (the lower-convex-hull edge there; a linear programme that one-sided jitter
  cannot pull up or down). Its slope is the drift, clamped to ±`max_drift_ppm` and, while the
  evidence is short and noisy, shrunk towards the previous boot's drift. A SET_TIME anchor bounds
  the offset from below (the host's time was sent before the device applied it) and, with the
  response's arrival, from above; with no live evidence its midpoint is the estimate.
* Commitment. The mapping handed out is a chain of knots (t, utc, slope in ppb) evaluated in integer
  arithmetic. Once a device time has been mapped its value never changes: new evidence only moves
  the mapping for device times after the newest mapped one (slewing towards the estimate at most
  `max_slew_ppm`), and device times before the oldest mapped one get new knots in front. The same
  sample therefore always gets the same integer millisecond, whether it arrives live, again by
  backfill, or after a host restart with the state saved in between.

t_ms wraps at 2^32 ms within a boot; it is unwrapped against the newest device time seen for that
boot, so a sample must lie within 2^31 ms (24.8 days) of it.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from neckline.decode import SampleArrays, SummaryArrays
from neckline.protocol import SummaryFlag

log = logging.getLogger(__name__)

T_MODULUS = 1 << 32
T_MASK = T_MODULUS - 1
_HALF = 1 << 31
PPB = 1_000_000_000
_HALF_PPB = PPB // 2
STATE_VERSION = 1

IntArray = npt.NDArray[np.int64]


class Placement(IntEnum):
    """What happened to one device time."""

    PLACED = 0
    PENDING = 1  # clock evidence after it is still due; ask again later (or flush)
    NO_CLOCK = 2  # nothing is known about this boot's clock
    EXPIRED = 3  # older than the retained part of the boot's model


PLACEMENT_REASONS: dict[Placement, str] = {
    Placement.PENDING: "waiting for clock evidence",
    Placement.NO_CLOCK: "no clock evidence for the boot (never seen live, no SET_TIME anchor)",
    Placement.EXPIRED: "older than the retained clock model of the boot",
}


@dataclass(frozen=True)
class AlignConfig:
    bin_ms: int = 10_000  # envelope resolution: one minimum per bin of device time
    fit_window_ms: int = 3_600_000  # evidence kept for the fit
    min_rate_span_ms: int = 60_000  # shorter evidence: drift from the previous boot, not fitted
    max_drift_ppm: float = 250.0  # plausible crystal error; fitted drift is clamped to it
    drift_prior_ppm: float = 50.0  # spread of drift expected before evidence (for shrinkage)
    max_slew_ppm: float = 1000.0  # fastest correction of a committed mapping
    tolerance_ms: float = 2.0  # plan error tolerated before the mapping is re-planned
    settle_ms: int = 0  # evidence wanted after a device time before it is mapped
    quiet_ms: int = 5_000  # no evidence for this long: it has stopped, waiting cannot help
    warmup_ms: int = 30_000  # unbroken evidence wanted before mapping beyond the committed end
    warmup_packets: int = 20  # ... or this many live packets of it, whichever comes first
    gap_ms: int = 30_000  # a longer pause in evidence (disconnection) starts a new warm-up
    backward_grid_ms: int = 600_000  # knots added in front are spaced on this grid
    retain_ms: int = 14 * 86_400_000  # committed mapping kept this far behind the newest
    max_boots: int = 16  # boot models kept per device

    def __post_init__(self) -> None:
        if self.bin_ms <= 0 or self.fit_window_ms < self.bin_ms:
            raise ValueError("bin_ms must be positive and not exceed fit_window_ms")
        if not 0 < self.max_drift_ppm < 10_000 or not 0 < self.max_slew_ppm < 100_000:
            raise ValueError("max_drift_ppm and max_slew_ppm must be positive and small")
        if self.max_drift_ppm + self.max_slew_ppm >= 500_000:
            raise ValueError("drift plus slew must keep the mapping increasing")


@dataclass(frozen=True)
class ClockLine:
    """offset(t) = utc - t = offset_ms + rate * (t - t_ref), t in unwrapped device ms."""

    t_ref: int
    offset_ms: float
    rate: float  # dimensionless drift (1e-6 = 1 ppm)
    fitted: bool  # rate fitted from this boot's evidence (not assumed)

    def utc(self, t: int) -> float:
        return t + self.offset_ms + self.rate * (t - self.t_ref)


@dataclass(frozen=True)
class Placed:
    """UTC milliseconds per input time (meaningful where status == PLACED)."""

    utc_ms: IntArray
    status: npt.NDArray[np.uint8]

    @property
    def placed(self) -> npt.NDArray[np.bool_]:
        return self.status == Placement.PLACED

    def counts(self) -> dict[str, int]:
        values, counts = np.unique(self.status, return_counts=True)
        return {Placement(int(v)).name.lower(): int(c) for v, c in zip(values, counts, strict=True)}


@dataclass(frozen=True)
class _Anchor:
    t: int  # unwrapped device ms when the time was applied
    lower: int  # offset lower bound: sent_utc - t
    upper: int | None  # offset upper bound: response_utc - t


@dataclass
class _BootClock:
    boot_id: int
    ref: int  # newest unwrapped device time seen: the unwrap reference
    order: int
    prior_rate: float  # drift assumed until this boot's evidence spans min_rate_span_ms
    bins: dict[int, tuple[int, int]] = field(default_factory=dict)  # bin -> (t, offset)
    resume_at: int | None = None  # device time where the current unbroken evidence began
    resume_packets: int = 0  # live packets since resume_at
    evidence_hi: int | None = None
    last_receive: int | None = None  # host UTC of the newest evidence
    anchor: _Anchor | None = None
    knot_t: list[int] = field(default_factory=list)
    knot_u: list[int] = field(default_factory=list)
    knot_s: list[int] = field(default_factory=list)  # slope - 1, in ppb
    lo: int | None = None  # committed domain [lo, hi]
    hi: int | None = None
    closed_below: bool = False  # old knots were dropped: no extension in front any more
    line_cache: ClockLine | None = None

    def unwrap(self, t_ms: IntArray) -> IntArray:
        base = self.ref & T_MASK
        return self.ref + ((t_ms - base + _HALF) & T_MASK) - _HALF

    def evaluate(self, u: IntArray) -> IntArray:
        """The committed mapping at device times u (all within [lo, hi] or planned knots)."""
        kt = np.asarray(self.knot_t, dtype=np.int64)
        idx = np.searchsorted(kt, u, side="right") - 1
        d = u - kt[idx]
        ku = np.asarray(self.knot_u, dtype=np.int64)[idx]
        ks = np.asarray(self.knot_s, dtype=np.int64)[idx]
        return ku + d + (d * ks + _HALF_PPB) // PPB

    def evaluate1(self, t: int) -> int:
        k = max(0, _bisect_right(self.knot_t, t) - 1)
        d = t - self.knot_t[k]
        return self.knot_u[k] + d + (d * self.knot_s[k] + _HALF_PPB) // PPB


def _bisect_right(values: list[int], x: int) -> int:
    lo, hi = 0, len(values)
    while lo < hi:
        mid = (lo + hi) // 2
        if x < values[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _round(x: float) -> int:
    return math.floor(x + 0.5)


def _lower_hull(points: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Lower convex hull of points sorted by t (distinct t), exact in integers."""
    hull: list[tuple[int, int]] = []
    for p in points:
        while len(hull) >= 2:
            (t1, y1), (t2, y2) = hull[-2], hull[-1]
            # Drop the middle point unless it lies strictly below the chord to p.
            if (t2 - t1) * (p[1] - y1) - (y2 - y1) * (p[0] - t1) <= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    return hull


def fit_envelope(
    points: list[tuple[int, int]],
    max_rate: float,
    prior_rate: float,
    min_span: int,
    prior_sd: float = 50e-6,
) -> ClockLine:
    """The offset line below every (t, offset) point, highest in the middle of their span.

    Maximising a + b*m subject to a + b*t_i <= y_i is concave in b with its peak at the slope of
    the lower-hull edge spanning m; with |b| bounded the optimum is that slope clamped. m is the
    middle of the time span rather than the mean of the points, so that across a long pause in
    the evidence the slope comes from the edge bridging it.

    A short span makes that slope noisy (envelope noise / span), so it is shrunk towards
    `prior_rate` by the weight prior_sd^2 / (prior_sd^2 + noise_sd^2), noise_sd being the median
    height of the points above the line divided by the span; the offset is then the
    highest line of that slope below every point. Below `min_span` the slope is the prior.
    """
    pts = sorted(points)
    t0, y0 = pts[0]
    rel = [(t - t0, y - y0) for t, y in pts]
    span = rel[-1][0]
    prior = max(-max_rate, min(max_rate, prior_rate))
    if span < min_span or len(rel) < 2:
        offset = min(y - prior * t for t, y in rel)
        return ClockLine(t_ref=t0, offset_ms=y0 + offset, rate=prior, fitted=False)
    hull = _lower_hull(rel)
    middle = span / 2
    k = 0
    while k < len(hull) - 2 and hull[k + 1][0] <= middle:
        k += 1
    (ta, ya), (tb, yb) = hull[k], hull[k + 1]
    rate = max(-max_rate, min(max_rate, (yb - ya) / (tb - ta)))
    heights = sorted(y - ya - rate * (t - ta) for t, y in rel)
    noise_sd = heights[len(heights) // 2] / span
    weight = 1.0 if noise_sd <= 0 else prior_sd**2 / (prior_sd**2 + noise_sd**2)
    rate = prior + weight * (rate - prior)
    offset = min(y - rate * t for t, y in rel)
    return ClockLine(t_ref=t0, offset_ms=y0 + offset, rate=rate, fitted=weight >= 0.5)


@dataclass
class AlignStats:
    evidence: int = 0
    placed: int = 0
    no_clock: int = 0
    expired: int = 0
    replans: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class ClockAligner:
    """Clock models of one device's boots. Feed evidence with `observe`, map with `place_*`."""

    def __init__(self, config: AlignConfig | None = None) -> None:
        self.config = config or AlignConfig()
        self.stats = AlignStats()
        self._boots: dict[int, _BootClock] = {}
        self._order = 0

    # --- evidence ----------------------------------------------------------------------------
    def observe(self, samples: SampleArrays, receive_utc_ms: npt.ArrayLike) -> int:
        """Use the live packets of a decoded batch as clock evidence.

        `receive_utc_ms[p]` is the host UTC (ms) at which input packet p (the decoder's
        packet_index) arrived. Returns the number of evidence points taken.
        """
        n = len(samples)
        if n == 0:
            return 0
        receive = np.asarray(receive_utc_ms, dtype=np.int64)
        pi = samples.packet_index
        last = np.flatnonzero(np.r_[pi[1:] != pi[:-1], True])
        last = last[~samples.backfill[last]]
        if last.size == 0:
            return 0
        boots = samples.boot_id[last]
        for boot_id in np.unique(boots).tolist():
            pick = last[boots == boot_id]
            self.add_evidence(int(boot_id), samples.t_ms[pick], receive[pi[pick]])
        return int(last.size)

    def add_evidence(
        self, boot_id: int, t_ms: npt.ArrayLike, receive_utc_ms: npt.ArrayLike
    ) -> None:
        """Packets of boot `boot_id` sent right after device time t_ms, received at host UTC."""
        t = np.asarray(t_ms, dtype=np.int64)
        r = np.asarray(receive_utc_ms, dtype=np.int64)
        if t.size == 0:
            return
        boot = self._boot_for(boot_id, int(t[0]))
        u = boot.unwrap(t)
        boot.ref = max(boot.ref, int(u.max()))
        y = r - u
        b = u // self.config.bin_ms
        order = np.lexsort((u, y, b))  # per bin: lowest offset first, earliest t on ties
        b, u, y = b[order], u[order], y[order]
        first = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
        changed = False  # the estimate depends on the bins only: refit when one moved
        for k in first.tolist():
            key, point = int(b[k]), (int(u[k]), int(y[k]))
            old = boot.bins.get(key)
            if old is None or (point[1], point[0]) < (old[1], old[0]):
                boot.bins[key] = point
                changed = True
        previous = boot.evidence_hi
        ahead = np.sort(u if previous is None else u[u > previous])
        if ahead.size:
            run = ahead if previous is None else np.r_[previous, ahead]
            if previous is None:
                boot.resume_at = int(run[0])
                boot.resume_packets = 0
            breaks = np.flatnonzero(np.diff(run) > self.config.gap_ms)
            if breaks.size:
                boot.resume_at = int(run[breaks[-1] + 1])
                boot.resume_packets = 0
                ahead = run[breaks[-1] + 1 :]
            boot.resume_packets += int(ahead.size)
            boot.evidence_hi = int(ahead[-1])
        newest = int(r.max())
        boot.last_receive = newest if boot.last_receive is None else max(boot.last_receive, newest)
        cfg = self.config
        newest_t = boot.evidence_hi if boot.evidence_hi is not None else int(u.max())
        keep_from = newest_t // cfg.bin_ms - cfg.fit_window_ms // cfg.bin_ms
        for key in [k for k in boot.bins if k < keep_from]:
            del boot.bins[key]
            changed = True
        if changed:
            boot.line_cache = None
        self.stats.evidence += int(t.size)

    def add_anchor(
        self, boot_id: int, t_ms: int, sent_utc_ms: int, response_utc_ms: int | None = None
    ) -> None:
        """A SET_TIME exchange: the device applied `sent_utc_ms` at its (boot_id, t_ms); the
        response arrived at host UTC `response_utc_ms` (if known)."""
        boot = self._boot_for(boot_id, t_ms)
        u = int(boot.unwrap(np.asarray([t_ms], dtype=np.int64))[0])
        boot.ref = max(boot.ref, u)
        upper = None if response_utc_ms is None else response_utc_ms - u
        if upper is not None and upper < sent_utc_ms - u:
            log.warning("SET_TIME response arrived before it was sent; ignoring its arrival time")
            upper = None
        boot.anchor = _Anchor(t=u, lower=sent_utc_ms - u, upper=upper)
        boot.line_cache = None

    # --- estimate ----------------------------------------------------------------------------
    def estimate(self, boot_id: int) -> ClockLine | None:
        """The current best offset line of a boot (None when nothing is known)."""
        boot = self._boots.get(boot_id)
        return None if boot is None else self._line(boot)

    def _line(self, boot: _BootClock) -> ClockLine | None:
        if boot.line_cache is not None:
            return boot.line_cache
        cfg = self.config
        anchor = boot.anchor
        line: ClockLine | None
        if boot.bins:
            line = fit_envelope(
                list(boot.bins.values()),
                cfg.max_drift_ppm * 1e-6,
                boot.prior_rate,
                cfg.min_rate_span_ms,
                cfg.drift_prior_ppm * 1e-6,
            )
            if anchor is not None:
                at = line.offset_ms + line.rate * (anchor.t - line.t_ref)
                bound = min(max(at, anchor.lower), at if anchor.upper is None else anchor.upper)
                if bound != at:
                    shifted = line.offset_ms + (bound - at)
                    line = ClockLine(line.t_ref, shifted, line.rate, line.fitted)
        elif anchor is not None:
            mid = anchor.lower if anchor.upper is None else (anchor.lower + anchor.upper) / 2
            line = ClockLine(anchor.t, float(mid), boot.prior_rate, fitted=False)
        else:
            line = None
        boot.line_cache = line
        return line

    # --- placement ---------------------------------------------------------------------------
    def place(
        self, boot_id: npt.ArrayLike, t_ms: npt.ArrayLike, now_utc_ms: int | None = None
    ) -> Placed:
        """UTC ms for device times (boot_id, t_ms as on the wire).

        With `now_utc_ms` given, times of a boot whose evidence is still flowing are held back
        (PENDING) until `settle_ms` of evidence lies after them; None places everything now
        (use it when flushing, e.g. at disconnect or shutdown).
        """
        boots = np.asarray(boot_id, dtype=np.int64)
        t = np.asarray(t_ms, dtype=np.int64)
        utc = np.zeros(t.shape, dtype=np.int64)
        status = np.full(t.shape, Placement.NO_CLOCK, dtype=np.uint8)
        for b in np.unique(boots).tolist():
            sel = np.flatnonzero(boots == b)
            boot = self._boots.get(int(b))
            if boot is None:
                continue
            utc[sel], status[sel] = self._place_boot(boot, t[sel], now_utc_ms)
        self._count(status)
        return Placed(utc, status)

    def place_samples(self, samples: SampleArrays, now_utc_ms: int | None = None) -> Placed:
        return self.place(samples.boot_id, samples.t_ms, now_utc_ms)

    def place_summaries(
        self, summaries: SummaryArrays, now_utc_ms: int | None = None
    ) -> Placed:
        """Minute starts in UTC ms: TIME_VALID records directly, boot-relative ones through their
        boot's clock model. Records that cannot be placed are counted and logged by reason."""
        n = len(summaries)
        utc = np.zeros(n, dtype=np.int64)
        status = np.full(n, Placement.NO_CLOCK, dtype=np.uint8)
        valid = (summaries.flags & np.uint8(SummaryFlag.TIME_VALID)) != 0
        start_ms = summaries.start.astype(np.int64) * 1000
        utc[valid] = start_ms[valid]
        status[valid] = Placement.PLACED
        rel = np.flatnonzero(~valid)
        if rel.size:
            placed = self.place(summaries.boot_id[rel], start_ms[rel] & T_MASK, now_utc_ms)
            utc[rel], status[rel] = placed.utc_ms, placed.status
        return Placed(utc, status)

    def _place_boot(
        self, boot: _BootClock, t: IntArray, now_utc_ms: int | None
    ) -> tuple[IntArray, npt.NDArray[np.uint8]]:
        cfg = self.config
        u = boot.unwrap(t)
        utc = np.zeros(u.shape, dtype=np.int64)
        status = np.full(u.shape, Placement.PLACED, dtype=np.uint8)
        if boot.closed_below and boot.lo is not None:
            status[u < boot.lo] = Placement.EXPIRED
        hi, resume, last = boot.evidence_hi, boot.resume_at, boot.last_receive
        # Waiting only helps while evidence is still arriving for this boot.
        flowing = now_utc_ms is not None and last is not None and now_utc_ms - last < cfg.quiet_ms
        if flowing and hi is not None:
            early = u > hi - cfg.settle_ms
            warm = resume is None or hi - resume >= cfg.warmup_ms or (
                boot.resume_packets >= cfg.warmup_packets)
            if not warm:
                # Fresh evidence after a start or a disconnection: extend the mapping only once
                # enough of it has come in to pin down the line across the pause.
                early |= u > (boot.hi if boot.hi is not None else -_HALF * _HALF)
            status[early & (status == Placement.PLACED)] = Placement.PENDING
        todo = status == Placement.PLACED
        if todo.any():
            umin, umax = int(u[todo].min()), int(u[todo].max())
            lo_c, hi_c = boot.lo, boot.hi
            if lo_c is None or hi_c is None or umin < lo_c or umax > hi_c:
                line = self._line(boot)
                if line is None:
                    status[todo] = Placement.NO_CLOCK
                    return utc, status
                self._cover(boot, umin, umax, line)
            utc[todo] = boot.evaluate(u[todo])
        boot.ref = max(boot.ref, int(u.max()))
        return utc, status

    def _cover(self, boot: _BootClock, umin: int, umax: int, line: ClockLine) -> None:
        if boot.lo is None or boot.hi is None:
            boot.knot_t, boot.knot_u = [umin], [_round(line.utc(umin))]
            boot.knot_s = [self._rate_ppb(line.rate)]
            boot.lo = boot.hi = umin
        if umin < boot.lo:
            self._extend_back(boot, umin, line)
        if umax > boot.hi:
            self._extend_forward(boot, umax, line)
            self._retain(boot)

    def _rate_ppb(self, rate: float) -> int:
        limit = round(self.config.max_drift_ppm * 1000)
        return max(-limit, min(limit, _round(rate * PPB)))

    def _extend_forward(self, boot: _BootClock, target: int, line: ClockLine) -> None:
        assert boot.hi is not None
        tol = self.config.tolerance_ms
        if abs(line.utc(target) - boot.evaluate1(target)) <= tol:
            boot.hi = target
            return
        while boot.knot_t[-1] > boot.hi:  # drop plans no device time has used yet
            boot.knot_t.pop()
            boot.knot_u.pop()
            boot.knot_s.pop()
        hi = boot.hi
        if abs(line.utc(target) - boot.evaluate1(target)) > tol:
            self.stats.replans += 1
            u_hi = boot.evaluate1(hi)
            err = line.utc(hi) - u_hi
            rate = self._rate_ppb(line.rate)
            if abs(err) <= tol:
                self._set_knot(boot, hi, u_hi, rate)
            else:
                slew = round(self.config.max_slew_ppm * 1000) * (1 if err > 0 else -1)
                self._set_knot(boot, hi, u_hi, rate + slew)
                duration = max(1, math.ceil(abs(err) * 1e6 / self.config.max_slew_ppm))
                t2 = hi + duration
                self._set_knot(boot, t2, boot.evaluate1(t2), rate)
        boot.hi = target

    def _set_knot(self, boot: _BootClock, t: int, u: int, slope_ppb: int) -> None:
        if boot.knot_t[-1] == t:  # a knot only ever used at its own time: its slope is free
            boot.knot_s[-1] = slope_ppb
            return
        boot.knot_t.append(t)
        boot.knot_u.append(u)
        boot.knot_s.append(slope_ppb)

    def _extend_back(self, boot: _BootClock, target: int, line: ClockLine) -> None:
        assert boot.lo is not None
        grid = self.config.backward_grid_ms
        lo = boot.lo
        d = -(-(lo - target) // grid) * grid
        t_new = lo - d
        u_lo = boot.knot_u[0]
        limit = (self.config.max_drift_ppm + self.config.max_slew_ppm) * 1e-6
        slope = (u_lo - line.utc(t_new)) / d - 1.0
        s = _round(max(-limit, min(limit, slope)) * PPB)
        u_new = u_lo - d - (d * s + _HALF_PPB) // PPB
        boot.knot_t.insert(0, t_new)
        boot.knot_u.insert(0, u_new)
        boot.knot_s.insert(0, s)
        boot.lo = t_new

    def _retain(self, boot: _BootClock) -> None:
        assert boot.hi is not None
        cut = boot.hi - self.config.retain_ms
        drop = 0
        while drop + 1 < len(boot.knot_t) and boot.knot_t[drop + 1] <= cut:
            drop += 1
        if drop:
            del boot.knot_t[:drop], boot.knot_u[:drop], boot.knot_s[:drop]
            boot.lo = boot.knot_t[0]
            boot.closed_below = True

    def _boot_for(self, boot_id: int, t_raw: int) -> _BootClock:
        boot = self._boots.get(boot_id)
        if boot is None:
            boot = _BootClock(
                boot_id=boot_id, ref=t_raw, order=self._order, prior_rate=self._prior_rate()
            )
            self._order += 1
            self._boots[boot_id] = boot
            if len(self._boots) > self.config.max_boots:
                oldest = min(self._boots.values(), key=lambda c: c.order)
                log.info("forgetting the clock model of boot %d", oldest.boot_id)
                del self._boots[oldest.boot_id]
        return boot

    def _prior_rate(self) -> float:
        """Drift of the newest boot whose evidence was long enough to fit it, else 0."""
        for boot in sorted(self._boots.values(), key=lambda c: -c.order):
            line = self._line(boot)
            if line is not None and line.fitted:
                return line.rate
        return 0.0

    def _count(self, status: npt.NDArray[np.uint8]) -> None:
        placed = int(np.count_nonzero(status == Placement.PLACED))
        self.stats.placed += placed
        for reason in (Placement.NO_CLOCK, Placement.EXPIRED):
            n = int(np.count_nonzero(status == reason))
            if n:
                if reason is Placement.NO_CLOCK:
                    self.stats.no_clock += n
                else:
                    self.stats.expired += n
                log.warning("%d device times cannot be placed: %s", n, PLACEMENT_REASONS[reason])

    # --- persistence -------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        boots = []
        for boot in self._boots.values():
            anchor = boot.anchor
            boots.append({
                "boot_id": boot.boot_id,
                "ref": boot.ref,
                "order": boot.order,
                "prior_rate": boot.prior_rate,
                "bins": [[k, t, y] for k, (t, y) in sorted(boot.bins.items())],
                "resume_at": boot.resume_at,
                "resume_packets": boot.resume_packets,
                "evidence_hi": boot.evidence_hi,
                "last_receive": boot.last_receive,
                "anchor": None if anchor is None else [anchor.t, anchor.lower, anchor.upper],
                "knots": [boot.knot_t, boot.knot_u, boot.knot_s],
                "lo": boot.lo,
                "hi": boot.hi,
                "closed_below": boot.closed_below,
            })
        return {
            "version": STATE_VERSION,
            "order": self._order,
            "stats": self.stats.as_dict(),
            "boots": boots,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], config: AlignConfig | None = None) -> ClockAligner:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"clock state version {state.get('version')!r} is not supported")
        aligner = cls(config)
        aligner._order = int(state["order"])
        aligner.stats = AlignStats(**{k: int(v) for k, v in state["stats"].items()})
        for entry in state["boots"]:
            anchor = entry["anchor"]
            kt, ku, ks = entry["knots"]
            boot = _BootClock(
                boot_id=int(entry["boot_id"]),
                ref=int(entry["ref"]),
                order=int(entry["order"]),
                prior_rate=float(entry["prior_rate"]),
                bins={int(k): (int(t), int(y)) for k, t, y in entry["bins"]},
                resume_at=_opt_int(entry["resume_at"]),
                resume_packets=int(entry.get("resume_packets", 0)),
                evidence_hi=_opt_int(entry["evidence_hi"]),
                last_receive=_opt_int(entry["last_receive"]),
                anchor=None if anchor is None else _Anchor(
                    int(anchor[0]), int(anchor[1]), _opt_int(anchor[2])
                ),
                knot_t=[int(v) for v in kt],
                knot_u=[int(v) for v in ku],
                knot_s=[int(v) for v in ks],
                lo=_opt_int(entry["lo"]),
                hi=_opt_int(entry["hi"]),
                closed_below=bool(entry["closed_below"]),
            )
            aligner._boots[boot.boot_id] = boot
        return aligner

    def to_json(self) -> str:
        return json.dumps(self.to_state(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, config: AlignConfig | None = None) -> ClockAligner:
        state: dict[str, Any] = json.loads(text)
        return cls.from_state(state, config)

    @property
    def boots(self) -> list[int]:
        return sorted(self._boots)

    def knots(self, boot_id: int) -> int:
        """How many knots the committed mapping of a boot has (for diagnostics)."""
        boot = self._boots.get(boot_id)
        return 0 if boot is None else len(boot.knot_t)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)
