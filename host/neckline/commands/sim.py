"""`neckline sim`: a virtual Bluetooth world with virtual wearers, for `neckline run` without
hardware; `neckline sim ctl ...` injects faults into a running one.

`neckline sim` starts a private dbus-daemon with the virtual BlueZ on it (neckline.vble) and N
virtual wearers (the real firmware under MicroPython, neckline.vsim), each fed in real time by
its own simulated person. It prints the one environment setting that points bleak at it, stays
in the foreground and, on Ctrl-C or SIGTERM, stops every process it started (each in its own
process group). docs/simulation.md and docs/vble.md describe it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from neckline.errors import NecklineError
from neckline.progress import Progress

# `neckline sim ctl` operations: CLI name -> (vble control op, per-wearer?)
CTL_OPS: dict[str, tuple[str, bool]] = {
    "drop-link": ("drop_link", True),
    "out-of-range": ("set_in_range", True),
    "in-range": ("set_in_range", True),
    "fail-connect": ("fail_next_connect", True),
    "fail-att": ("fail_next_att", True),
    "mtu": ("set_mtu", True),
    "rssi": ("set_rssi", True),
    "discovery-delay": ("set_discovery_delay", False),
    "state": ("state", False),
}


class SimError(NecklineError):
    pass


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "sim",
        help="run virtual wearers on a virtual Bluetooth stack (no hardware needed)",
        description=(
            "Start a private D-Bus with a virtual BlueZ and N virtual wearers (the real "
            "firmware under MicroPython, fed by simulated people), print the environment "
            "setting for `neckline run`, and run until Ctrl-C. `neckline sim ctl ...` "
            "injects faults into the running simulation."
        ),
    )
    parser.add_argument("--wearers", type=int, default=1, help="how many wearers (default 1)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="device time per real time (default 1: real time)")
    parser.add_argument("--seed", type=int, default=1,
                        help="person of wearer 1; wearer n is person seed+n-1")
    parser.add_argument("--hours", type=float, default=1.0,
                        help="trace length per wearer; it plays again when it ends")
    parser.add_argument("--root", type=Path, default=None,
                        help="working directory (default $XDG_RUNTIME_DIR/neckline-sim)")
    parser.add_argument("--no-calibrate", action="store_true",
                        help="do not press the button to calibrate in the neutral hold")
    parser.set_defaults(func=_run)
    ctl_sub = parser.add_subparsers(dest="sim_command", metavar="ctl")
    ctl = ctl_sub.add_parser("ctl", help="inject a fault into the running simulation",
                             description=_ctl_help(),
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    ctl.add_argument("op", choices=sorted(CTL_OPS))
    ctl.add_argument("--wearer", type=int, default=1, help="wearer number (default 1)")
    ctl.add_argument("--seconds", type=float, default=None,
                     help="drop-link: outage length; discovery-delay: the delay")
    ctl.add_argument("--error", default=None,
                     help="fail-connect: in_progress|abort_by_local; fail-att: an ATT code "
                          "(e.g. 0x0e) or in_progress")
    ctl.add_argument("--count", type=int, default=1, help="fail-*: how many times")
    ctl.add_argument("--value", type=int, default=None, help="mtu (0: negotiated) or rssi")
    ctl.add_argument("--root", type=Path, default=None, help="as given to `neckline sim`")
    ctl.set_defaults(func=_ctl)


def _ctl_help() -> str:
    return (
        "Examples:\n"
        "  neckline sim ctl drop-link --wearer 1 --seconds 10\n"
        "  neckline sim ctl out-of-range --wearer 2      (and in-range to bring it back)\n"
        "  neckline sim ctl fail-connect --error abort_by_local --count 2\n"
        "  neckline sim ctl fail-att --error 0x0e\n"
        "  neckline sim ctl mtu --value 23 | rssi --value -90 | discovery-delay --seconds 5\n"
        "  neckline sim ctl state\n"
    )


def _run(args: argparse.Namespace) -> int:
    from neckline.vsim import SimStack
    from neckline.vsim.stack import SimStackError, default_root, read_state

    if args.wearers < 1:
        raise SimError("--wearers must be at least 1")
    if args.speed < 0:
        raise SimError("--speed must be >= 0 (0: as fast as the CPU allows)")
    root = args.root or default_root()
    try:
        other: dict[str, Any] | None = read_state(root)
    except (SimStackError, ValueError, OSError):
        other = None
    if other is not None and _alive(int(other.get("pid", 0))):
        raise SimError(f"a simulation is already running in {root} (pid {other['pid']}); "
                       "stop it or pass another --root")
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    stack = SimStack(root, speed=args.speed, seed=args.seed, trace_s=args.hours * 3600.0)
    try:
        stack.start()
        seconds = args.hours * 3600.0
        for n in range(1, args.wearers + 1):
            if stop.is_set():
                break
            with Progress(f"wearer {n}: simulating {args.hours:g} h", int(seconds),
                          unit="s", stream=sys.stderr) as progress:
                stack.add_wearer(n, calibrate=not args.no_calibrate,
                                 progress=_reporter(progress))
        if not stop.is_set():
            print(f"export DBUS_SYSTEM_BUS_ADDRESS={stack.dbus_address}", flush=True)
            for n, w in sorted(stack.wearers.items()):
                print(f"# wearer {n}: {w.address} ({w.info.get('name', '?')}), pid {w.pid}, "
                      f"console {w.log_path}", file=sys.stderr)
            print(f"# pair:   neckline pair {stack.wearers[1].address}\n"
                  f"# faults: neckline sim ctl drop-link --wearer 1 --seconds 10"
                  + (f" --root {root}" if args.root else "") + "\n# Ctrl-C stops everything.",
                  file=sys.stderr, flush=True)
        while not stop.wait(1.0):
            for n, w in sorted(stack.wearers.items()):
                if not w.running():
                    print(f"# wearer {n} stopped (status {w.returncode()}); last output:\n"
                          f"{w.tail()}", file=sys.stderr, flush=True)
                    stack.stop_wearer(n)
            if not stack.wearers:
                break
            if stack.vble is not None and stack.vble.process.poll() is not None:
                print(f"# the virtual BlueZ stopped:\n{stack.vble.log_tail()}",
                      file=sys.stderr)
                break
    finally:
        stack.stop()
        for s, handler in old.items():
            signal.signal(s, handler)
    print("# stopped: wearers and virtual BlueZ are gone", file=sys.stderr)
    return 0


def _reporter(progress: Progress) -> Callable[[float], None]:
    def report(seconds: float) -> None:
        progress.update(int(seconds))

    return report


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ctl(args: argparse.Namespace) -> int:
    from neckline.vble import VBleClient
    from neckline.vble.client import VBleControlError
    from neckline.vsim.stack import SimStackError, default_root, read_state

    try:
        state = read_state(args.root or default_root())
    except SimStackError as exc:
        raise SimError(str(exc)) from None
    op, per_wearer = CTL_OPS[args.op]
    kwargs: dict[str, Any] = {}
    if per_wearer:
        wearer = state["wearers"].get(str(args.wearer))
        if wearer is None:
            raise SimError(f"no wearer {args.wearer}; running: "
                           f"{', '.join(state['wearers']) or 'none'}")
        kwargs["addr"] = wearer["address"]
    if args.op == "drop-link":
        kwargs["seconds"] = 5.0 if args.seconds is None else args.seconds
    elif args.op in ("out-of-range", "in-range"):
        kwargs["in_range"] = args.op == "in-range"
    elif args.op == "discovery-delay":
        kwargs["seconds"] = 0.0 if args.seconds is None else args.seconds
    elif args.op == "fail-connect":
        kwargs.update(error=args.error or "abort_by_local", count=args.count)
    elif args.op == "fail-att":
        error = args.error or "0x0e"
        kwargs.update(error=error if error == "in_progress" else int(error, 0),
                      count=args.count)
    elif args.op == "mtu":
        kwargs["mtu"] = args.value or None
    elif args.op == "rssi":
        kwargs["rssi"] = -60 if args.value is None else args.value
    try:
        with VBleClient(state["control"], timeout=10.0) as client:
            result = client.call(op, **kwargs)
    except (VBleControlError, OSError) as exc:
        raise SimError(f"the virtual BlueZ refused {args.op}: {exc}") from None
    print(json.dumps(result, indent=1, default=str))
    return 0
