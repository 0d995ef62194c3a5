"""A virtual `time` module for running the firmware faster than real time on the unix port.

The firmware keeps time only through time.ticks_ms / ticks_us / ticks_diff / ticks_add /
sleep_ms and asyncio.sleep_ms. install() puts this module in sys.modules["time"], so every module
imported afterwards (asyncio among them) reads this clock; it must run before anything imports
asyncio, bluetooth or the firmware.

The clock: virtual time = real time elapsed since install() + idle time skipped. Whenever the
asyncio loop would wait for its next task (or a driver calls sleep_ms), it sleeps only as long as
needed to keep virtual time at most `speed` times the real time since install(), then skips the
rest of the wait; with speed 0 it does not sleep at all. Busy periods run at real speed, so
virtual time never runs slower than real time. That keeps two things true that a purely virtual
clock would break: asyncio's C task queue stamps new tasks with the real ms tick (they must never
look as if they were in the future), and loops in the shims that wait for a socket by the clock
still time out. machine.sim_clock (which paces the simulated sensors) follows the virtual clock:
it is brought up to date at every I2C transaction and whenever time is read or skipped.

speed 1 is real time; speed 20 lets virtual time run up to 20 times as fast as real time;
speed 0 runs as fast as the CPU goes, which makes a simulated half hour take a few tens of seconds.
"""

import sys

import machine

_rt = sys.modules.get("time")
if _rt is None or _rt.__name__ != "time" or not hasattr(_rt, "ticks_us"):
    import time as _rt

_clock = machine.sim_clock
_speed = 1
_installed = False
_origin_ms = 0
_origin_us = 0
_last_real_us = 0
_real_us = 0  # real microseconds since install()
_skip_us = 0  # idle time skipped since install()
_clock_base = 0  # machine.sim_clock.us at install()
_pace_v = 0  # virtual us when the current speed took effect
_pace_r = 0  # real us since install() at that moment
stats = {"skipped_ms": 0, "waits": 0}


def _now_us():
    """Virtual microseconds since install(); moves the simulated hardware clock along."""
    global _last_real_us, _real_us
    r = _rt.ticks_us()
    d = _rt.ticks_diff(r, _last_real_us)
    if d > 0:
        _real_us += d
        _last_real_us = r
    v = _real_us + _skip_us
    target = _clock_base + v
    if target > _clock.us:
        _clock.advance_us(target - _clock.us)
    return v


def _skip_to(target_us):
    global _skip_us
    now = _now_us()
    if target_us > now:
        _skip_us += target_us - now
        stats["skipped_ms"] = _skip_us // 1000
        _now_us()


def ticks_ms():
    return _rt.ticks_add(_origin_ms, _now_us() // 1000)


def ticks_us():
    return _rt.ticks_add(_origin_us, _now_us())


def ticks_cpu():
    return ticks_us()


ticks_diff = None  # set by install(): the real module's functions (same tick period)
ticks_add = None


def _wait(us):
    """Let `us` of virtual time pass: as real time, throttled so that virtual time runs at most
    `speed` times as fast as real time (counted since install, so short waits add up)."""
    target = _now_us() + us
    if _speed:
        need = int((target - _pace_v) / _speed) - (_real_us - _pace_r)
        if need > 0:
            _rt.sleep_us(need)
    _skip_to(target)


def sleep_ms(ms):
    """Wait ms of virtual time."""
    if ms > 0:
        _wait(ms * 1000)


def sleep_us(us):
    if us > 0:
        _wait(us)


def sleep(s):
    sleep_us(int(s * 1000000))


def time():
    return _rt.time()


def time_ns():
    return _rt.time_ns()


def localtime(*a):
    return _rt.localtime(*a)


def gmtime(*a):
    return _rt.gmtime(*a)


def mktime(t):
    return _rt.mktime(t)


def _poll_hw():
    # Replaces sim_clock.poll(): the simulated buses call it at every transaction.
    _now_us()


def install(speed=1):
    """Make this module the `time` module (before asyncio and the firmware are imported)."""
    global _speed, _installed, _origin_ms, _origin_us, _last_real_us, _real_us, _skip_us
    global _clock_base, ticks_diff, ticks_add, _pace_v, _pace_r
    if "asyncio" in sys.modules or "wearable.app" in sys.modules:
        raise RuntimeError("vclock.install() must run before asyncio and the firmware load")
    _speed = speed if speed > 0 else 0
    ticks_diff = _rt.ticks_diff
    ticks_add = _rt.ticks_add
    _origin_ms = _rt.ticks_ms()
    _origin_us = _rt.ticks_us()
    _last_real_us = _origin_us
    _real_us = 0
    _skip_us = 0
    _pace_v = 0
    _pace_r = 0
    _clock_base = _clock.us
    _clock.realtime = False
    _clock.poll = _poll_hw
    sys.modules["time"] = sys.modules[__name__]
    _installed = True


def install_asyncio():
    """Let asyncio skip idle time: its waits become virtual (call after importing asyncio)."""
    from asyncio import core

    ioq = core._io_queue
    real_wait = ioq.wait_io_event

    def wait_io_event(dt):
        if dt <= 0:
            real_wait(dt)
            return
        stats["waits"] += 1
        real_wait(0)  # stream I/O that is ready now
        _wait(dt * 1000)

    ioq.wait_io_event = wait_io_event


def speed():
    return _speed


def set_speed(speed):
    """Change the pace from now on; virtual time already run ahead stays ahead (pacing is
    counted from this moment, so slowing down never makes the clock wait to "pay back")."""
    global _speed, _pace_v, _pace_r
    _pace_v = _now_us()
    _pace_r = _real_us
    _speed = speed if speed > 0 else 0


def virtual_ms():
    """Virtual milliseconds since install()."""
    return _now_us() // 1000
