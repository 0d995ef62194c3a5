"""The simulated machine module: MicroPython's signatures and behaviour for the parts the
firmware uses (I2C, Pin, PWM, ADC, Timer, board functions)."""

import errno
import time

import machine
from imu_common import done, eq, fresh_bus
from imu_regs import Mpu6050Sim
from imu_trace import ConstantSource


def raises(fn, exc, what):
    try:
        fn()
        eq("no error", exc.__name__, what)
    except exc as e:
        eq(True, True, what)
        return e
    return None


def check_i2c():
    bus = fresh_bus(51)
    clock = machine.SimClock()
    dev = Mpu6050Sim(ConstantSource(), clock=clock)
    bus.attach(0x68, dev)
    i2c = machine.I2C(51, scl=machine.Pin(22), sda=machine.Pin(21), freq=400000)
    eq(i2c.scan(), [0x68], "scan")
    eq(i2c.readfrom_mem(0x68, 0x75, 1), b"\x68", "readfrom_mem")
    buf = bytearray(2)
    i2c.readfrom_mem_into(0x68, 0x6B, buf, addrsize=8)
    eq(bytes(buf), b"\x40\x00", "readfrom_mem_into, PWR_MGMT_1 reset value")
    i2c.writeto_mem(0x68, 0x19, b"\x07")
    eq((dev.regs[0x19], bus.writes[-1]), (7, (0x68, 0x19, b"\x07")), "writeto_mem logged")
    eq(i2c.writeto(0x68, b"\x75"), 1, "writeto sets the register pointer")
    eq(i2c.readfrom(0x68, 1), b"\x68", "readfrom reads at the pointer")
    e = raises(lambda: i2c.readfrom_mem(0x50, 0, 1), OSError, "absent address")
    eq(e.args[0] if e else None, errno.ENODEV, "NACK is ENODEV")
    t = bus.transactions
    bus.fail_on(2, errno.EIO)
    i2c.readfrom_mem(0x68, 0x75, 1)
    e = raises(lambda: i2c.readfrom_mem(0x68, 0x75, 1), OSError, "n-th transaction fails")
    eq((e.args[0] if e else None, bus.transactions - t), (errno.EIO, 2), "EIO on the 2nd")
    bus.stuck(2)
    raises(lambda: i2c.readfrom_mem(0x68, 0x75, 1), OSError, "stuck 1")
    raises(lambda: i2c.readfrom_mem(0x68, 0x75, 1), OSError, "stuck 2")
    eq(i2c.readfrom_mem(0x68, 0x75, 1), b"\x68", "bus free again")
    bus.unplug(0x68)
    eq(i2c.scan(), [], "unplugged")
    dev.regs[0x19] = 9
    bus.replug(0x68)
    eq((i2c.scan(), dev.regs[0x19], dev.power_cycles), ([0x68], 0, 1), "back, power-cycled")
    bus.unplug(0x68)
    bus.replug(0x68, power_cycle=False)
    eq(dev.power_cycles, 1, "replug without power loss")


def check_pin():
    p = machine.Pin(5, machine.Pin.OUT)
    p.value(1)
    eq((p.value(), machine.Pin(5).value()), (1, 1), "one state per pin id")
    p.off()
    eq(p(), 0, "off / call")
    p.toggle()
    eq(p.value(), 1, "toggle")
    seen = []
    b = machine.Pin(6, machine.Pin.IN, machine.Pin.PULL_UP)
    eq(b.value(), 1, "pull-up idles high")
    b.irq(handler=lambda pin: seen.append(pin.value()), trigger=machine.Pin.IRQ_FALLING)
    b.sim_drive(0)
    b.sim_drive(1)
    b.sim_drive(0)
    eq(seen, [0, 0], "falling edges only")
    b.irq(handler=None)
    b.sim_drive(1)
    eq(len(seen), 2, "irq removed")


def check_pwm_adc():
    pwm = machine.PWM(machine.Pin(7), freq=2000, duty_u16=32768)
    eq((pwm.freq(), pwm.duty_u16()), (2000, 32768), "PWM init")
    pwm.duty_u16(0)
    pwm.freq(250)
    eq((pwm.freq(), pwm.duty_u16()), (250, 0), "PWM changes")
    raises(lambda: pwm.duty_u16(70000), ValueError, "duty out of range")
    pwm.deinit()
    eq((pwm.active, pwm.sim_history[-1][2]), (False, 0), "deinit silences")
    eq(len(pwm.sim_history), 4, "history of changes")
    adc = machine.ADC(machine.Pin(34))
    machine.sim_set_adc(34, 1650000)
    eq((adc.read_uv(), adc.read_u16()), (1650000, 32767), "mid-scale")
    machine.sim_set_adc(machine.Pin(34), 5000000)
    eq(adc.read_u16(), 65535, "clipped at full scale")


def check_timer_and_board():
    ticks = []
    t = machine.Timer(1)
    t.init(period=10, mode=machine.Timer.PERIODIC, callback=lambda tm: ticks.append(1))
    machine.lightsleep(35)
    eq(len(ticks), 3, "periodic 10 ms over 35 ms")
    one = []
    t2 = machine.Timer(2)
    t2.init(period=4, mode=machine.Timer.ONE_SHOT, callback=lambda tm: one.append(1))
    machine.lightsleep()  # until the next timer: the one-shot, 4 ms away
    machine.lightsleep(50)
    eq((len(one), len(ticks)), (1, 8), "one-shot fires once, periodic keeps going")
    t.deinit()
    machine.lightsleep(50)
    eq(len(ticks), 8, "deinit stops it")
    eq(machine.unique_id(), b"\x4e\x4c\x00\x00\x00\x01", "unique_id")
    eq(machine.freq(), 160000000, "freq")
    machine.freq(80000000)
    eq(machine.freq(), 80000000, "freq set")
    raises(machine.reset, machine.SimReset, "reset does not return")
    eq(machine.reset_cause(), machine.HARD_RESET, "reset cause")
    us = machine.sim_clock.us
    raises(lambda: machine.deepsleep(1000), machine.SimReset, "deepsleep resets")
    eq((machine.sim_clock.us - us, machine.reset_cause()), (1000000, machine.DEEPSLEEP_RESET),
       "slept a second, woke by reset")


def check_realtime_clock():
    # Real time drives the sensors when asked to: samples appear after a real pause.
    bus = fresh_bus(52)
    dev = Mpu6050Sim(ConstantSource())  # on machine.sim_clock
    bus.attach(0x68, dev)
    i2c = machine.I2C(52)
    i2c.writeto_mem(0x68, 0x6B, b"\x01")
    i2c.writeto_mem(0x68, 0x1A, b"\x03")
    i2c.writeto_mem(0x68, 0x19, b"\x09")
    machine.sim_clock.realtime = True
    before = dev.samples
    i2c.readfrom_mem(0x68, 0x75, 1)
    time.sleep(0.05)
    i2c.readfrom_mem(0x68, 0x75, 1)
    machine.sim_clock.realtime = False
    eq(dev.samples > before, True, "100 Hz samples after 50 ms of real time")


check_i2c()
check_pin()
check_pwm_adc()
check_timer_and_board()
check_realtime_clock()
done("imu_machine_check")
