"""Test-side helpers for test_app.py: the virtual device process and a Neckline central.

VirtualDevice runs firmware/main.py (the real app on the MicroPython unix port, with
firmware/sim/vdevice.py supplying the hardware) as a process: JSON lines from stdout are
collected, commands go to stdin. Central wraps tests/firmware/bridge_peer.BridgePeer with the
Neckline handles and the host's own decoders (neckline.decode).
"""

from __future__ import annotations

import json
import os
import queue
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from neckline import decode
from neckline.protocol import CPResponse, Event, Status
from tests.firmware.bridge_peer import BridgePeer
from tests.firmware.mp import FIRMWARE, micropython_binary, micropython_path

SERVICE = "6e6b0001-8a3c-4b5e-9f1d-2c7a4e0b5d10"
POSTURE = "6e6b0002-8a3c-4b5e-9f1d-2c7a4e0b5d10"
CONTROL = "6e6b0003-8a3c-4b5e-9f1d-2c7a4e0b5d10"
EVENTS = "6e6b0004-8a3c-4b5e-9f1d-2c7a4e0b5d10"
STATUS = "6e6b0005-8a3c-4b5e-9f1d-2c7a4e0b5d10"
CONFIG = "6e6b0006-8a3c-4b5e-9f1d-2c7a4e0b5d10"


class VirtualDevice:
    """`micropython firmware/main.py ...` kept running; stdout JSON objects land in `objects`."""

    def __init__(self, data: Path, *, trace: Path | None = None, bridge: str | None = None,
                 speed: float = 1.0, stop_after_ms: int | None = None, imu: str | None = None,
                 script: list[tuple[int, str]] | None = None, heapsize: str | None = None,
                 battery_mv: int | None = None, path: list[Path | str] | None = None,
                 main: Path | None = None) -> None:
        binary = micropython_binary()
        if binary is None:
            raise RuntimeError("micropython binary not found")
        args = [binary]
        if heapsize:
            args += ["-X", f"heapsize={heapsize}"]
        args += [str(main or FIRMWARE / "main.py"), "--data", str(data), "--speed", str(speed)]
        if trace is not None:
            args += ["--trace", str(trace)]
        if bridge is not None:
            args += ["--bridge", bridge]
        if stop_after_ms is not None:
            args += ["--stop-after-ms", str(stop_after_ms)]
        if imu is not None:
            args += ["--imu", imu]
        if battery_mv is not None:
            args += ["--battery-mv", str(battery_mv)]
        if script:
            spath = data.parent / (data.name + ".script")
            spath.write_text("".join(f"{t} {cmd}\n" for t, cmd in script))
            args += ["--script", str(spath)]
        env = dict(os.environ)
        env.pop("NECKLINE_VBLE_BRIDGE", None)
        env["MICROPYPATH"] = (os.pathsep.join(str(p) for p in path) if path
                              else micropython_path())
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1, env=env)
        self.lines: list[str] = []
        self.objects: list[dict[str, Any]] = []
        self._q: queue.Queue[dict[str, Any]] = queue.Queue()
        self._err: list[str] = []
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith("{"):
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                self.objects.append(obj)
                self._q.put(obj)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._err.append(line)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return "".join(self.lines) + "".join(self._err)

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def expect(self, key: str, timeout: float = 20.0,
               pump: Callable[[float], object] | None = None) -> Any:
        """The value of the next stdout object holding `key` (pump: keeps a peer reading)."""
        deadline = time.monotonic() + timeout
        while True:
            for obj in self.objects:
                if key in obj and not obj.get("_seen"):
                    obj["_seen"] = True
                    return obj[key]
            if time.monotonic() > deadline:
                raise AssertionError(f"no {key!r} from the device within {timeout}s:\n"
                                     + self.output()[-3000:])
            if not self.alive() and self._q.empty():
                time.sleep(0.2)
                if not any(key in o and not o.get("_seen") for o in self.objects):
                    raise AssertionError(f"device exited without {key!r}:\n"
                                         + self.output()[-3000:])
            if pump is not None:
                pump(0.02)
            else:
                time.sleep(0.02)

    def status(self, pump: Callable[[float], object] | None = None) -> dict[str, Any]:
        self.send("status")
        result: dict[str, Any] = self.expect("status", pump=pump)
        return result

    def stop(self, timeout: float = 30.0,
             pump: Callable[[float], object] | None = None) -> dict[str, Any]:
        """Ask the app to stop; returns its summary."""
        if self.alive():
            self.send("stop")
        summary: dict[str, Any] = self.expect("summary", timeout=timeout, pump=pump)
        self.wait(timeout)
        return summary

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Central:
    """A Neckline host in miniature: connects, pairs, subscribes, asks, decodes."""

    def __init__(self, peer: BridgePeer, conn: int = 1) -> None:
        self.peer = peer
        self.conn = conn
        self.rej = decode.Rejections()
        self.h_posture = peer.value_handle(POSTURE)
        self.h_control = peer.value_handle(CONTROL)
        self.h_events = peer.value_handle(EVENTS)
        self.h_status = peer.value_handle(STATUS)
        self.h_config = peer.value_handle(CONFIG)

    def connect(self, mtu: int = 247, addr: str = "c0:ff:ee:00:00:01") -> None:
        self.peer.connect(self.conn, addr=addr)
        self.peer.mtu(self.conn, mtu)

    def subscribe_all(self) -> None:
        p = self.peer
        assert p.subscribe(self.conn, POSTURE) == 0
        assert p.subscribe(self.conn, EVENTS, notify=False, indicate=True) == 0
        assert p.subscribe(self.conn, CONTROL, notify=False, indicate=True) == 0

    def read_status(self) -> Status:
        st, value = self.peer.read(self.conn, self.h_status)
        assert st == 0, f"status read failed with ATT error {st:#x}"
        return decode.require_supported_version(value)

    def write(self, payload: bytes) -> int:
        return self.peer.write(self.conn, self.h_control, payload)

    def responses(self) -> list[CPResponse]:
        out = []
        for n in self.peer.on(self.h_control, self.conn):
            r = decode.decode_cp_response(n.data, self.rej)
            if r is not None:
                out.append(r)
        return out

    def request(self, payload: bytes, timeout: float = 20.0) -> CPResponse:
        """Write a request and wait for its response (the next one echoing the opcode)."""
        before = len(self.peer.on(self.h_control, self.conn))
        status = self.write(payload)
        assert status == 0, f"control-point write refused with ATT error {status:#x}"
        op = payload[0]

        def answered() -> bool:
            new = self.peer.on(self.h_control, self.conn)[before:]
            return any(n.data[1] == op for n in new)

        self.peer.wait_until(answered, timeout, f"the response to opcode {op}")
        for n in self.peer.on(self.h_control, self.conn)[before:]:
            if n.data[1] == op:
                r = decode.decode_cp_response(n.data, self.rej)
                assert r is not None, f"undecodable response {n.data.hex()}"
                return r
        raise AssertionError("unreachable")

    def events(self) -> list[Event]:
        out = []
        for n in self.peer.on(self.h_events):
            e = decode.decode_event(n.data, self.rej)
            if e is not None:
                out.append(e)
        return out

    def wait_event(self, code: int, timeout: float = 20.0, after: int = 0) -> Event:
        def found() -> Event | None:
            for e in self.events()[after:]:
                if e.code == code:
                    return e
            return None

        self.peer.wait_until(lambda: found() is not None, timeout, f"event {code}")
        e = found()
        assert e is not None
        return e

    def posture_payloads(self) -> list[bytes]:
        return [n.data for n in self.peer.on(self.h_posture)]

    def samples(self) -> decode.SampleArrays:
        arrays, _, _ = decode.decode_posture(self.posture_payloads(), self.rej)
        return arrays

    def summaries(self) -> decode.SummaryArrays:
        _, arrays, _ = decode.decode_posture(self.posture_payloads(), self.rej)
        return arrays

    def latest_t(self) -> int:
        """t_ms of the newest live sample received (-1 if none)."""
        for data in reversed(self.posture_payloads()):
            if data[0] == 0x11:
                n, t0, period = data[1], struct.unpack_from("<I", data, 6)[0], \
                    struct.unpack_from("<H", data, 11)[0]
                return int(t0 + (n - 1) * period)
        return -1

    def wait_device_time(self, t_ms: int, timeout: float = 60.0) -> None:
        self.peer.wait_until(lambda: self.latest_t() >= t_ms, timeout,
                             f"a live sample at t_ms >= {t_ms}")


def set_time(utc_ms: int) -> bytes:
    return bytes([0x02]) + struct.pack("<Q", utc_ms)


def set_config(*entries: tuple[int, int]) -> bytes:
    return bytes([0x03]) + b"".join(struct.pack("<Bi", k, v) for k, v in entries)


def request_raw(first: int, last: int) -> bytes:
    return bytes([0x04]) + struct.pack("<II", first, last)


def request_summary(from_record: int) -> bytes:
    return bytes([0x05]) + struct.pack("<I", from_record)
