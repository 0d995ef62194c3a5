"""The wearable's application: boot sequence and the asyncio tasks that wire the modules together.

docs/firmware.md describes the device, the main loop and its timing. In short:

    app = App(root="")            # root: directory holding settings.json, boot_id, log/, bonds.bin
    app.run()                     # boot, then run the tasks forever (stop_after_ms for tests)

Boot: board pins (board.json), settings (a fallback is reported), boot_id (+1 per boot, in the
file boot_id), the raw ring (the one large block, 42 KB, allocated while the heap is still in one
piece), BLE up, the flash log (torn records reported), the IMU (self-test; none found is NO_IMU:
BLE stays up, the status says so and detection is retried), then the tasks:

    sensor   every 50 ms  drain the IMU FIFO -> posture samples on the stream grid -> strain,
                          minute log, raw ring, live packets; wear changes; gc.collect() now and
                          then, right after a batch
    radio    every 10 ms  NecklineBLE.poll() (control-point requests), backfill procedures,
                          events waiting for a host
    ui       every 20 ms  button gestures, haptic patterns, calibration results and time-outs
    house    every 1 s    status value, battery (every 10 s), IMU and BLE retries, lost-sample
                          reports

Time is read only through time.ticks_ms/ticks_diff/ticks_add and awaited only through
asyncio.sleep_ms, so firmware/sim/vclock.py can run all of it on a virtual clock. The device
clock t_ms (u32 ms since boot, protocol §4) is kept by adding ticks_diff steps, so it does not
wrap at the port's ticks period.
"""

import gc
import os
import sys
import time

import machine

from wearable import board as board_mod
from wearable import button as button_mod
from wearable import proto
from wearable.battery import Battery
from wearable.ble import NecklineBLE
from wearable.button import Button
from wearable.control import Control
from wearable.delivery import Delivery
from wearable.flashlog import FlashLog
from wearable.haptics import CAL_OK, PLAYED, Haptics
from wearable.live import Live
from wearable.minute_log import MinuteLog
from wearable.outbox import Outbox
from wearable.posture import NO_RESULT
from wearable.ring import RawRing
from wearable.sampler import Sampler
from wearable.settings import Settings
from wearable.strain import FLEX_ENDED, FLEX_STARTED, STARTED_ANY, Strain, config_ok

try:
    import asyncio
except ImportError:  # older MicroPython
    import uasyncio as asyncio

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


VERSION = "0.1.0"
MODEL = "NL-1"

_M = const(0xFFFFFFFF)
_HALF = const(0x80000000)
SENSOR_MS = const(50)
RADIO_MS = const(10)
UI_MS = const(20)
HOUSE_MS = const(1000)
BATTERY_EVERY_MS = const(10000)
GC_EVERY_MS = const(5000)
IMU_RETRY_MS = const(10000)  # NO_IMU: look for the IMU again, backing off to IMU_RETRY_MAX_MS
IMU_RETRY_MAX_MS = const(60000)
IMU_RECOVER_MS = const(30000)  # a FAILED driver is asked to try again this often
BLE_RETRY_MS = const(5000)
CAL_GRACE_S = 3.0  # motion tolerated at the start of a calibration (the hand moving away)
CAL_TIMEOUT_MS = const(10000)
RESYNC_MS = const(2000)  # SET_TIME moving the clock less than this keeps the minute grid
ADV_FAST_US = const(250000)
ADV_SLOW_US = const(1000000)  # off the neck
RING_CAPACITY = const(6000)  # 10 minutes at 10 Hz, 42 KB


def sdiff(a, b):
    """Signed modular difference b - a of two u32 counters (protocol §4)."""
    return ((b - a + _HALF) & _M) - _HALF


def _print_log(msg):
    print("app: " + msg)


class App:
    def __init__(self, root="", log=None, ring_capacity=0):
        self.root = root
        self.log = log or _print_log
        self.ring_capacity = ring_capacity
        self.booted = False
        self.running = False
        self.ble_up = False
        self.boot_id = 0
        self.time_set = False
        self._utc_ms = 0
        self._utc_t = 0
        self._rebase = True
        self._have_prev = False
        self._prev_t = 0
        self._fill_first = -1
        self._fill_last = 0
        self._worn = True
        self._cal_deadline = 0
        self._rec = bytearray(proto.SUMMARY_HEADER_SIZE + proto.SUMMARY_RECORD_SIZE)
        # counters and diagnostics
        self.task_errors = 0
        self.last_error = ""
        self.minutes_stored = 0
        self.minutes_failed = 0
        self.cal_invalidated = 0
        self.boot_id_report = ""
        self.mem_free_min = -1
        self.mem_alloc_max = 0
        self.ble_tries = 0
        self.wear_changes = 0

    def path(self, name):
        return name if self.root in ("", ".") else self.root + "/" + name

    # ================================================================ clock

    def now_t(self):
        """Device time: u32 ms since boot, advanced by ticks_diff steps."""
        tk = time.ticks_ms()
        d = time.ticks_diff(tk, self._tk)
        if d > 0:
            self._t = (self._t + d) & _M
            self._tk = tk
        return self._t

    def utc_at(self, t):
        """UTC epoch ms of device time t (valid once time_set)."""
        return self._utc_ms + sdiff(self._utc_t, t)

    # ================================================================ boot

    def boot(self):
        self._tk = time.ticks_ms()
        self._t = 0
        self._next_battery = self._tk
        self._next_gc = self._tk
        self._next_imu_try = self._tk
        self._imu_retry_ms = IMU_RETRY_MS
        self._next_recover = self._tk
        self._next_ble_try = self._tk
        self.board, report = board_mod.load(self.path("board.json"))
        if report:
            self.log(report)
        b = self.board
        if b.get("cpu_hz"):
            try:
                machine.freq(b["cpu_hz"])
            except (ValueError, OSError) as e:
                self.log("cpu frequency %d refused: %r" % (b["cpu_hz"], e))
        self.settings = Settings(self.path("settings.json"), combo_check=config_ok)
        if not self.settings.load():
            self.log(self.settings.report)
        v = self.settings.values
        self.boot_id = self._next_boot_id()
        self.log("boot %d, firmware %s on %s" % (self.boot_id, VERSION, b["hardware"]))
        # The ring is the one large block (42 KB): allocate it first, while the heap is in one
        # piece. Then BLE, so that the stack gets its (system heap) memory before the rest.
        gc.collect()
        self.ring = RawRing(self.ring_capacity or b.get("ring_capacity", RING_CAPACITY))
        self.delivery = Delivery()
        self.outbox = Outbox()
        self.control = Control(self)
        self.link = NecklineBLE(self.control.on_request, model=MODEL, firmware=VERSION,
                                hardware=b["hardware"], bonds_path=self.path("bonds.bin"),
                                adv_interval_us=ADV_FAST_US, log=self._ble_log)
        self._start_ble()
        self.flog = FlashLog(self.path("log"))
        if self.flog.torn or self.flog.bad_segments:
            self.log("summary log: %d torn record(s), %d unreadable segment(s) ignored"
                     % (self.flog.torn, self.flog.bad_segments))
        self.strain = Strain(v)
        self.minutes = MinuteLog(self.boot_id)
        self.haptics = Haptics(self._pwm(b["motor"]), freq_hz=self.settings.haptics_freq_hz,
                               values=v)
        self.battery = Battery(self._adc(b["battery_adc"]),
                               divider_x1000=self.settings.battery_divider_x1000)
        self.button = self._button(b["button"])
        self.live = Live(self.link, self.delivery, self.boot_id)
        i2c = None
        try:
            i2c = machine.I2C(b["i2c_id"], scl=machine.Pin(b["scl"]), sda=machine.Pin(b["sda"]),
                              freq=b["i2c_hz"])
        except (ValueError, OSError) as e:
            self.log("I2C bus %d unusable: %r" % (b["i2c_id"], e))
        self.sampler = Sampler(i2c, self._on_sample, imu_choice=self.settings.imu,
                               remap=self.settings.remap,
                               period_ms=v[proto.KEY_STREAM_PERIOD_MS], log=self.log)
        if i2c is not None:
            self._open_imu()
        self._next_imu_try = time.ticks_add(time.ticks_ms(), self._imu_retry_ms)
        self._battery_update(time.ticks_ms())
        self._wdt = None
        wd = b.get("watchdog_s", 0)
        if wd and hasattr(machine, "WDT"):
            # Opt-in (board.json): a hung loop resets the board. Off by default because it cannot
            # be stopped again, which gets in the way at the REPL.
            self._wdt = machine.WDT(timeout=wd * 1000)
        self.booted = True
        self.refresh_status()

    def _next_boot_id(self):
        path = self.path("boot_id")
        prev = 0
        try:
            with open(path) as f:
                prev = int(f.read().strip())
            if not 0 <= prev <= 255:
                raise ValueError("out of range")
        except OSError:
            prev = 0  # first boot: boot_id 1
        except ValueError:
            prev = os.urandom(1)[0] if hasattr(os, "urandom") else 0
            self.boot_id_report = path + ": unreadable; continuing from a random boot_id"
            self.log(self.boot_id_report)
        bid = (prev + 1) & 0xFF
        tmp = path + ".tmp"
        try:
            with open(tmp, "w") as f:
                f.write("%d\n" % bid)
            try:
                os.rename(tmp, path)
            except OSError:
                os.remove(path)  # FAT will not rename over a file
                os.rename(tmp, path)
        except OSError as e:
            self.boot_id_report = path + ": not saved (%r); the next boot may repeat %d" % (e, bid)
            self.log(self.boot_id_report)
        return bid

    # A pin the port refuses (a wrong board.json) costs that part, not the boot.
    def _pwm(self, pin):
        if pin >= 0:
            try:
                return machine.PWM(machine.Pin(pin), freq=self.settings.haptics_freq_hz,
                                   duty_u16=0)
            except (ValueError, OSError) as e:
                self.log("motor pin %d unusable: %r" % (pin, e))
        return _NoMotor()

    def _adc(self, pin):
        if pin >= 0:
            try:
                p = machine.Pin(pin)
                try:
                    return machine.ADC(p, atten=machine.ADC.ATTN_11DB)  # ESP32: up to ~3.1 V
                except (AttributeError, TypeError):
                    return machine.ADC(p)
            except (ValueError, OSError) as e:
                self.log("battery pin %d unusable: %r" % (pin, e))
        return _NoAdc()

    def _button(self, pin):
        if pin >= 0:
            try:
                return Button(machine.Pin(pin, machine.Pin.IN, machine.Pin.PULL_UP))
            except (ValueError, OSError) as e:
                self.log("button pin %d unusable: %r" % (pin, e))
        return None

    def _start_ble(self):
        self.ble_tries += 1
        try:
            self.link.start()
        except Exception as e:  # OSError from the stack; anything else must not stop the boot
            self.log("BLE not started (%r); retrying every %d s" % (e, BLE_RETRY_MS // 1000))
            return False
        self.ble_up = True
        self.link.update_config(self.settings.entries())
        self.log("advertising as " + self.link.name)
        return True

    def _ble_log(self, msg):
        self.log("ble: " + msg)

    def _open_imu(self):
        try:
            found = self.sampler.open()
        except Exception as e:  # a driver bug must not stop the boot
            self.log("imu: start failed: %r" % (e,))
            found = False
        if not found:
            self.log("imu: none found (NO_IMU); BLE stays up; retrying in %d s"
                     % (self._imu_retry_ms // 1000))
        return found

    # ================================================================ per output sample

    def _on_sample(self, t, flexion, lateral, rotation, flags, filler):
        p = self.sampler.period
        dt = sdiff(self._prev_t, t) if self._have_prev else p
        if self._rebase:
            self._begin_minutes(t)
        s = self.strain
        r = s.update(dt, p, flexion, lateral, flags)
        m = self.minutes
        m.update(dt, p, s)
        if flags & proto.SF_CALIBRATED:
            m.mark(proto.RF_CALIBRATED)
        if s.in_strain:
            flags |= proto.SF_IN_STRAIN
        ring = self.ring
        o0 = ring.oldest_seq
        seq = ring.append(t, self.boot_id, p, flexion, lateral, rotation, flags)
        o1 = ring.oldest_seq
        if o1 != o0:
            self.delivery.evicted(o0, (o1 - 1) & _M)
        if filler:
            if self._fill_first < 0:
                self._fill_first = seq
            self._fill_last = seq
        elif self._fill_first >= 0:
            self._report_fillers()
        self.live.add(seq, t, p, flexion, lateral, rotation, flags)
        if r:
            self._strain_events(r, t)
        if m.ready():
            self._store_minutes()
        self._prev_t = t
        self._have_prev = True

    def _report_fillers(self):
        a = self._fill_first
        b = self._fill_last
        self._fill_first = -1
        self.outbox.put(proto.EV_BUFFER_OVERFLOW, self.now_t(), a, b)
        self.log("IMU data lost: samples %d..%d carry no angle" % (a, b))

    def _begin_minutes(self, t):
        self._rebase = False
        if self.time_set:
            utc = self.utc_at(t)
            self.minutes.begin(utc // 60000, utc % 60000, 1)
        else:
            self.minutes.begin(t // 60000, t % 60000, 0)

    def _strain_events(self, r, t):
        s = self.strain
        if r & STARTED_ANY:
            if self.haptics.alert(time.ticks_ms()) == PLAYED:
                self.minutes.mark(proto.RF_ALERTED)
        if r & FLEX_STARTED:
            self.outbox.put(proto.EV_STRAIN_START, (t - s.flex.start_back) & _M, s.flexion)
        if r & FLEX_ENDED:
            self.outbox.put(proto.EV_STRAIN_END, (t - s.flex.end_back) & _M,
                            (s.flex.dur + 500) // 1000, s.flex.end_peak)

    def _store_minutes(self):
        m = self.minutes
        while m.ready():
            m.pack(self._rec, 0)
            if self.flog.append_packed(self._rec, proto.SUMMARY_HEADER_SIZE) < 0:
                self.minutes_failed += 1
                self.log("summary minute not stored (write errors %d, rejected %d)"
                         % (self.flog.write_errors, self.flog.rejected))
            else:
                self.minutes_stored += 1

    # ================================================================ requests and actions

    def calibrate(self, source):
        """Start capturing the neutral; False (with a CALIBRATION event saying why) if refused."""
        s = self.sampler
        if not s.ok():
            result = proto.CAL_NO_IMU
        elif not s.worn():
            result = proto.CAL_NOT_WORN
        else:
            p = s.posture
            p.start_calibration(CAL_GRACE_S)
            if p.cal_running:
                self._cal_deadline = time.ticks_add(time.ticks_ms(), CAL_TIMEOUT_MS)
                self.log("calibration started (%s)" % source)
                return True
            result = p.take_cal_result()
        self._cal_done(result)
        return False

    def _cal_done(self, result):
        p = self.sampler.posture
        pitch = roll = proto.NO_VALUE
        if result == proto.CAL_OK and p is not None:
            pitch = p.cal_pitch_cd
            roll = p.cal_roll_cd
            self.minutes.mark(proto.RF_PARTIAL)
        self.outbox.put(proto.EV_CALIBRATION, self.now_t(), result, pitch, roll)
        self.haptics.calibration(time.ticks_ms(), result == proto.CAL_OK)
        self.log("calibration: %s" % ("ok", "moving", "not worn", "no imu", "timeout")[result])

    def set_time(self, utc_ms):
        t = self.now_t()
        resync = True
        if self.time_set:
            resync = abs(utc_ms - self.utc_at(t)) >= RESYNC_MS
        self._utc_ms = utc_ms
        self._utc_t = t
        self.time_set = True
        self.haptics.set_utc(time.ticks_ms(), utc_ms)
        if resync:
            self._rebase = True  # the next sample starts the UTC minute grid
        return (proto.ST_SUCCESS, self.boot_id, t)

    def set_config(self, entries):
        st = self.settings.set_config(entries)
        if st != proto.ST_SUCCESS:
            return st
        self.apply_config()
        if self.settings.save_errors:
            self.log(self.settings.report)
        return st

    def apply_config(self):
        v = self.settings.values
        self.strain.configure(v)
        self.haptics.configure(v)
        period = v[proto.KEY_STREAM_PERIOD_MS]
        if period != self.sampler.period:
            self.live.flush()
            self.sampler.set_period(period)
        if self.ble_up:
            self.link.update_config(self.settings.entries())

    def refresh_status(self):
        if not self.ble_up:
            return
        s = self.sampler
        state = 0
        if s.posture is not None and s.posture.calibrated:
            state |= proto.STATE_CALIBRATED
        if s.ok() and s.worn():
            state |= proto.STATE_WORN
        if self.time_set:
            state |= proto.STATE_TIME_SET
        if self.settings.values[proto.KEY_HAPTICS_ENABLED]:
            state |= proto.STATE_HAPTICS_ON
        if self.link.streaming():
            state |= proto.STATE_STREAMING
        bat = self.battery
        mv = bat.mv if bat.mv < 0xFFFF else 0xFFFF
        self.link.update_status(self.boot_id, self.now_t(), self.ring.next_seq,
                                self.ring.oldest_seq, self.flog.next_record,
                                self.flog.oldest_record, mv, bat.pct, state, s.period)

    # ================================================================ periodic work

    def _sensor_step(self):
        s = self.sampler
        if s.poll(self.now_t()):
            w = s.worn()
            if w != self._worn:
                self._wear_changed(w)
        if self.live.due(self.now_t()):
            self.live.flush()
        tk = time.ticks_ms()
        if time.ticks_diff(tk, self._next_gc) >= 0:
            self._next_gc = time.ticks_add(tk, GC_EVERY_MS)
            gc.collect()
            self._note_memory()

    def _wear_changed(self, worn):
        self._worn = worn
        self.wear_changes += 1
        s = self.sampler
        if worn:
            s.set_low_power(False)
            self._set_adv(ADV_FAST_US)
            p = s.posture
            if p is not None and p.calibrated:
                # Back on the neck after a removal: the clip sits differently, so the old
                # neutral would give confident but wrong angles. Uncalibrated samples count as
                # missing, never as good posture; the wearer (or the host) recalibrates.
                p.clear_calibration()
                self.cal_invalidated += 1
            self.log("worn again: %d Hz, calibration cleared" % s.odr_hz())
        else:
            s.set_low_power(True)
            self._set_adv(ADV_SLOW_US)
            self.log("not worn: IMU at %d Hz, advertising every %d ms"
                     % (s.odr_hz(), ADV_SLOW_US // 1000))

    def _set_adv(self, interval_us):
        link = self.link
        # NecklineBLE reads this at every (re)start of advertising; restart it if running.
        link._adv_interval_us = interval_us
        if self.ble_up and link.advertising and not link.connected():
            link.advertise()

    def _radio_step(self):
        if not self.ble_up:
            return
        self.link.poll()
        self.control.step()
        if self.outbox.pending():
            self.outbox.flush(self.link, self.boot_id)

    def _ui_step(self):
        tk = time.ticks_ms()
        btn = self.button
        if btn is not None:
            g = btn.tick(tk)
            if g:
                self._gesture(g, tk)
        self.haptics.tick(tk)
        p = self.sampler.posture
        if p is not None:
            if p.cal_running and time.ticks_diff(tk, self._cal_deadline) >= 0:
                p.abort_calibration(proto.CAL_TIMEOUT if self.sampler.ok() else proto.CAL_NO_IMU)
            r = p.take_cal_result()
            if r != NO_RESULT:
                self._cal_done(r)

    def _gesture(self, g, tk):
        if g == button_mod.MARKER:
            self.outbox.put(proto.EV_HEADACHE_MARKER, self.now_t())
            self.haptics.play(CAL_OK, tk)  # a soft double tap: "noted"
            self.log("headache marker")
        elif g == button_mod.CALIBRATE:
            self.calibrate("button")
        elif g == button_mod.CLEAR_BONDS:
            n = self.link.clear_bonds() if self.ble_up else 0
            self.haptics.bond_cleared(tk)
            self.log("bonds cleared by the button (%d)" % n)

    def _house_step(self):
        tk = time.ticks_ms()
        if self._wdt is not None:
            self._wdt.feed()
        if not self.ble_up and time.ticks_diff(tk, self._next_ble_try) >= 0:
            self._next_ble_try = time.ticks_add(tk, BLE_RETRY_MS)
            self._start_ble()
        s = self.sampler
        if s.i2c is not None and not s.present() and time.ticks_diff(tk, self._next_imu_try) >= 0:
            self._imu_retry_ms = min(self._imu_retry_ms * 2, IMU_RETRY_MAX_MS)
            if self._open_imu():
                self._worn = True
            self._next_imu_try = time.ticks_add(time.ticks_ms(), self._imu_retry_ms)
        if s.state_name() == "failed" and time.ticks_diff(tk, self._next_recover) >= 0:
            self._next_recover = time.ticks_add(tk, IMU_RECOVER_MS)
            s.recover()
            self.log("imu: failed; asked to recover (%s)" % s.state_name())
        if time.ticks_diff(tk, self._next_battery) >= 0:
            self._next_battery = time.ticks_add(tk, BATTERY_EVERY_MS)
            self._battery_update(tk)
        if self.ble_up and self.link.streaming():
            lost = self.delivery.take_lost()
            if lost is not None:
                self.outbox.put(proto.EV_BUFFER_OVERFLOW, self.now_t(), lost[0], lost[1])
                self.log("samples %d..%d evicted before a host had them" % lost)
        self.refresh_status()

    def _battery_update(self, tk):
        bat = self.battery
        if bat.update():
            self.outbox.put(proto.EV_LOW_BATTERY, self.now_t(), bat.mv, bat.pct)
            self.haptics.low_battery(tk)
            self.log("battery low: %d mV, %d %%" % (bat.mv, bat.pct))
        if self.ble_up and bat.present:
            self.link.set_battery(bat.pct)

    def _note_memory(self):
        free = gc.mem_free()
        if self.mem_free_min < 0 or free < self.mem_free_min:
            self.mem_free_min = free
        used = gc.mem_alloc()
        if used > self.mem_alloc_max:
            self.mem_alloc_max = used

    # ================================================================ tasks

    async def _task(self, name, step, period_ms):
        while self.running:
            try:
                step()
            except Exception as e:  # nothing may stop a task: count, log, carry on
                self.task_errors += 1
                self.last_error = "%s: %r" % (name, e)
                if self.task_errors <= 5 or self.task_errors % 100 == 0:
                    self.log("task %s error %d: %r" % (name, self.task_errors, e))
                    if hasattr(sys, "print_exception"):
                        sys.print_exception(e)
                if isinstance(e, MemoryError):
                    gc.collect()
            await asyncio.sleep_ms(period_ms)

    async def main(self, stop_after_ms=None):
        if not self.booted:
            self.boot()
        self.running = True
        gc.collect()
        self._note_memory()
        tasks = (
            asyncio.create_task(self._task("sensor", self._sensor_step, SENSOR_MS)),
            asyncio.create_task(self._task("radio", self._radio_step, RADIO_MS)),
            asyncio.create_task(self._task("ui", self._ui_step, UI_MS)),
            asyncio.create_task(self._task("house", self._house_step, HOUSE_MS)),
        )
        start = time.ticks_ms()
        while self.running:
            wait = 200
            if stop_after_ms is not None:
                left = stop_after_ms - time.ticks_diff(time.ticks_ms(), start)
                if left <= 0:
                    break
                wait = left if left < wait else wait
            await asyncio.sleep_ms(wait)
        self.running = False
        await asyncio.sleep_ms(HOUSE_MS + 10)  # every task sees running == False and returns
        for t in tasks:
            if not t.done():
                t.cancel()
        self.shutdown()

    def stop(self):
        self.running = False

    def shutdown(self):
        """Settle and store what is open, then switch the radio off (a planned power-down)."""
        try:
            self.live.flush()
            self.strain.finish()
            self.minutes.finish(self.strain)
            self._store_minutes()
            self.flog.close()
            self.haptics.stop()
        except Exception as e:
            self.log("shutdown: %r" % (e,))
        if self.ble_up:
            try:
                self.link.stop()
            except OSError:
                pass
            self.ble_up = False

    def run(self, stop_after_ms=None):
        asyncio.run(self.main(stop_after_ms))

    # ================================================================ diagnostics

    def snapshot(self):
        """Everything a test or a log line wants to know, as a dict (allocates)."""
        s = self.sampler
        p = s.posture
        st = s.drv.status if s.drv is not None else None
        return {
            "boot_id": self.boot_id, "t_ms": self.now_t(), "imu": s.state_name(),
            "imu_chip": s.drv.name if s.drv is not None else "",
            "self_test": st.self_test if st is not None else 0,
            "odr_hz": s.odr_hz(), "worn": s.worn(), "low_power": s.low_power,
            "calibrated": bool(p is not None and p.calibrated),
            "cal_invalidated": self.cal_invalidated, "period_ms": s.period,
            "time_set": self.time_set, "next_seq": self.ring.next_seq,
            "oldest_seq": self.ring.oldest_seq, "ring_evicted": self.ring.evicted,
            "next_record": self.flog.next_record, "oldest_record": self.flog.oldest_record,
            "minutes_stored": self.minutes_stored, "minutes_failed": self.minutes_failed,
            "imu_samples": s.imu_samples, "outputs": s.outputs, "fillers": s.fillers,
            "outages": s.outages, "losses": s.losses, "jumps": s.jumps,
            "imu_errors": st.errors if st is not None else 0,
            "imu_reinits": st.reinits if st is not None else 0,
            "imu_detect_tries": s.detect_tries, "wear_changes": self.wear_changes,
            "ble_up": self.ble_up, "connected": self.ble_up and self.link.connected(),
            "streaming": self.ble_up and self.link.streaming(),
            "adv_interval_us": self.link._adv_interval_us,
            "live_packets": self.live.packets, "live_failed": self.live.failed,
            "events_queued": self.outbox.queued, "events_sent": self.outbox.sent,
            "events_dropped": self.outbox.dropped, "events_waiting": self.outbox.pending(),
            "lost_samples": self.delivery.lost_samples,
            "undelivered": self.delivery.undelivered_count(),
            "backfills": self.control.procedures, "battery_mv": self.battery.mv,
            "battery_pct": self.battery.pct, "task_errors": self.task_errors,
            "last_error": self.last_error, "mem_free_min": self.mem_free_min,
            "mem_alloc_max": self.mem_alloc_max, "settings": self.settings.source,
        }


class _NoMotor:
    """Stands in for the PWM when the board has no motor fitted."""

    def freq(self, hz=None):
        return 0

    def duty_u16(self, d=None):
        return 0


class _NoAdc:
    """Stands in for the ADC when no battery divider is fitted: reads 0 (no cell)."""

    def read_u16(self):
        return 0
