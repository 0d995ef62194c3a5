"""Simulated `machine` module for running the firmware on the MicroPython unix port and CPython.

Only what the firmware uses, with MicroPython's documented signatures: I2C, Pin, PWM, ADC,
Timer, reset(), unique_id(), freq(), lightsleep(), deepsleep().  Everything a test or the
simulator needs to drive the hardware side is named `sim_*` (or lives on SimBus/SimClock);
firmware must not use those.

Time: one virtual clock (`sim_clock`) drives Timer callbacks and the simulated sensors.  It moves
when `lightsleep(ms)` is called, when a test calls `sim_clock.advance_ms()`, or, if
`sim_clock.realtime` is set, with the host's monotonic clock whenever a bus transaction happens.

I2C: every bus id has a SimBus with devices attached at 7-bit addresses.  A SimBus records writes,
counts transactions and injects the faults real boards show: OSError on the n-th transaction (also
part-way through a read), a stuck bus for N transactions, and devices that vanish and come back.
"""

import errno
import time

try:
    _ticks_us = time.ticks_us
except AttributeError:  # CPython

    def _ticks_us():
        return int(time.monotonic() * 1000000)


class SimReset(BaseException):
    """Raised by reset()/deepsleep(): on a board execution would not continue past the call."""


# ---------------------------------------------------------------------------------------- clock


class SimClock:
    """Virtual microsecond clock; listeners are called with the new time whenever it moves."""

    def __init__(self):
        self.us = 0
        self.realtime = False
        self._listeners = []
        self._last_real = None

    def attach(self, fn):
        if fn not in self._listeners:
            self._listeners.append(fn)

    def detach(self, fn):
        if fn in self._listeners:
            self._listeners.remove(fn)

    def advance_us(self, us):
        if us < 0:
            raise ValueError("time only moves forward")
        self.us += us
        for fn in self._listeners:
            fn(self.us)

    def advance_ms(self, ms):
        self.advance_us(int(ms * 1000))

    def sleep_ms(self, ms):
        """A drop-in for time.sleep_ms that moves virtual time instead of waiting."""
        self.advance_us(int(ms * 1000))

    def poll(self):
        # Catch up with the host clock in realtime mode; a no-op otherwise.
        if not self.realtime:
            return
        now = _ticks_us()
        if self._last_real is None:
            self._last_real = now
            return
        dt = now - self._last_real
        if dt > 0:
            self._last_real = now
            self.advance_us(dt)


sim_clock = SimClock()


# ------------------------------------------------------------------------------------------ I2C


class SimBus:
    """The wire behind one I2C id: attached devices, a write log and fault injection."""

    def __init__(self, bus_id):
        self.id = bus_id
        self.devices = {}
        self._unplugged = {}
        self.transactions = 0
        self.writes = []  # (addr, reg, bytes) for every register write that reached a device
        self.log_writes = True
        self.reads = []  # (addr, reg, nbytes), only when log_reads is set (it allocates)
        self.log_reads = False
        self.faults_raised = 0
        self._fail_at = {}  # absolute transaction number -> (errno, bytes transferred first)
        self._stuck_left = 0
        self._stuck_errno = errno.ETIMEDOUT
        self._fault = None

    # -- devices
    def attach(self, addr, device):
        self.devices[addr] = device
        self._unplugged.pop(addr, None)

    def unplug(self, addr):
        """The device stops answering (NACK -> ENODEV) until replug()."""
        dev = self.devices.pop(addr)
        self._unplugged[addr] = dev
        return dev

    def replug(self, addr, power_cycle=True):
        """The device answers again; by default it comes back with power-on register values."""
        dev = self._unplugged.pop(addr)
        if power_cycle:
            dev.power_cycle()
        self.devices[addr] = dev
        return dev

    # -- faults
    def fail_on(self, n, err=errno.EIO, after_bytes=0):
        """Transaction number `n` counted from now (1 = the next one) raises OSError(err).

        With after_bytes > 0 on a read, that many bytes are clocked out of the device before the
        error, as when a transfer dies part-way; the device's side effects (FIFO pops) happen.
        """
        self._fail_at[self.transactions + n] = (err, after_bytes)

    def stuck(self, n, err=errno.ETIMEDOUT):
        """The next `n` transactions all fail, as with SDA held low by a confused slave."""
        self._stuck_left = n
        self._stuck_errno = err

    def clear_faults(self):
        self._fail_at = {}
        self._stuck_left = 0

    def clear_log(self):
        self.writes = []
        self.reads = []

    def writes_to(self, addr):
        return [(r, d) for (a, r, d) in self.writes if a == addr]

    # -- transactions
    def _begin(self, addr):
        # Returns the device (None if absent); a scheduled fault is left in self._fault.
        # No tuples here: the firmware's read path is measured for allocation through this.
        sim_clock.poll()
        self.transactions += 1
        if self._stuck_left > 0:
            self._stuck_left -= 1
            self.faults_raised += 1
            raise OSError(self._stuck_errno)
        self._fault = self._fail_at.pop(self.transactions, None) if self._fail_at else None
        dev = self.devices.get(addr)
        if self._fault is None and dev is None:
            self.faults_raised += 1
            raise OSError(errno.ENODEV)
        return dev

    def _raise_fault(self):
        err = self._fault[0]
        self._fault = None
        self.faults_raised += 1
        raise OSError(err)

    def read_into(self, addr, reg, buf):
        dev = self._begin(addr)
        if self._fault is not None:
            if dev is not None and self._fault[1] > 0:
                n = min(self._fault[1], len(buf))
                dev.read_into(reg, memoryview(buf)[:n])
            self._raise_fault()
        if self.log_reads:
            self.reads.append((addr, reg, len(buf)))
        dev.read_into(reg, buf)

    def write(self, addr, reg, data):
        dev = self._begin(addr)
        if self._fault is not None:
            self._raise_fault()
        if self.log_writes:
            self.writes.append((addr, reg, bytes(data)))
        dev.write(reg, data)

    def probe(self, addr):
        try:
            dev = self._begin(addr)
        except OSError:
            return False
        if self._fault is not None:
            self._fault = None
            self.faults_raised += 1
            return False
        return dev is not None


_buses = {}


def sim_bus(bus_id=0):
    """The simulated wire for I2C(bus_id); created on first use."""
    bus = _buses.get(bus_id)
    if bus is None:
        bus = SimBus(bus_id)
        _buses[bus_id] = bus
    return bus


class I2C:
    """machine.I2C(id, *, scl, sda, freq=400000, timeout=50000) on a simulated bus."""

    def __init__(self, id=0, *, scl=None, sda=None, freq=400000, timeout=50000):
        self._bus = sim_bus(id)
        self.scl = scl
        self.sda = sda
        self._freq = freq
        self.timeout = timeout
        self._ptr = {}

    def init(self, *, scl=None, sda=None, freq=400000, timeout=50000):
        self._freq = freq
        self.timeout = timeout

    def deinit(self):
        pass

    def scan(self):
        found = []
        for addr in range(0x08, 0x78):
            if self._bus.probe(addr):
                found.append(addr)
        return found

    def readfrom_mem_into(self, addr, memaddr, buf, *, addrsize=8):
        self._bus.read_into(addr, memaddr, buf)

    def readfrom_mem(self, addr, memaddr, nbytes, *, addrsize=8):
        buf = bytearray(nbytes)
        self._bus.read_into(addr, memaddr, buf)
        return bytes(buf)

    def writeto_mem(self, addr, memaddr, buf, *, addrsize=8):
        self._bus.write(addr, memaddr, buf)

    # Plain transfers treat the first written byte as the register pointer, as register-mapped
    # sensors do.
    def writeto(self, addr, buf, stop=True):
        if len(buf) == 0:
            if not self._bus.probe(addr):
                raise OSError(errno.ENODEV)
            return 1
        if len(buf) > 1:
            self._bus.write(addr, buf[0], memoryview(buf)[1:])
        elif not self._bus.probe(addr):
            raise OSError(errno.ENODEV)
        self._ptr[addr] = buf[0]
        return len(buf)

    def readfrom_into(self, addr, buf, stop=True):
        self._bus.read_into(addr, self._ptr.get(addr, 0), buf)

    def readfrom(self, addr, nbytes, stop=True):
        buf = bytearray(nbytes)
        self.readfrom_into(addr, buf, stop)
        return bytes(buf)


# ------------------------------------------------------------------------------------------ Pin


class _PinState:
    def __init__(self, pin_id):
        self.id = pin_id
        self.mode = -1
        self.pull = -1
        self.level = 0
        self.handler = None
        self.trigger = 0
        self.irq_count = 0


_pins = {}


def _pin_state(pin_id):
    st = _pins.get(pin_id)
    if st is None:
        st = _PinState(pin_id)
        _pins[pin_id] = st
    return st


class Pin:
    """machine.Pin(id, mode=-1, pull=-1, *, value=None); one shared state per pin id."""

    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=-1, pull=-1, *, value=None):
        self._st = _pin_state(id)
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None):
        st = self._st
        if mode != -1:
            st.mode = mode
        if pull != -1:
            st.pull = pull
            if st.mode == Pin.IN and pull == Pin.PULL_UP:
                st.level = 1
        if value is not None:
            st.level = 1 if value else 0

    def value(self, x=None):
        if x is None:
            return self._st.level
        self._set(1 if x else 0)
        return None

    def __call__(self, x=None):
        return self.value(x)

    def on(self):
        self._set(1)

    def off(self):
        self._set(0)

    def toggle(self):
        self._set(1 - self._st.level)

    def irq(self, handler=None, trigger=3, *, priority=1, wake=None, hard=False):
        self._st.handler = handler
        self._st.trigger = trigger if handler is not None else 0
        return self

    def _set(self, level):
        st = self._st
        old = st.level
        st.level = level
        if st.handler is None or old == level:
            return
        edge = Pin.IRQ_RISING if level else Pin.IRQ_FALLING
        if st.trigger & edge:
            st.irq_count += 1
            st.handler(self)

    def sim_drive(self, level):
        """Drive the pin from outside (a button, a sensor's INT line); fires the IRQ on edges."""
        self._set(1 if level else 0)


def sim_pin(pin_id):
    return Pin(pin_id)


def _pin_id(pin):
    return pin._st.id if isinstance(pin, Pin) else pin


# ------------------------------------------------------------------------------------------ PWM


class PWM:
    """machine.PWM(dest, *, freq, duty_u16); every change is kept in sim_history."""

    def __init__(self, dest, *, freq=None, duty_u16=None):
        self.pin = dest
        self._freq = 0
        self._duty = 0
        self.active = True
        self.sim_history = []
        self.init(freq=freq, duty_u16=duty_u16)

    def init(self, *, freq=None, duty_u16=None):
        if freq is not None:
            self._freq = int(freq)
        if duty_u16 is not None:
            self._set_duty(duty_u16)
        self.active = True
        self._log()

    def _set_duty(self, duty):
        duty = int(duty)
        if duty < 0 or duty > 65535:
            raise ValueError("duty_u16 must be 0..65535")
        self._duty = duty

    def _log(self):
        self.sim_history.append((sim_clock.us, self._freq, self._duty if self.active else 0))

    def freq(self, value=None):
        if value is None:
            return self._freq
        if value <= 0:
            raise ValueError("freq must be positive")
        self._freq = int(value)
        self._log()
        return None

    def duty_u16(self, value=None):
        if value is None:
            return self._duty
        self._set_duty(value)
        self._log()
        return None

    def deinit(self):
        self.active = False
        self._log()


# ------------------------------------------------------------------------------------------ ADC

_adc_uv = {}


def sim_set_adc(pin, microvolts):
    """Set the voltage an ADC on `pin` (a Pin or a pin id) reads."""
    _adc_uv[_pin_id(pin)] = int(microvolts)


class ADC:
    """machine.ADC(pin): read_u16() against a 3.3 V full scale, read_uv()."""

    VREF_UV = 3300000

    def __init__(self, pin):
        self._id = _pin_id(pin)

    def read_uv(self):
        uv = _adc_uv.get(self._id, 0)
        return max(0, min(uv, ADC.VREF_UV))

    def read_u16(self):
        return self.read_uv() * 65535 // ADC.VREF_UV


# ---------------------------------------------------------------------------------------- Timer


_timers = []


class Timer:
    """machine.Timer(id); callbacks run when the virtual clock passes their deadline."""

    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id=-1, **kwargs):
        self.id = id
        self._period_us = 0
        self._mode = Timer.PERIODIC
        self._callback = None
        self._due = 0
        self.fired = 0
        if kwargs:
            self.init(**kwargs)

    def init(self, *, mode=1, freq=-1, period=-1, callback=None):
        if freq > 0:
            self._period_us = int(1000000 / freq)
        elif period > 0:
            self._period_us = int(period * 1000)
        else:
            raise ValueError("give freq or period (ms)")
        self._mode = mode
        self._callback = callback
        self._due = sim_clock.us + self._period_us
        sim_clock.attach(self._on_time)
        if self not in _timers:
            _timers.append(self)

    def deinit(self):
        self._callback = None
        sim_clock.detach(self._on_time)
        if self in _timers:
            _timers.remove(self)

    def _on_time(self, now):
        while self._callback is not None and now >= self._due:
            cb = self._callback
            self.fired += 1
            if self._mode == Timer.ONE_SHOT:
                self.deinit()
            else:
                self._due += self._period_us
            cb(self)


# ------------------------------------------------------------------------------ board functions

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

sim_state = {
    "freq": 160000000,
    "unique_id": b"\x4e\x4c\x00\x00\x00\x01",
    "resets": 0,
    "deepsleeps": 0,
    "reset_cause": PWRON_RESET,
}


def reset():
    sim_state["resets"] += 1
    sim_state["reset_cause"] = HARD_RESET
    raise SimReset("machine.reset()")


def reset_cause():
    return sim_state["reset_cause"]


def unique_id():
    return sim_state["unique_id"]


def freq(hz=None):
    if hz is None:
        return sim_state["freq"]
    sim_state["freq"] = int(hz)
    return None


def lightsleep(time_ms=None):
    """Sleep in virtual time (timers still fire); without a time, until the next timer is due
    (1 ms if none is armed)."""
    if time_ms is None:
        if _timers:
            sim_clock.advance_us(max(0, min(t._due for t in _timers) - sim_clock.us))
            return
        time_ms = 1
    sim_clock.advance_ms(time_ms)


def deepsleep(time_ms=None):
    """A board resets on wake from deep sleep; the simulation moves time and raises SimReset."""
    sim_state["deepsleeps"] += 1
    if time_ms:
        sim_clock.advance_ms(time_ms)
    sim_state["reset_cause"] = DEEPSLEEP_RESET
    raise SimReset("machine.deepsleep()")
