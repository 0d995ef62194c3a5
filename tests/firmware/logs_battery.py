"""Battery through the machine.ADC shim: divider, read_uv and read_u16 paths, the LiPo curve,
smoothing, and LOW_BATTERY hysteresis (one event per crossing, also with noise around the
threshold). Prints the packed events as "EVENT <hex>" for the host decoder.
Usage: logs_battery.py"""

import binascii

import machine
from logs_common import Lcg, check, done, eq
from wearable import proto
from wearable.battery import LIPO_CURVE, MIN_PLAUSIBLE_MV, Battery, percent

PIN = 34
adc = machine.ADC(machine.Pin(PIN))


def set_battery_mv(mv, divider_x1000=2000):
    machine.sim_set_adc(PIN, mv * 1000 * 1000 // divider_x1000)


# --- the curve
eq(percent(4300), 100, "above full")
eq(percent(4200), 100, "full")
eq(percent(3500), 0, "empty")
eq(percent(3000), 0, "below empty")
for mv, pct in LIPO_CURVE:
    eq(percent(mv), pct, "table point " + str(mv))
eq(percent(3875), 55, "halfway between 3850 (50) and 3900 (60)")
eq(percent(3715), 18, "3715 mV rounds to 18 (14 + 3.5)")
last_p = 0
mono = True
for mv in range(3400, 4300, 5):
    p = percent(mv)
    if p > 100 or p < last_p:
        mono = False
    last_p = p
check(mono, "curve monotonic and within 0..100")

# --- reading and divider
set_battery_mv(3900)
b = Battery(adc)
eq(b.update(), False, "3.9 V: no event")
eq((b.mv, b.pct, b.low, b.present), (3900, 60, False, True), "3.9 V through a 1:2 divider")
set_battery_mv(4100, 3200)
b = Battery(adc, divider_x1000=3200)
b.update()
check(abs(b.mv - 4100) <= 2, "divider 3.2: " + str(b.mv))


class U16Only:
    """An ADC without read_uv (rp2, for example): read_u16 against vref."""

    def __init__(self, adc):
        self.adc = adc

    def read_u16(self):
        return self.adc.read_u16()


set_battery_mv(3800)
b = Battery(U16Only(adc))
b.update()
check(abs(b.mv - 3800) <= 4, "read_u16 path: " + str(b.mv))

# --- smoothing: a step converges, a single dip is damped
set_battery_mv(4000)
b = Battery(adc, smooth_shift=2)
b.update()
set_battery_mv(3600)
b.update()
check(3850 <= b.mv <= 3950, "one reading moves the estimate a quarter: " + str(b.mv))
for _ in range(30):
    b.update()
check(abs(b.mv - 3600) <= 2, "converged: " + str(b.mv))

# --- LOW_BATTERY: one event per crossing
events = []
buf = bytearray(20)


def run(b, mv, t):
    set_battery_mv(mv)
    if b.update():
        n = b.pack_event(buf, len(events), 9, t)
        events.append(binascii.hexlify(bytes(buf[:n])).decode())
        return 1
    return 0


set_battery_mv(3900)
b = Battery(adc, low_pct=15, hysteresis_pct=5, smooth_shift=1)
fired = 0
t = 0
for mv in range(3900, 3600, -5):  # slow discharge through 15 %
    fired += run(b, mv, t)
    t += 10000
eq(fired, 1, "one event on the way down")
check(b.low, "low after the crossing")
eq(b.low_events, 1, "low_events")
# noise around the threshold (3708 mV ~ 15 %): no second event
rnd = Lcg(3)
for _ in range(200):
    fired += run(b, 3708 + rnd.below(41) - 20, t)
    t += 10000
eq(fired, 1, "noise around the threshold: still one event")
# charging back up past 20 % re-arms it, then the next discharge fires once more
for mv in range(3700, 3800, 5):
    fired += run(b, mv, t)
check(not b.low, "left the low state above low + hysteresis")
eq(fired, 1, "no event on the way up")
for mv in range(3800, 3650, -5):
    fired += run(b, mv, t)
eq(fired, 2, "second crossing, second event")
# booting already low gives one event at once
set_battery_mv(3600)
b2 = Battery(adc)
eq(b2.update(), True, "low at boot: one event")
eq(b2.update(), False, "and only one")

# --- no cell: implausible readings raise nothing
set_battery_mv(0)
b3 = Battery(adc)
eq(b3.update(), False, "0 V: no event")
eq((b3.present, b3.implausible), (False, 1), "0 V: no cell, counted")
set_battery_mv(MIN_PLAUSIBLE_MV + 1000)
b3.update()
check(b3.present, "cell back")

# bad construction is a clear error
for kw in ({"divider_x1000": 500}, {"reads": 0}, {"low_pct": 99}):
    try:
        Battery(adc, **kw)
        check(False, "accepted " + repr(kw))
    except ValueError:
        check(True, "")

for e in events:
    print("EVENT", e)
eq(len(events), 2, "events packed")
eq(buf[0], 0x14, "event ver_type")
eq(buf[1], proto.EV_LOW_BATTERY, "event code")
done("logs_battery")
