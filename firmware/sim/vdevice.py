"""A virtual Neckline wearable: the real firmware app on the unix port, with simulated hardware.

firmware/main.py starts it on the unix port. The machine shim's simulated IMU, button and
battery ADC and the bluetooth shim stand in for the board; vclock.py is the clock. USAGE (below)
is what `micropython firmware/main.py --help` prints; MicroPython keeps no docstrings.
"""

import json
import os
import sys

import machine
import vclock

USAGE = """usage: micropython firmware/main.py [options]
       (MICROPYPATH=firmware/sim:firmware:.frozen)

Options (each also from the environment variable shown):

    --trace PATH        NECKLINE_TRACE        IMU trace (binary or CSV, docs/imu.md); without one
                                              the IMU lies still on a table
    --loop                                    play the trace again when it ends
    --imu CHIP          NECKLINE_IMU          mpu6050 (default), mpu6500, lsm6dsox, none (attach
                                              it later with the "i2c attach" command)
    --data DIR          NECKLINE_DATA_DIR     the device's filesystem root (settings.json,
                                              boot_id, log/, bonds.bin); default: the cwd
    --bridge HOST:PORT  NECKLINE_VBLE_BRIDGE  the virtual-BLE bridge (docs/vble.md)
    --addr ADDR         NECKLINE_VBLE_ADDR    the device's BLE address
    --speed X           NECKLINE_SPEED        virtual time per real time: 1 (default) is real
                                              time, 0 as fast as the CPU allows (vclock.py)
    --stop-after-ms N   NECKLINE_STOP_AFTER_MS  stop after N ms of virtual time
    --battery-mv MV     NECKLINE_BATTERY_MV   cell voltage the battery ADC sees (default 3900)
    --script PATH       NECKLINE_SCRIPT       commands to run at given device times: one a line,
                                              "T_MS command" (T_MS: the device's t_ms), e.g.
                                              "20000 i2c unplug"; '#' starts a comment

Commands on stdin, one a line (each is answered with one JSON line {"ack": ...}):

    press MS                  hold the button for MS virtual ms
    presses MS,MS,... GAP     a burst of presses GAP ms apart (e.g. 100,100,100,5500 200)
    battery MV                set the cell voltage
    i2c fail N [ERRNO]        the N-th I2C transaction from now fails (machine.SimBus.fail_on)
    i2c stuck N               the next N transactions fail
    i2c unplug | replug       the IMU vanishes from the bus / comes back power-cycled
    i2c attach                attach the IMU now (after --imu none)
    stall MS                  block the whole firmware for MS virtual ms (a long flash erase, say):
                              the IMU FIFO overflows if MS is long enough
    speed X                   from now on run at X times real time (0: as fast as possible)
    status                    print {"status": {...}} (App.snapshot())
    stop                      stop the app (it stores what is open and switches the radio off)

stdout: the app's log lines ("app: ...") and JSON lines: {"vdevice": {...}} once booted,
{"status": ...} on request and {"summary": {...}} at the end.
"""

CHIPS = {"mpu6050": 0x68, "mpu6500": 0x68, "lsm6dsox": 0x6A}


def _getenv(name, default=None):
    v = os.getenv(name)
    return default if v is None or v == "" else v


def parse(argv):
    o = {
        "trace": _getenv("NECKLINE_TRACE"),
        "loop": False,
        "imu": _getenv("NECKLINE_IMU", "mpu6050"),
        "data": _getenv("NECKLINE_DATA_DIR", ""),
        "bridge": _getenv("NECKLINE_VBLE_BRIDGE"),
        "addr": _getenv("NECKLINE_VBLE_ADDR"),
        "speed": float(_getenv("NECKLINE_SPEED", "1")),
        "stop_after_ms": None,
        "battery_mv": int(_getenv("NECKLINE_BATTERY_MV", "3900")),
        "script": _getenv("NECKLINE_SCRIPT"),
    }
    stop = _getenv("NECKLINE_STOP_AFTER_MS")
    if stop is not None:
        o["stop_after_ms"] = int(stop)
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--loop":
            o["loop"] = True
            i += 1
            continue
        if a in ("-h", "--help"):
            print(USAGE)
            sys.exit(0)
        if i + 1 >= len(argv):
            raise SystemExit("vdevice: %s needs a value" % a)
        v = argv[i + 1]
        if a == "--trace":
            o["trace"] = v
        elif a == "--imu":
            o["imu"] = v
        elif a == "--data":
            o["data"] = v
        elif a == "--bridge":
            o["bridge"] = v
        elif a == "--addr":
            o["addr"] = v
        elif a == "--speed":
            o["speed"] = float(v)
        elif a == "--stop-after-ms":
            o["stop_after_ms"] = int(v)
        elif a == "--battery-mv":
            o["battery_mv"] = int(v)
        elif a == "--script":
            o["script"] = v
        else:
            raise SystemExit("vdevice: unknown option " + a)
        i += 2
    if o["imu"] not in CHIPS and o["imu"] != "none":
        raise SystemExit("vdevice: --imu is one of mpu6050, mpu6500, lsm6dsox, none")
    return o


def out(obj):
    print(json.dumps(obj))


class Hardware:
    """The simulated parts around the MCU: IMU on I2C bus 0, button, battery divider."""

    def __init__(self, opts, board):
        import imu_regs
        import imu_trace

        self.opts = opts
        self.board = board
        self.bus = machine.sim_bus(board["i2c_id"])
        chip = opts["imu"] if opts["imu"] != "none" else "mpu6050"
        if opts["trace"]:
            source = imu_trace.TraceSource(opts["trace"], loop=opts["loop"])
        else:
            source = imu_trace.ConstantSource()
        if chip == "lsm6dsox":
            self.dev = imu_regs.Lsm6dsoxSim(source)
        else:
            self.dev = imu_regs.Mpu6050Sim(source, variant=chip[3:])
        self.addr = CHIPS[chip]
        self.source = source
        if opts["imu"] != "none":
            self.bus.attach(self.addr, self.dev)
        self.button = machine.Pin(board["button"])
        self.divider = 2000
        self.set_battery(opts["battery_mv"])

    def set_battery(self, mv):
        machine.sim_set_adc(self.board["battery_adc"], mv * 1000000 // self.divider)

    def info(self):
        return {"imu": self.opts["imu"], "addr": self.addr, "trace": self.opts["trace"],
                "trace_rate_hz": getattr(self.source, "rate_hz", None)}


async def _press(pin, ms, gap, asyncio):
    for i in range(len(ms)):
        if i:
            await asyncio.sleep_ms(gap)
        pin.sim_drive(0)  # active low
        await asyncio.sleep_ms(ms[i])
        pin.sim_drive(1)


def command(line, app, hw, asyncio):
    words = line.split()
    if not words:
        return None
    c = words[0]
    if c == "press":
        asyncio.create_task(_press(hw.button, [int(words[1])], 0, asyncio))
    elif c == "presses":
        ms = [int(x) for x in words[1].split(",")]
        asyncio.create_task(_press(hw.button, ms, int(words[2]), asyncio))
    elif c == "battery":
        hw.divider = app.settings.battery_divider_x1000
        hw.set_battery(int(words[1]))
    elif c == "i2c":
        what = words[1]
        if what == "fail":
            err = int(words[3]) if len(words) > 3 else 5  # EIO
            hw.bus.fail_on(int(words[2]), err)
        elif what == "stuck":
            hw.bus.stuck(int(words[2]))
        elif what == "unplug":
            hw.bus.unplug(hw.addr)
        elif what == "replug":
            hw.bus.replug(hw.addr)
        elif what == "attach":
            hw.bus.attach(hw.addr, hw.dev)
        else:
            return {"error": "unknown i2c command " + what}
    elif c == "stall":
        vclock.sleep_ms(int(words[1]))
    elif c == "speed":
        vclock.set_speed(float(words[1]))
    elif c == "status":
        out({"status": app.snapshot()})
    elif c == "stop":
        app.stop()
    else:
        return {"error": "unknown command " + c}
    return None


def read_script(path):
    """[(t_ms, command)] sorted by time; ValueError names a bad line."""
    steps = []
    with open(path) as f:
        n = 0
        for line in f:
            n += 1
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            words = line.split(None, 1)
            if len(words) != 2:
                raise ValueError("%s:%d: expected 'T_MS command'" % (path, n))
            steps.append((int(words[0]), words[1]))
    steps.sort(key=lambda s: s[0])
    return steps


def _run_command(line, app, hw, asyncio):
    try:
        err = command(line, app, hw, asyncio)
    except (ValueError, IndexError, KeyError, OSError) as e:
        err = {"error": "%s: %r" % (line.strip(), e)}
    ack = {"ack": line.strip(), "t_ms": app.now_t()}
    if err:
        ack.update(err)
    out(ack)


async def _script(steps, app, hw, asyncio):
    for at, line in steps:
        while app.running:
            left = at - app.now_t()
            if left <= 0:
                break
            await asyncio.sleep_ms(left if left < 100 else 100)
        if not app.running:
            return
        _run_command(line, app, hw, asyncio)


async def _commands(app, hw, asyncio):
    import select

    p = select.poll()
    p.register(sys.stdin, select.POLLIN)
    while app.running:
        if p.poll(0):
            line = sys.stdin.readline()
            if not line:
                p.unregister(sys.stdin)  # stdin closed: no more commands, keep running
                return
            _run_command(line, app, hw, asyncio)
        await asyncio.sleep_ms(20)


def main(argv=None):
    opts = parse(sys.argv[1:] if argv is None else argv)
    steps = read_script(opts["script"]) if opts["script"] else []
    if opts["bridge"]:
        os.putenv("NECKLINE_VBLE_BRIDGE", opts["bridge"])
    if opts["addr"]:
        os.putenv("NECKLINE_VBLE_ADDR", opts["addr"])
    root = opts["data"]
    if root:
        try:
            os.mkdir(root)
        except OSError:
            pass
    vclock.install(opts["speed"])  # before asyncio and the firmware are imported
    import asyncio

    vclock.install_asyncio()
    from wearable import board as board_mod
    from wearable.app import App

    board, _ = board_mod.load((root + "/" if root else "") + "board.json")
    hw = Hardware(opts, board)
    app = App(root=root)
    app.boot()
    info = hw.info()
    info.update({"boot_id": app.boot_id, "speed": vclock.speed(), "data": root,
                 "ble": app.ble_up, "name": app.link.name})
    out({"vdevice": info})

    async def run():
        app.running = True  # the command reader starts with the app
        asyncio.create_task(_commands(app, hw, asyncio))
        if steps:
            asyncio.create_task(_script(steps, app, hw, asyncio))
        await app.main(opts["stop_after_ms"])

    asyncio.run(run())
    summary = app.snapshot()
    summary["virtual_ms"] = vclock.virtual_ms()
    summary["skipped_ms"] = vclock.stats["skipped_ms"]
    out({"summary": summary})


if __name__ == "__main__":
    main()
