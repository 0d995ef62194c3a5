"""Battery voltage, charge estimate and the LOW_BATTERY event.

The cell is read through a resistor divider on an ADC pin: battery mV = ADC mV * divider_x1000 /
1000 (2000 for two equal resistors). read_uv() is used where the port has it (ESP32 calibrates
it), otherwise read_u16() against vref_mv. Several reads are averaged per update, and updates are
smoothed by an exponential average (weight 1 / 2**smooth_shift for the new value), so a motor
pulse or radio burst does not swing the estimate. Everything is integer arithmetic: nothing is
allocated per update on 64-bit ports, and no value reaches 2**30 on 32-bit ones.

The charge estimate interpolates LIPO_CURVE, a single-cell LiPo resting curve (docs/firmware-
storage.md discusses its limits). The low-battery state has hysteresis on that percentage: it is
entered at or below low_pct and left only at or above low_pct + hysteresis_pct, and entering it
yields exactly one LOW_BATTERY event. A reading below MIN_PLAUSIBLE_MV means no cell is connected
(or the divider is wrong): the estimate is kept, `present` turns False and no event is raised.

    bat = Battery(machine.ADC(machine.Pin(BAT_PIN)), divider_x1000=settings.battery_divider_x1000)
    if bat.update():                                   # every ~10 s
        n = bat.pack_event(buf, event_seq, boot_id, t_ms)
    status: bat.mv, bat.pct
"""

from wearable import proto

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# (millivolts, percent), highest first; linear in between, clamped outside.
LIPO_CURVE = (
    (4200, 100), (4150, 95), (4100, 90), (4050, 84), (4000, 77), (3950, 69), (3900, 60),
    (3850, 50), (3800, 39), (3760, 29), (3730, 21), (3700, 14), (3670, 9), (3630, 5),
    (3580, 2), (3500, 0),
)
MIN_PLAUSIBLE_MV = const(2500)  # no LiPo in use reads lower: this is an empty socket


def percent(mv, curve=LIPO_CURVE):
    """Charge estimate in percent (0..100) for a cell voltage in mV."""
    hi_mv, hi_pct = curve[0]
    if mv >= hi_mv:
        return hi_pct
    for k in range(1, len(curve)):
        lo_mv, lo_pct = curve[k]
        if mv >= lo_mv:
            return lo_pct + ((mv - lo_mv) * (hi_pct - lo_pct) + (hi_mv - lo_mv) // 2) // (
                hi_mv - lo_mv)
        hi_mv = lo_mv
        hi_pct = lo_pct
    return curve[-1][1]


class Battery:
    def __init__(self, adc, divider_x1000=2000, low_pct=15, hysteresis_pct=5, reads=4,
                 smooth_shift=2, vref_mv=3300, curve=LIPO_CURVE):
        if divider_x1000 < 1000 or reads < 1 or smooth_shift < 0 or hysteresis_pct < 1:
            raise ValueError("need divider_x1000 >= 1000, reads >= 1, smooth_shift >= 0 and "
                             "hysteresis_pct >= 1")
        if low_pct < 0 or low_pct + hysteresis_pct > 100:
            raise ValueError("low_pct + hysteresis_pct must lie within 0..100")
        self.adc = adc
        self._uv = hasattr(adc, "read_uv")
        self.divider_x1000 = divider_x1000
        self.low_pct = low_pct
        self.clear_pct = low_pct + hysteresis_pct
        self.reads = reads
        self.shift = smooth_shift
        self.vref_mv = vref_mv
        self.curve = curve
        self._acc = -1  # smoothed battery mV << 4; -1 until the first reading
        self.mv = 0
        self.pct = 0
        self.low = False
        self.present = True
        self.low_events = 0
        self.implausible = 0  # readings below MIN_PLAUSIBLE_MV

    def sample_mv(self):
        """Battery mV now, averaged over `reads` ADC readings (unsmoothed)."""
        total = 0
        adc = self.adc
        for _ in range(self.reads):
            if self._uv:
                total += adc.read_uv() // 1000
            else:
                total += adc.read_u16() * self.vref_mv // 65535
        return (total // self.reads) * self.divider_x1000 // 1000

    def update(self):
        """Take a reading; True exactly when the battery has just become low (send one
        LOW_BATTERY event, see pack_event)."""
        mv = self.sample_mv()
        if mv < MIN_PLAUSIBLE_MV:
            self.implausible += 1
            self.present = False
            return False
        self.present = True
        if self._acc < 0:
            self._acc = mv << 4
        else:
            self._acc += ((mv << 4) - self._acc) >> self.shift
        self.mv = (self._acc + 8) >> 4
        self.pct = percent(self.mv, self.curve)
        if self.low:
            if self.pct >= self.clear_pct:
                self.low = False
            return False
        if self.pct <= self.low_pct:
            self.low = True
            self.low_events += 1
            return True
        return False

    def pack_event(self, buf, event_seq, boot_id, t_ms):
        """The LOW_BATTERY event for the current reading; returns its length."""
        return proto.pack_event(buf, proto.EV_LOW_BATTERY, event_seq, boot_id, t_ms, self.mv,
                                self.pct)
