"""Shared helpers for the logs_*.py check scripts (run under MicroPython and CPython).

Each script counts its checks and ends with done(): "CHECKS <n>" then "ALL OK <name>", or
"FAILED <k>" and exit status 1. A failed check prints what differed; nothing stops at the first.
"""

import gc
import os
import sys

_count = [0, 0]  # checks, failures


def check(cond, what):
    _count[0] += 1
    if not cond:
        _count[1] += 1
        print("FAIL", what)


def eq(got, want, what):
    check(got == want, what + ": got " + repr(got) + ", want " + repr(want))


def done(name):
    print("CHECKS", _count[0])
    if _count[1]:
        print("FAILED", _count[1])
        sys.exit(1)
    print("ALL OK", name)


def is_micropython():
    return sys.implementation.name == "micropython"


def workdir():
    """The directory given as the first argument (a test's tmp dir); it must exist."""
    if len(sys.argv) < 2:
        print("usage: script.py <work dir>")
        sys.exit(2)
    return sys.argv[1]


def rmtree(path):
    try:
        names = os.listdir(path)
    except OSError:
        return
    for n in names:
        p = path + "/" + n
        try:
            os.remove(p)
        except OSError:
            rmtree(p)
    os.rmdir(path)


def file_size(path):
    return os.stat(path)[6]


class Lcg:
    """Deterministic pseudo-random integers, identical under both interpreters."""

    def __init__(self, seed):
        self.x = seed & 0x7FFFFFFF

    def next(self):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return self.x >> 8

    def below(self, n):
        return self.next() % n

    def gauss(self, sigma):
        # Irwin-Hall: the sum of 12 uniforms minus 6 is close to a unit normal.
        t = 0
        for _ in range(12):
            t += self.next() & 0xFFFF
        return (t - 6 * 65536) * sigma / 65536


def alloc_start():
    """Heap bytes in use, with the collector held off so garbage made after this stays counted
    (MicroPython only; 0 under CPython)."""
    if is_micropython():
        gc.collect()
        gc.disable()
        return gc.mem_alloc()
    return 0


def alloc_end(start):
    if not is_micropython():
        return 0
    used = gc.mem_alloc() - start
    gc.enable()
    return used
