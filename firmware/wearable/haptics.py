"""Vibration feedback through a PWM-driven motor, without blocking the main loop.

    pwm = machine.PWM(machine.Pin(MOTOR_PIN))
    h = Haptics(pwm)
    h.configure(values)                 # indexed by config key: HAPTICS_ENABLED, QUIET_*, SNOOZE_S
    h.set_utc(now_ms, utc_epoch_ms)     # after SET_TIME; until then quiet hours cannot apply
    if h.alert(now_ms) == PLAYED:       # a strain episode began
        minute_log.mark(proto.RF_ALERTED)
    ...
    h.tick(now_ms)                      # from the main loop, or run h.run() as an asyncio task

The PWM object is passed in, so tests (and boards with an inverted driver) can hand over their own.
A pattern is a table of (duty_u16, milliseconds) steps; starting one sets the first step at once,
tick() moves on when a step's time is up. Step times follow the plan, not the tick times, so a
late tick shortens the next step instead of stretching the whole pattern. A new pattern replaces
one that is still playing.

What may buzz when:

* strain alert: only if haptics are on (HAPTICS_ENABLED), outside quiet hours and not snoozed.
  Playing one starts the snooze: no further alert for SNOOZE_S seconds. A refused alert is dropped,
  not deferred. snooze(now_ms) lets the wearer start a snooze by hand.
* low battery: unsolicited like the alert, so haptics on and outside quiet hours; never snoozed.
* calibration OK / refused, bond cleared: they answer something the wearer just did with the
  device in hand, so they always play.

Quiet hours are minutes of the UTC day, [QUIET_START_MIN, QUIET_END_MIN), wrapping past midnight
when start > end; -1 in either, or start == end, means none. (The host converts the wearer's local
hours to UTC when it pushes the config.) Until set_utc() has been called the device does not know
the time of day, so quiet hours cannot apply and alerts are allowed.
"""

from wearable import proto

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


try:
    from time import ticks_add, ticks_diff
except ImportError:  # CPython: plain integers that never wrap

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b


# Pattern ids.
ALERT = const(0)
CAL_OK = const(1)
CAL_REFUSED = const(2)
LOW_BATTERY = const(3)
BOND_CLEARED = const(4)

# Request outcomes.
PLAYED = const(1)
OFF = const(2)
QUIET = const(3)
SNOOZED = const(4)

_FULL = const(65535)
_SOFT = const(36000)

# (duty_u16, ms) pairs, flattened; the motor is switched off after the last step.
PATTERNS = (
    (_FULL, 250, 0, 150, _FULL, 250, 0, 150, _FULL, 500),  # alert: three pulses, the last long
    (_SOFT, 80, 0, 80, _SOFT, 80),  # calibration ok: a soft double tap
    (_FULL, 700),  # calibration refused: one long buzz
    (_SOFT, 60, 0, 200, _SOFT, 60, 0, 200, _SOFT, 60),  # low battery: three faint taps
    (_FULL, 400, 0, 150, _SOFT, 100, 0, 150, _FULL, 400),  # bond cleared: long, short, long
)

DAY_MS = const(86400000)
_REANCHOR_MS = const(3600000)  # keep clock differences far from any ticks wrap-around


def in_window(minute, start, end):
    """True if minute-of-day `minute` lies in the quiet window [start, end) (may wrap)."""
    if start < 0 or end < 0 or start == end or minute < 0:
        return False
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end


class Haptics:
    def __init__(self, pwm, freq_hz=200, values=proto.CONFIG_DEFAULTS):
        self.pwm = pwm
        pwm.freq(freq_hz)
        pwm.duty_u16(0)
        self.enabled = 1
        self.quiet_start = -1
        self.quiet_end = -1
        self.snooze_ms = 0
        self._pat = None
        self._pid = -1
        self._step = 0
        self._due = 0  # ticks_ms when the current step ends
        self._snoozing = 0
        self._snooze_at = 0
        self._snooze_len = 0
        self._time_ok = 0
        self._anchor = 0  # ticks_ms at which ...
        self._anchor_day_ms = 0  # ... the UTC time of day was this
        self.played = 0
        self.refused = 0
        self.configure(values)

    # --- settings ---------------------------------------------------------------------------
    def configure(self, values):
        """Adopt HAPTICS_ENABLED, QUIET_START_MIN, QUIET_END_MIN and SNOOZE_S from `values`."""
        self.enabled = 1 if values[proto.KEY_HAPTICS_ENABLED] else 0
        self.quiet_start = values[proto.KEY_QUIET_START_MIN]
        self.quiet_end = values[proto.KEY_QUIET_END_MIN]
        self.snooze_ms = values[proto.KEY_SNOOZE_S] * 1000
        if not self.enabled and (self._pid == ALERT or self._pid == LOW_BATTERY):
            self.stop()

    def set_utc(self, now_ms, utc_epoch_ms):
        """The UTC time is utc_epoch_ms at ticks now_ms (from SET_TIME)."""
        self._anchor = now_ms
        self._anchor_day_ms = utc_epoch_ms % DAY_MS
        self._time_ok = 1

    def clear_utc(self):
        self._time_ok = 0

    def minute_of_day(self, now_ms):
        """UTC minute of the day at now_ms, or -1 while the time is unknown."""
        if not self._time_ok:
            return -1
        d = ticks_diff(now_ms, self._anchor)
        return ((self._anchor_day_ms + d) // 60000) % 1440

    def quiet(self, now_ms):
        return in_window(self.minute_of_day(now_ms), self.quiet_start, self.quiet_end)

    def snoozed(self, now_ms):
        if self._snoozing and ticks_diff(now_ms, self._snooze_at) >= self._snooze_len:
            self._snoozing = 0
        return self._snoozing

    def snooze(self, now_ms, seconds=-1):
        """Hold back strain alerts for `seconds` (default SNOOZE_S) from now."""
        ms = self.snooze_ms if seconds < 0 else seconds * 1000
        self._snoozing = 1 if ms > 0 else 0
        self._snooze_at = now_ms
        self._snooze_len = ms

    # --- requests ---------------------------------------------------------------------------
    def alert(self, now_ms):
        """A strain episode began. Returns PLAYED, OFF, QUIET or SNOOZED."""
        r = self._unsolicited_ok(now_ms)
        if r != PLAYED:
            return r
        if self.snoozed(now_ms):
            self.refused += 1
            return SNOOZED
        self.play(ALERT, now_ms)
        self.snooze(now_ms)
        return PLAYED

    def low_battery(self, now_ms):
        r = self._unsolicited_ok(now_ms)
        if r == PLAYED:
            self.play(LOW_BATTERY, now_ms)
        return r

    def calibration(self, now_ms, ok):
        self.play(CAL_OK if ok else CAL_REFUSED, now_ms)
        return PLAYED

    def bond_cleared(self, now_ms):
        self.play(BOND_CLEARED, now_ms)
        return PLAYED

    def _unsolicited_ok(self, now_ms):
        if not self.enabled:
            self.refused += 1
            return OFF
        if self.quiet(now_ms):
            self.refused += 1
            return QUIET
        return PLAYED

    # --- playback ---------------------------------------------------------------------------
    def play(self, pattern, now_ms):
        pat = PATTERNS[pattern]
        self._pat = pat
        self._pid = pattern
        self._step = 0
        self._due = ticks_add(now_ms, pat[1])
        self.pwm.duty_u16(pat[0])
        self.played += 1

    def stop(self):
        self._pat = None
        self._pid = -1
        self.pwm.duty_u16(0)

    def busy(self):
        return self._pat is not None

    def tick(self, now_ms):
        """Advance the pattern; returns ms until the next step is due, or -1 when idle."""
        d = ticks_diff(now_ms, self._anchor)
        if self._time_ok and d >= _REANCHOR_MS:
            self._anchor_day_ms = (self._anchor_day_ms + d) % DAY_MS
            self._anchor = now_ms
        self.snoozed(now_ms)
        pat = self._pat
        if pat is None:
            return -1
        while ticks_diff(now_ms, self._due) >= 0:
            i = self._step + 2
            if i >= len(pat):
                self.stop()
                return -1
            self._step = i
            self._due = ticks_add(self._due, pat[i + 1])
            self.pwm.duty_u16(pat[i])
        return ticks_diff(self._due, now_ms)

    async def run(self, idle_ms=100):
        """Drive tick() as an asyncio task: sleeps until the next step, or idle_ms when idle."""
        import asyncio
        import time

        while True:
            wait = self.tick(time.ticks_ms())
            await asyncio.sleep_ms(idle_ms if wait < 0 or wait > idle_ms else wait)
