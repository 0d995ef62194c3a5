"""Sustained neck-strain detection on the device. docs/strain.md is the definition; the host's
twin is host/neckline/strain.py and the two must agree on every episode boundary.

One call per posture sample, at the stream rate, with integer centidegrees and milliseconds:

    s = Strain()
    s.configure(values)                     # indexed by config key, like proto.CONFIG_DEFAULTS
    ...
    r = s.update(dt_ms, period_ms, flexion_cd, lateral_cd, flags)
    if r & STARTED_ANY:
        haptics.alert(now_ms)
    if r & FLEX_STARTED:                    # STRAIN_START, t_ms = episode start
        t0 = t_ms - s.flex.start_back       # (start_back ms before this sample's start)
    if r & FLEX_ENDED:                      # STRAIN_END: s.flex.dur ms, peak s.flex.end_peak
        t1 = t_ms - s.flex.end_back
    flags |= proto.SF_IN_STRAIN if s.in_strain else 0

dt_ms is the time from the previous sample's start to this one's (the caller owns the clock and
its wrap-around; time.ticks_diff on a board). The detector keeps only elapsed times, never an
absolute clock, so every number it holds stays a small int on boards with 31-bit small ints and
update() allocates nothing.

Three directions run the same machine on their own value: flexion (flexion_cd), extension
(-flexion_cd) and lateral bend (abs(lateral_cd)). Flexion is the primary exposure ("strain"): its
state is the IN_STRAIN flag, its episodes are the STRAIN_START/STRAIN_END events and the summary
records' strain seconds. Extension and lateral episodes are separate categories that only alert.

Per direction and sample the detector also says how that sample counts (cls: C_NONE, C_CLEAN,
C_STRAIN or C_TENT, tentative) and how an earlier tentative stretch was settled (pre: before this
sample is counted; post: after it, including it). minute_log.MinuteLog consumes those.
"""

from wearable import proto

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# Direction modes.
IDLE = const(0)
PENDING = const(1)  # above the threshold, hold not yet reached: tentative
EPISODE = const(2)  # in an episode
CLEARING = const(3)  # in an episode, below the release level, clear hold not yet reached: tentative

# How one sample counts for its direction.
C_NONE = const(0)  # not usable (not worn, not calibrated, no angle): no wear, no strain
C_CLEAN = const(1)  # measured, not strain
C_STRAIN = const(2)  # measured, inside an episode
C_TENT = const(3)  # measured, decided later by a resolution

# Resolutions of the tentative stretch (always the latest samples, contiguous).
R_NONE = const(0)
R_CONFIRM = const(1)  # the hold was reached: the stretch is strain and an episode began with it
R_REJECT = const(2)  # the run broke before the hold: the stretch is not strain
R_RESUME = const(3)  # the release was interrupted: the stretch stays inside the episode
R_RELEASE = const(4)  # the clear hold was reached: the stretch is not strain, the episode ended

# update() result bits.
FLEX_STARTED = const(0x01)
FLEX_ENDED = const(0x02)
EXT_STARTED = const(0x04)
EXT_ENDED = const(0x08)
LAT_STARTED = const(0x10)
LAT_ENDED = const(0x20)
STARTED_ANY = const(0x15)
ENDED_ANY = const(0x2A)

_USE_MASK = proto.SF_CALIBRATED | proto.SF_NOT_WORN
_USABLE = proto.SF_CALIBRATED
_NO_VALUE = proto.NO_VALUE


class Direction:
    """The strain machine for one direction. Fields after update() describe the latest sample."""

    def __init__(self):
        self.on = 0  # strictly above: exceeding
        self.off = 0  # strictly below: released
        self.hold = 0  # ms
        self.clear = 0  # ms
        self.mode = IDLE
        self.run = 0  # ms from the run (episode) start to the latest sample's start
        self.clr = 0  # ms from the release start to the latest sample's start
        self.peak = 0
        self.cls = C_NONE
        self.pre = R_NONE
        self.post = R_NONE
        self.started = 0
        self.start_back = 0  # on start: the episode began this many ms before this sample's start
        self.ended = 0
        self.end_back = 0  # on end: the episode ended this many ms before this sample's start
        self.dur = 0  # on end: episode duration, ms
        self.end_peak = 0  # on end: the episode's peak value
        self.episodes = 0  # episodes begun since construction

    def set_levels(self, on, hyst, hold_ms, clear_ms):
        self.on = on
        self.off = on - hyst
        self.hold = hold_ms
        self.clear = clear_ms

    def _confirm(self):
        self.post = R_CONFIRM
        self.started = 1
        self.start_back = self.run
        self.episodes += 1
        self.mode = EPISODE

    def _release(self):
        self.post = R_RELEASE
        self.ended = 1
        self.dur = self.run - self.clr
        self.end_back = self.clr
        self.end_peak = self.peak
        self.mode = IDLE

    def brk(self, dt, lastp):
        """A break (gap, unusable sample, end of data) dt ms after the latest sample's start;
        end_back is then relative to that point."""
        m = self.mode
        if m == PENDING:
            self.pre = R_REJECT
        elif m == EPISODE:
            # No release seen: the episode lasts to the end of the last usable sample, but not
            # past the start of the sample that broke it.
            cov = lastp if lastp < dt else dt
            self.ended = 1
            self.dur = self.run + cov
            self.end_back = dt - cov
            self.end_peak = self.peak
        elif m == CLEARING:
            self.pre = R_RELEASE
            self.ended = 1
            self.dur = self.run - self.clr
            self.end_back = self.clr + dt
            self.end_peak = self.peak
        self.mode = IDLE

    def step(self, v, ok, gap, dt, lastp, p):
        self.cls = C_NONE
        self.pre = R_NONE
        self.post = R_NONE
        self.started = 0
        self.ended = 0
        m = self.mode
        if m != IDLE:
            if gap or not ok:
                self.brk(dt, lastp)
                m = IDLE
            else:
                self.run += dt
                if m == CLEARING:
                    self.clr += dt
        if not ok:
            return
        if m == IDLE:
            if v > self.on:
                self.mode = PENDING
                self.run = 0
                self.peak = v
                self.cls = C_TENT
                if p >= self.hold:
                    self._confirm()
            else:
                self.cls = C_CLEAN
        elif m == PENDING:
            if v > self.on:
                if v > self.peak:
                    self.peak = v
                self.cls = C_TENT
                if self.run + p >= self.hold:
                    self._confirm()
            else:
                self.pre = R_REJECT
                self.mode = IDLE
                self.cls = C_CLEAN
        elif m == EPISODE:
            if v < self.off:
                self.mode = CLEARING
                self.clr = 0
                self.cls = C_TENT
                if p >= self.clear:
                    self._release()
            else:
                if v > self.peak:
                    self.peak = v
                self.cls = C_STRAIN
        else:
            if v < self.off:
                self.cls = C_TENT
                if self.clr + p >= self.clear:
                    self._release()
            else:
                self.pre = R_RESUME
                self.mode = EPISODE
                if v > self.peak:
                    self.peak = v
                self.cls = C_STRAIN


def config_ok(values):
    """True if the strain keys of `values` (indexed by config key) may be used together.

    Each key's own range is proto's; on top, the hysteresis must be smaller than every threshold
    magnitude, so that every release level lies on the strained side of neutral.
    """
    hyst = values[proto.KEY_HYSTERESIS_CDEG]
    return (
        hyst < values[proto.KEY_STRAIN_THRESHOLD_CDEG]
        and hyst < -values[proto.KEY_EXTENSION_THRESHOLD_CDEG]
        and hyst < values[proto.KEY_LATERAL_THRESHOLD_CDEG]
    )


class Strain:
    """Flexion, extension and lateral detectors fed from one posture stream."""

    def __init__(self, values=proto.CONFIG_DEFAULTS):
        self.flex = Direction()
        self.ext = Direction()
        self.lat = Direction()
        self.first = 1
        self.lastp = 0
        self.flexion = _NO_VALUE  # the latest sample's flexion and whether it was usable
        self.ok = 0
        self.in_strain = 0
        if not self.configure(values):
            raise ValueError("strain config")

    def configure(self, values):
        """Adopt the strain keys of `values` (indexed by config key). False (nothing changed) if
        they may not be combined. A running episode or run continues under the new values."""
        if not config_ok(values):
            return False
        hyst = values[proto.KEY_HYSTERESIS_CDEG]
        hold = values[proto.KEY_STRAIN_HOLD_S] * 1000
        clear = values[proto.KEY_CLEAR_HOLD_S] * 1000
        self.flex.set_levels(values[proto.KEY_STRAIN_THRESHOLD_CDEG], hyst, hold, clear)
        self.ext.set_levels(-values[proto.KEY_EXTENSION_THRESHOLD_CDEG], hyst, hold, clear)
        self.lat.set_levels(values[proto.KEY_LATERAL_THRESHOLD_CDEG], hyst, hold, clear)
        return True

    def update(self, dt, p, flexion, lateral, flags):
        """Feed one sample; returns the *_STARTED / *_ENDED bits of what happened at it."""
        lastp = self.lastp
        if self.first:
            self.first = 0
            gap = 0
        else:
            # A gap: more than two periods (the longer of the two samples') between starts.
            gap = dt <= 0 or dt > 2 * (p if p > lastp else lastp)
        usable = (flags & _USE_MASK) == _USABLE
        fok = usable and flexion != _NO_VALUE
        lok = usable and lateral != _NO_VALUE
        self.flex.step(flexion, fok, gap, dt, lastp, p)
        self.ext.step(-flexion, fok, gap, dt, lastp, p)
        self.lat.step(lateral if lateral >= 0 else -lateral, lok, gap, dt, lastp, p)
        self.lastp = p
        self.flexion = flexion
        self.ok = 1 if fok else 0
        self.in_strain = 1 if self.flex.mode >= EPISODE else 0
        return self._bits()

    def finish(self):
        """End of data (power-down, end of a replay): settle everything as a break right after
        the latest sample. end_back is then relative to the END of the latest sample."""
        for d in (self.flex, self.ext, self.lat):
            d.cls = C_NONE
            d.pre = R_NONE
            d.post = R_NONE
            d.started = 0
            d.ended = 0
            d.brk(self.lastp, self.lastp)
        self.first = 1
        self.in_strain = 0
        return self._bits()

    def _bits(self):
        r = 0
        if self.flex.started:
            r |= FLEX_STARTED
        if self.flex.ended:
            r |= FLEX_ENDED
        if self.ext.started:
            r |= EXT_STARTED
        if self.ext.ended:
            r |= EXT_ENDED
        if self.lat.started:
            r |= LAT_STARTED
        if self.lat.ended:
            r |= LAT_ENDED
        return r
