"""Button gestures on a simulated Pin with a simulated millisecond clock: short press, bounce,
bursts, long press, stuck button, the bond-clearing pattern and near misses, polling and IRQ
modes, active-high wiring, clocks that wrap at 2^30 and 2^32. Usage: logs_button.py"""

import gc

import machine
from logs_common import alloc_end, alloc_start, check, done, eq, is_micropython
from wearable import button
from wearable.button import CALIBRATE, CLEAR_BONDS, MARKER, NONE, Button

TICK = 10  # ms between ticks, as a main loop would call it


class Rig:
    """A button on a simulated pin, a clock, and a log of (time, gesture)."""

    def __init__(self, pin_id, use_irq=True, active_low=True, t0=0, tick=TICK):
        self.pin = machine.Pin(pin_id, machine.Pin.IN, machine.Pin.PULL_UP)
        self.active_low = active_low
        self.pin.sim_drive(1 if active_low else 0)  # released
        self.t = t0
        self.tick = tick
        self.btn = Button(self.pin, active_low=active_low, use_irq=use_irq)
        self.got = []

    def level(self, pressed):
        self.pin.sim_drive((0 if pressed else 1) if self.active_low else (1 if pressed else 0))

    def run(self, ms):
        end = self.t + ms
        while self.t < end:
            self.t += self.tick
            g = self.btn.tick(self.t & 0xFFFFFFFF)
            if g:
                self.got.append((self.t, g))

    def press(self, ms, bounce=False):
        if bounce:  # contact bounce: a few fast flips before it settles
            for _ in range(3):
                self.level(True)
                self.run(self.tick)
                self.level(False)
                self.run(self.tick)
        self.level(True)
        self.run(ms)
        self.level(False)

    def gestures(self):
        return [g for _, g in self.got]


def scenario(name, use_irq, active_low=True, t0=1000):
    r = Rig(7 if active_low else 8, use_irq=use_irq, active_low=active_low, t0=t0)
    r.run(100)
    # 1. a short press: one marker, after the gap
    r.press(150)
    r.run(200)
    eq(r.gestures(), [], name + ": no marker before the gap")
    r.run(600)
    eq(r.gestures(), [MARKER], name + ": short press gives a marker")
    # 2. a burst of three short presses is one marker
    r.got = []
    for _ in range(3):
        r.press(120)
        r.run(200)
    r.run(1000)
    eq(r.gestures(), [MARKER], name + ": burst gives one marker")
    # 3. a bouncy press is still one marker
    r.got = []
    r.press(150, bounce=True)
    r.run(1000)
    eq(r.gestures(), [MARKER], name + ": bouncy press gives one marker")
    check(r.btn.bounces >= 3, name + ": bounces counted: " + str(r.btn.bounces))
    # 4. a 20 ms glitch is not a press
    r.got = []
    r.level(True)
    r.run(20)
    r.level(False)
    r.run(1000)
    eq(r.gestures(), [], name + ": 20 ms glitch ignored")
    # 5. long press: calibrate on release, not before
    r.got = []
    r.level(True)
    r.run(2500)
    eq(r.gestures(), [], name + ": nothing while held")
    check(r.btn.held_ms(r.t) >= 2400, name + ": held_ms while held")
    r.level(False)
    r.run(1000)
    eq(r.gestures(), [CALIBRATE], name + ": long press calibrates")
    eq(r.btn.held_ms(r.t), 0, name + ": held_ms after release")
    # 6. a press just under 2 s is a marker
    r.got = []
    r.press(1900)
    r.run(1000)
    eq(r.gestures(), [MARKER], name + ": 1.9 s press is short")
    # 7. stuck (held 12 s): nothing, counted
    r.got = []
    stuck = r.btn.stuck
    r.press(12000)
    r.run(1000)
    eq(r.gestures(), [], name + ": stuck press ignored")
    eq(r.btn.stuck, stuck + 1, name + ": stuck counted")
    # 8. bond clearing: three clicks then a 5 s hold, reported at 5 s while still held
    r.got = []
    for _ in range(3):
        r.press(100)
        r.run(150)
    r.level(True)
    t_hold = r.t
    r.run(6000)
    eq(r.gestures(), [CLEAR_BONDS], name + ": clear bonds")
    t_fired = r.got[0][0] if r.got else 0
    check(5000 <= t_fired - t_hold <= 5000 + 3 * TICK + button.DEBOUNCE_MS,
          name + ": reported at 5 s: " + str(t_fired - t_hold))
    r.level(False)
    r.run(1000)
    eq(r.gestures(), [CLEAR_BONDS], name + ": release after clearing does nothing")
    # 9. near misses: two clicks + hold; three clicks + 3 s hold; clicks then a long pause
    r.got = []
    ign = r.btn.ignored
    for _ in range(2):
        r.press(100)
        r.run(150)
    r.press(6000)
    r.run(1000)
    eq(r.gestures(), [], name + ": two clicks + hold: nothing")
    for _ in range(3):
        r.press(100)
        r.run(150)
    r.press(3000)
    r.run(1000)
    eq(r.gestures(), [], name + ": three clicks + 3 s: nothing")
    eq(r.btn.ignored, ign + 2, name + ": near misses counted")
    for _ in range(3):
        r.press(100)
        r.run(150)
    r.run(1000)  # the gap ends the burst: it was a marker
    r.press(6000)
    r.run(1000)
    eq(r.gestures(), [MARKER, CALIBRATE], name + ": clicks, pause, long press")
    eq(r.btn.counts[MARKER] >= 5, True, name + ": counts per gesture")
    return r


scenario("irq", True)
scenario("poll", False)
scenario("active-high", True, active_low=False)
scenario("wrap 2^30", True, t0=(1 << 30) - 3000)
scenario("wrap 2^32", False, t0=(1 << 32) - 3000)

# pressed at boot: the release is not a gesture
p = machine.Pin(9, machine.Pin.IN, machine.Pin.PULL_UP)
p.sim_drive(0)
b = Button(p)
t = 0
got = []
for _ in range(100):
    t += 10
    g = b.tick(t)
    if g:
        got.append(g)
p.sim_drive(1)
for _ in range(200):
    t += 10
    g = b.tick(t)
    if g:
        got.append(g)
eq(got, [], "held at boot: nothing on release")
eq(button.NAMES[CLEAR_BONDS], "clear_bonds", "names")
eq(NONE, 0, "NONE is falsy")

# the IRQ handler and tick allocate nothing
r = Rig(10, use_irq=True)
r.run(100)
if is_micropython():
    gc.collect()
a = alloc_start()
for _ in range(20):
    r.pin.sim_drive(0)
    r.pin.sim_drive(1)
irq_bytes = alloc_end(a)
eq(r.btn.edges, 40, "IRQ saw every edge")
btn = r.btn
pin = r.pin
t = r.t
markers = [0]
a = alloc_start()
for k in range(4000):  # 50 presses of 100 ms, 800 ms apart, ticked every 10 ms
    t += 10
    phase = k % 80
    if phase == 0:
        pin.sim_drive(0)
    elif phase == 10:
        pin.sim_drive(1)
    if btn.tick(t) == MARKER:
        markers[0] += 1
tick_bytes = alloc_end(a)
print("alloc button irq", irq_bytes, "tick", tick_bytes, "ticks 4000")
eq(irq_bytes, 0, "IRQ handler allocates nothing")
eq(tick_bytes, 0, "tick allocates nothing")
eq(markers[0], 50, "50 markers")
done("logs_button")
