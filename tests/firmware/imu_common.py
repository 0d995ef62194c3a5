"""Shared helpers for the IMU check scripts (run under MicroPython and CPython).

Each script counts its checks and ends with done(): "CHECKS <n>" then "ALL OK <name>", or
"FAILED <k>" and exit status 1.  A failed check prints what differed; nothing stops at the first.
"""

import sys

import machine

_count = [0, 0]  # checks, failures


def check(cond, what):
    _count[0] += 1
    if not cond:
        _count[1] += 1
        print("FAIL", what)


def eq(got, want, what):
    check(got == want, f"{what}: got {got!r}, want {want!r}")


def near(got, want, tol, what):
    check(abs(got - want) <= tol, f"{what}: got {got!r}, want {want!r} +- {tol!r}")


def done(name):
    print("CHECKS", _count[0])
    if _count[1]:
        print("FAILED", _count[1])
        sys.exit(1)
    print("ALL OK", name)


def fresh_bus(bus_id):
    """A new, empty simulated bus for I2C(bus_id)."""
    machine._buses.pop(bus_id, None)
    return machine.sim_bus(bus_id)


def is_micropython():
    return sys.implementation.name == "micropython"


class CounterSource:
    """Sample k is (k, -k-1, 2000+k, 100+k, -3000-k, 8192-k) (wrapping every 1000): every value of
    one sample derives from the same k, so a torn or mispaired sample is visible."""

    def __init__(self, accel_lsb_per_g, gyro_lsb_per_dps, start=0):
        self.accel_lsb_per_g = accel_lsb_per_g
        self.gyro_lsb_per_dps = gyro_lsb_per_dps
        self.rate_hz = None
        self.k = start

    def sample_at(self, t_us, out):
        k = self.k % 1000
        out[0] = k
        out[1] = -k - 1
        out[2] = 2000 + k
        out[3] = 100 + k
        out[4] = -3000 - k
        out[5] = 8192 - k
        self.k += 1
        return True


def counter_sample(k):
    k %= 1000
    return (k, -k - 1, 2000 + k, 100 + k, -3000 - k, 8192 - k)


def remapped(chip, remap):
    """What the driver must output for chip-axis values `chip` (6) under `remap`."""
    out = []
    for base in (0, 3):
        for s in remap:
            v = chip[base + abs(s) - 1]
            v = -v if s < 0 else v
            out.append(min(v, 32767))
    return tuple(out)


def sample_k(buf, i):
    """The k a delivered (identity-remapped) CounterSource sample came from, or None if its six
    values do not all agree (torn frame, mispaired words)."""
    s = tuple(buf[6 * i + j] for j in range(6))
    k = s[0]
    return k if s == counter_sample(k) else None
