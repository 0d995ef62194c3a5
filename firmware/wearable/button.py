"""The wearable's one button: debounced, non-blocking, three gestures.

Gestures (docs/firmware-storage.md explains the choice):

* MARKER (headache marker): one or more short presses (each shorter than LONG_MS), then
  GAP_MS without a press. A burst of presses gives one marker, so an anxious double press does
  not log two headaches. Reported when the gap has passed.
* CALIBRATE: a single press held at least LONG_MS (2 s) and released before STUCK_MS. Reported on
  release, so the hand is already moving away when the stillness window begins. A press held
  STUCK_MS or longer (lying on the button, a pillow) does nothing and is counted in `stuck`.
* CLEAR_BONDS: at least BOND_CLICKS short presses, then, within GAP_MS, a press held
  BOND_HOLD_MS (5 s). Reported as soon as the hold is long enough; the release then does nothing.
  A plain long hold can never clear bonds, so neither can pressure on a worn device.

Anything else (a long press after short ones but released too early, for example) is counted
in `ignored` and reports nothing.

Debouncing: the level must stay the same for DEBOUNCE_MS before it counts. tick(now_ms) does all
the work and returns one gesture code (or NONE). With use_irq the pin's interrupt only bumps a
counter (no allocation, safe as a hard IRQ) so an idle button costs almost nothing per tick;
without it tick() samples the pin every call. now_ms may be time.ticks_ms() or a u32 millisecond
clock: differences are taken modulo 2**30, which suits both.

    btn = Button(machine.Pin(BTN_PIN, machine.Pin.IN, machine.Pin.PULL_UP))
    g = btn.tick(time.ticks_ms())                # every 10..20 ms
    if g == button.MARKER: ...
"""

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


NONE = const(0)
MARKER = const(1)
CALIBRATE = const(2)
CLEAR_BONDS = const(3)
NAMES = ("none", "marker", "calibrate", "clear_bonds")

DEBOUNCE_MS = const(30)
LONG_MS = const(2000)
STUCK_MS = const(10000)
GAP_MS = const(600)
BOND_CLICKS = const(3)
BOND_HOLD_MS = const(5000)

_MASK = const(0x3FFFFFFF)

_IDLE = const(0)
_DOWN = const(1)  # pressed, gesture open
_UP = const(2)  # released after short presses, waiting for the gap or another press
_SPENT = const(3)  # pressed, gesture already decided; wait for release


def elapsed(now, then):
    """now - then for millisecond counters that wrap at 2**30 or 2**32 (both multiples of 2**30)."""
    return (now - then) & _MASK


class Button:
    def __init__(self, pin, active_low=True, use_irq=True, debounce_ms=DEBOUNCE_MS,
                 long_ms=LONG_MS, stuck_ms=STUCK_MS, gap_ms=GAP_MS, bond_clicks=BOND_CLICKS,
                 bond_hold_ms=BOND_HOLD_MS):
        self.pin = pin
        self.active = 0 if active_low else 1
        self.debounce_ms = debounce_ms
        self.long_ms = long_ms
        self.stuck_ms = stuck_ms
        self.gap_ms = gap_ms
        self.bond_clicks = bond_clicks
        self.bond_hold_ms = bond_hold_ms
        self._raw = self._read()  # last raw level seen
        self._raw_at = 0  # when it last changed
        self._pressed = self._raw  # debounced level (1 = pressed)
        self._state = _IDLE
        self._t = 0  # when the current press began / the last release happened
        self._clicks = 0
        self._primed = False  # _raw_at has been set from a real tick time
        self.edges = 0  # IRQ count (only grows; tick() compares)
        self._edges_seen = 0
        self.irq = False
        if use_irq:
            self._cb = self._on_irq  # one bound method, made here, not in the IRQ
            try:
                # Trigger values differ between ports: take them from the pin's class.
                pin.irq(handler=self._cb, trigger=pin.IRQ_RISING | pin.IRQ_FALLING)
                self.irq = True
            except (AttributeError, OSError, ValueError):
                pass  # no interrupt on this pin: tick() polls instead
        # counters
        self.counts = [0, 0, 0, 0]  # per gesture code
        self.ignored = 0
        self.stuck = 0
        self.bounces = 0  # raw level changes that did not last DEBOUNCE_MS

    def _on_irq(self, _pin):
        self.edges += 1

    def _read(self):
        return 1 if self.pin.value() == self.active else 0

    @property
    def pressed(self):
        """Debounced level: True while the button is held."""
        return self._pressed == 1

    def held_ms(self, now_ms):
        """How long the current press has lasted (0 when released): lets the caller buzz at 2 s."""
        if self._state == _DOWN or self._state == _SPENT:
            return elapsed(now_ms, self._t)
        return 0

    def tick(self, now_ms):
        """Advance the gesture machine; returns NONE or one gesture code."""
        if not self._primed:
            self._raw_at = now_ms
            self._primed = True
        if (not self.irq or self.edges != self._edges_seen or self._raw != self._pressed):
            self._edges_seen = self.edges
            level = self._read()
            if level != self._raw:
                if self._raw != self._pressed:
                    self.bounces += 1  # the previous change never settled
                self._raw = level
                self._raw_at = now_ms
        if self._raw != self._pressed and elapsed(now_ms, self._raw_at) >= self.debounce_ms:
            self._pressed = self._raw
            # The edge happened when the level changed, not when debouncing confirmed it.
            g = self._edge(self._pressed, self._raw_at)
            if g:
                return self._done(g)
        return self._done(self._timeouts(now_ms))

    def _done(self, g):
        if g:
            self.counts[g] += 1
        return g

    def _edge(self, pressed, t):
        st = self._state
        if pressed:
            if st == _IDLE:
                self._clicks = 0
            self._state = _DOWN
            self._t = t
            return NONE
        # released
        if st == _SPENT:
            self._state = _IDLE
            return NONE
        if st != _DOWN:
            return NONE
        held = elapsed(t, self._t)
        if held < self.long_ms:
            self._clicks += 1
            self._state = _UP
            self._t = t
            return NONE
        self._state = _IDLE
        if held >= self.stuck_ms:
            self.stuck += 1
            return NONE
        if self._clicks == 0:
            return CALIBRATE
        self.ignored += 1
        return NONE

    def _timeouts(self, now_ms):
        st = self._state
        if st == _UP:
            if elapsed(now_ms, self._t) >= self.gap_ms:
                self._state = _IDLE
                return MARKER
        elif st == _DOWN:
            held = elapsed(now_ms, self._t)
            if self._clicks >= self.bond_clicks and held >= self.bond_hold_ms:
                self._state = _SPENT
                return CLEAR_BONDS
            if held >= self.stuck_ms:
                self._state = _SPENT
                self.stuck += 1
        return NONE
