"""Haptics scenarios on the simulated machine.PWM; runs under MicroPython and CPython.

    <interpreter> strain_haptics.py

Each scenario drives wearable.haptics.Haptics with an explicit millisecond clock, keeps the
simulated machine clock in step (so the PWM's change log carries the same times) and records what
happened. Prints one JSON object of scenario -> results; the test checks the values and that
both interpreters agree.
"""

import json

import machine
from wearable import haptics, proto

clock = machine.sim_clock


def at(ms):
    """Move the simulated clock to `ms` (never backwards) and return it."""
    us = ms * 1000
    if us > clock.us:
        clock.advance_us(us - clock.us)
    return ms


def fresh(**settings):
    values = list(proto.CONFIG_DEFAULTS)
    for name, v in settings.items():
        values[getattr(proto, "KEY_" + name)] = v
    pwm = machine.PWM(machine.Pin(5))
    h = haptics.Haptics(pwm, 200, values)
    pwm.sim_history = []
    return h, pwm


def changes(pwm, origin_ms):
    """Duty changes as [ms since origin, duty], consecutive repeats folded."""
    out = []
    for us, _freq, duty in pwm.sim_history:
        if out and out[-1][1] == duty:
            continue
        out.append([us // 1000 - origin_ms, duty])
    return out


def drive(h, start, stop, step):
    t = start
    while t <= stop:
        h.tick(at(t))
        t += step


def scenario_timing():
    res = {}
    for step in (10, 70):
        h, pwm = fresh()
        t0 = at(clock.us // 1000 + 1000)
        res["alert_result_" + str(step)] = h.alert(t0)
        drive(h, t0, t0 + 3000, step)
        res["alert_" + str(step)] = changes(pwm, t0)
        res["busy_after_" + str(step)] = h.busy()
    for name, fn in (
        ("cal_ok", lambda h, t: h.calibration(t, True)),
        ("cal_refused", lambda h, t: h.calibration(t, False)),
        ("low_battery", lambda h, t: h.low_battery(t)),
        ("bond_cleared", lambda h, t: h.bond_cleared(t)),
    ):
        h, pwm = fresh()
        t0 = at(clock.us // 1000 + 1000)
        fn(h, t0)
        drive(h, t0, t0 + 2000, 10)
        res[name] = changes(pwm, t0)
    res["tick_idle"] = fresh()[0].tick(at(clock.us // 1000 + 5))
    return res


def scenario_snooze():
    h, _ = fresh(SNOOZE_S=60)
    t0 = at(clock.us // 1000 + 1000)
    out = [h.alert(t0)]
    drive(h, t0, t0 + 59990, 1000)
    out.append(h.alert(at(t0 + 59999)))  # still snoozed
    out.append(h.alert(at(t0 + 60000)))  # snooze over: plays, snoozes again
    out.append(h.alert(at(t0 + 60001)))
    # A hand snooze of 10 s, then SNOOZE_S 0 (no auto snooze).
    h2, _ = fresh(SNOOZE_S=0)
    t1 = at(clock.us // 1000 + 10)
    h2.snooze(t1, 10)
    out.append(h2.alert(at(t1 + 9999)))
    out.append(h2.alert(at(t1 + 10000)))
    out.append(h2.alert(at(t1 + 10001)))
    return {"results": out, "refused": h.refused + h2.refused}


DAY = 86400000
# A UTC midnight (2024-01-01T00:00:00Z) in epoch ms.
MIDNIGHT = 1704067200000


def scenario_quiet():
    res = {}
    # Quiet 22:00-07:00 UTC: wraps past midnight.
    h, _ = fresh(QUIET_START_MIN=1320, QUIET_END_MIN=420, SNOOZE_S=0)
    t0 = at(clock.us // 1000 + 10)
    res["before_time_known"] = h.alert(t0)
    res["minute_unknown"] = h.minute_of_day(t0)
    h.stop()
    # At t0 the UTC time is 21:59:00.
    h.set_utc(t0, MIDNIGHT + 21 * 3600000 + 59 * 60000)
    probes = []
    # Walk through the night in 1-minute ticks so the anchor is re-based many times.
    t = t0
    marks = {0: "21:59", 1: "22:00", 91: "23:30", 121: "00:00", 540: "06:59", 541: "07:00",
             542: "07:01"}
    for minute in range(0, 543):
        t = at(t0 + minute * 60000)
        h.tick(t)
        if minute in marks:
            probes.append([marks[minute], h.minute_of_day(t), h.quiet(t), h.alert(t)])
            h.stop()
    res["night"] = probes
    # Low battery and feedback inside quiet hours (23:30).
    h3, _ = fresh(QUIET_START_MIN=1320, QUIET_END_MIN=420)
    t3 = at(clock.us // 1000 + 10)
    h3.set_utc(t3, MIDNIGHT + 23 * 3600000 + 30 * 60000)
    res["low_battery_quiet"] = h3.low_battery(t3)
    res["calibration_quiet"] = h3.calibration(t3, True)
    # A window that does not wrap, and start == end (no quiet hours).
    h4, _ = fresh(QUIET_START_MIN=780, QUIET_END_MIN=840, SNOOZE_S=0)
    t4 = at(clock.us // 1000 + 10)
    h4.set_utc(t4, MIDNIGHT + 12 * 3600000 + 59 * 60000 + 59999)  # 12:59:59.999
    res["day_window"] = [h4.quiet(t4), h4.quiet(at(t4 + 1)), h4.quiet(at(t4 + 3600000)),
                         h4.quiet(at(t4 + 3600001))]
    h5, _ = fresh(QUIET_START_MIN=600, QUIET_END_MIN=600, SNOOZE_S=0)
    t5 = at(clock.us // 1000 + 10)
    h5.set_utc(t5, MIDNIGHT + 600 * 60000)
    res["empty_window"] = h5.quiet(t5)
    h5.clear_utc()
    res["after_clear_utc"] = h5.minute_of_day(t5)
    res["in_window"] = [
        haptics.in_window(m, s, e)
        for (m, s, e) in ((0, 1320, 420), (419, 1320, 420), (420, 1320, 420), (1319, 1320, 420),
                          (1320, 1320, 420), (5, -1, 420), (5, 1, -1), (5, 5, 5), (-1, 0, 10))
    ]
    return res


def scenario_off():
    res = {}
    h, pwm = fresh(HAPTICS_ENABLED=0)
    t0 = at(clock.us // 1000 + 10)
    res["alert"] = h.alert(t0)
    res["low_battery"] = h.low_battery(t0)
    res["changes_after_refusals"] = len(pwm.sim_history)
    res["calibration"] = h.calibration(t0, False)
    res["busy_with_feedback"] = h.busy()
    # Turning haptics off mid-alert stops the motor at once.
    h2, pwm2 = fresh()
    t1 = at(clock.us // 1000 + 10)
    h2.alert(t1)
    values = list(proto.CONFIG_DEFAULTS)
    values[proto.KEY_HAPTICS_ENABLED] = 0
    at(t1 + 100)
    h2.configure(values)
    res["stopped"] = [h2.busy(), pwm2.duty_u16()]
    res["refused"] = h.refused
    return res


def main():
    print(json.dumps({
        "timing": scenario_timing(),
        "snooze": scenario_snooze(),
        "quiet": scenario_quiet(),
        "off": scenario_off(),
    }))


main()
