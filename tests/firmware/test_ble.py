"""The wearable's BLE layer (firmware/wearable/ble.py, bonds.py) and the bluetooth shim.

Each test runs firmware as its own process, under the real MicroPython unix port and under CPython,
with firmware/sim/bluetooth.py underneath it; tests/firmware/bridge_peer.py plays the bridge and the
central, and the host's own decoders (neckline.decode) read what the device sent.
"""

from __future__ import annotations

import json
import queue
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from neckline import decode
from neckline.protocol import CPStatus, Event, EventCode, Opcode, StateFlag, TimeAnchor
from tests.firmware.bridge_peer import BridgeError, BridgePeer, Notification, parse_ad
from tests.firmware.mp import micropython_binary, popen_firmware

HERE = Path(__file__).resolve().parent
DEVICE = HERE / "ble_device.py"
PROBE = HERE / "ble_shim_probe.py"
INTERPRETERS = ["micropython", "cpython"]

SERVICE = "6e6b0001-8a3c-4b5e-9f1d-2c7a4e0b5d10"
POSTURE = "6e6b0002-8a3c-4b5e-9f1d-2c7a4e0b5d10"
CONTROL = "6e6b0003-8a3c-4b5e-9f1d-2c7a4e0b5d10"
EVENTS = "6e6b0004-8a3c-4b5e-9f1d-2c7a4e0b5d10"
STATUS = "6e6b0005-8a3c-4b5e-9f1d-2c7a4e0b5d10"
CONFIG = "6e6b0006-8a3c-4b5e-9f1d-2c7a4e0b5d10"

# docs/protocol.md §3 read independently: (uuid, flags, decl, value, cccd) per characteristic,
# handles numbered from 1 as NimBLE would (docs/ble.md).
EXPECTED_TABLE = [
    (SERVICE, 1, [
        (POSTURE, 0x0010 | 0x0200, 2, 3, 4),
        (CONTROL, 0x0008 | 0x0020 | 0x1000, 5, 6, 7),
        (EVENTS, 0x0010 | 0x0020 | 0x0200, 8, 9, 10),
        (STATUS, 0x0002, 11, 12, None),
        (CONFIG, 0x0002 | 0x0200, 13, 14, None),
    ]),
    ("180f", 15, [("2a19", 0x0002 | 0x0010, 16, 17, 18)]),
    ("180a", 19, [
        ("2a29", 0x0002, 20, 21, None),
        ("2a24", 0x0002, 22, 23, None),
        ("2a26", 0x0002, 24, 25, None),
        ("2a27", 0x0002, 26, 27, None),
    ]),
]

ATT_READ_NOT_PERMITTED = 0x02
ATT_WRITE_NOT_PERMITTED = 0x03
ATT_INSUFFICIENT_AUTHENTICATION = 0x05
ATT_INSUFFICIENT_ENCRYPTION = 0x0F


class FirmwareProcess:
    """A firmware script running under one interpreter, driven through stdin, read from stdout."""

    def __init__(self, interpreter: str, script: Path, args: list[str], cwd: Path,
                 env: dict[str, str]) -> None:
        self.interpreter = interpreter
        self.proc = popen_firmware(interpreter, script, *args, cwd=cwd, env=env)
        self._lines: queue.Queue[str] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self._unread: list[dict[str, Any]] = []
        self.text: list[str] = []
        self._stderr: list[str] = []
        threading.Thread(target=self._pipe, args=(self.proc.stdout, self._lines),
                         daemon=True).start()
        threading.Thread(target=self._drain, daemon=True).start()

    @staticmethod
    def _pipe(stream: Any, sink: queue.Queue[str]) -> None:
        for line in stream:
            sink.put(line)

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return "".join(self.text) + "".join(self._stderr)

    def _take(self, timeout: float) -> None:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            return
        try:
            obj = json.loads(line)
        except ValueError:
            self.text.append(line)
            return
        self.seen.append(obj)
        self._unread.append(obj)

    def expect(self, key: str, peer: BridgePeer | None = None, timeout: float = 10.0) -> Any:
        """The value of the next unread stdout object that has `key`; the peer keeps pumping."""
        return self.expect_object(key, peer, timeout)[key]

    def expect_object(self, key: str, peer: BridgePeer | None = None,
                      timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for i, obj in enumerate(self._unread):
                if key in obj:
                    return self._unread.pop(i)
            if time.monotonic() > deadline:
                raise AssertionError(f"no {key!r} from the {self.interpreter} device; "
                                     f"output:\n{self.output()}")
            if not self.alive() and self._lines.empty():
                raise AssertionError(f"the {self.interpreter} device exited "
                                     f"({self.proc.returncode}):\n{self.output()}")
            if peer is not None:
                peer.pump(0)
            self._take(0.01)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def command(self, line: str, key: str, peer: BridgePeer | None = None) -> Any:
        self.send(line)
        return self.expect(key, peer)

    def drain(self) -> None:
        """Read what the device has printed so far (its output may still be in the pipe)."""
        while True:
            before = len(self.seen) + len(self.text)
            self._take(0.05)
            if len(self.seen) + len(self.text) == before:
                return

    def requests(self) -> list[int]:
        self.drain()
        return [obj["request"] for obj in self.seen if "request" in obj]

    def quit(self, peer: BridgePeer | None = None, timeout: float = 10.0) -> int:
        self.send("quit")
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            if peer is not None:
                peer.pump(0.02)
            else:
                time.sleep(0.02)
        if self.alive():
            self.kill()
            raise AssertionError(f"the {self.interpreter} device did not quit:\n{self.output()}")
        while not self._lines.empty():
            self._take(0)
        return int(self.proc.returncode)

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        self.proc.wait(10)


Launcher = Callable[..., FirmwareProcess]


@pytest.fixture
def peer() -> Iterator[BridgePeer]:
    p = BridgePeer()
    yield p
    p.close()


@pytest.fixture
def launch(peer: BridgePeer, tmp_path: Path) -> Iterator[Launcher]:
    started: list[FirmwareProcess] = []

    def start(interpreter: str, script: Path = DEVICE, *args: str, fs: Path | None = None,
              addr: str | None = None) -> FirmwareProcess:
        if interpreter == "micropython" and micropython_binary() is None:
            pytest.fail("the micropython unix port is missing; `make test` installs it")
        fs = fs or tmp_path / "fs"
        fs.mkdir(exist_ok=True)
        fp = FirmwareProcess(interpreter, script, list(args), fs, peer.env(addr))
        started.append(fp)
        try:
            peer.accept(timeout=30, alive=fp.alive)
        except BridgeError as e:
            time.sleep(0.2)
            raise AssertionError(f"{e}\n{fp.output()}") from None
        return fp

    yield start
    for fp in started:
        fp.kill()


def boot(launch: Launcher, peer: BridgePeer, interpreter: str, fs: Path | None = None,
         probe_ms: int = 200, addr: str | None = None) -> FirmwareProcess:
    dev = launch(interpreter, DEVICE, str(probe_ms), fs=fs, addr=addr)
    dev.expect("ready")
    peer.wait_until(lambda: peer.services is not None, what="the GATT table")
    return dev


def link_state(dev: FirmwareProcess, peer: BridgePeer, conn: int = 1) -> list[Any] | None:
    state: list[Any] | None = dev.command(f"link {conn}", "link", peer)
    return state


def wait_link(dev: FirmwareProcess, peer: BridgePeer, cond: Callable[[list[Any] | None], bool],
              conn: int = 1, timeout: float = 10.0) -> list[Any] | None:
    deadline = time.monotonic() + timeout
    while True:
        state = link_state(dev, peer, conn)
        if cond(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"link {conn} never reached the expected state: {state}")
        peer.pump(0.02)


def secure(dev: FirmwareProcess, peer: BridgePeer, conn: int = 1, mtu: int | None = None) -> str:
    """Connect, pair with bonding (Just Works, LE Secure Connections), optionally set the MTU."""
    peer.connect(conn)
    resp = peer.pair(conn)
    assert resp["status"] == 0 and resp["bonded"] is True, resp
    assert len(bytes.fromhex(resp["ltk"])) == 16
    if mtu is not None:
        peer.mtu(conn, mtu)
        wait_link(dev, peer, lambda s: s is not None and s[0] == mtu, conn)
    return str(resp["ltk"])


def stats(dev: FirmwareProcess, peer: BridgePeer) -> dict[str, Any]:
    dev.send("stats")
    return dev.expect_object("stats", peer)


def wait_stats(dev: FirmwareProcess, peer: BridgePeer, cond: Callable[[dict[str, Any]], bool],
               timeout: float = 10.0) -> dict[str, Any]:
    """Poll the device's counters until cond holds (the device works asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        st = stats(dev, peer)
        if cond(st):
            return st
        if time.monotonic() > deadline:
            raise AssertionError(f"device counters never matched: {st}")
        peer.pump(0.02)


def decoded_events(notifications: list[Notification]) -> list[Event]:
    rej = decode.Rejections()
    events = [decode.decode_event(n.data, rej) for n in notifications]
    assert rej.total == 0, rej.summary()
    return [e for e in events if e is not None]


def cp_responses(peer: BridgePeer) -> list[decode.CPResponse]:
    rej = decode.Rejections()
    out = [decode.decode_cp_response(n.data, rej) for n in peer.on(peer.value_handle(CONTROL))]
    assert rej.total == 0, rej.summary()
    return [r for r in out if r is not None]


# ============================================================================ GATT table


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_registered_gatt_table_and_values(launch: Launcher, peer: BridgePeer,
                                          interpreter: str) -> None:
    dev = boot(launch, peer, interpreter)
    assert peer.hello is not None
    assert peer.hello["addr"] == "4e:4c:00:00:00:01"  # from the simulated machine.unique_id()
    assert peer.hello["addr_type"] == 0 and peer.hello["proto"] == 1
    peer.wait_for("adv")
    assert peer.services is not None
    table = [
        (s["uuid"], s["handle"],
         [(c["uuid"], c["flags"], c["decl_handle"], c["value_handle"], c["cccd_handle"])
          for c in s["chars"]])
        for s in peer.services
    ]
    assert table == EXPECTED_TABLE
    assert all(c["descs"] == [] for c in peer.chars())

    peer.connect(1)
    status, value = peer.read(1, peer.value_handle(STATUS))
    assert status == 0
    st = decode.require_supported_version(value)  # readable before pairing: the version check
    assert st.version == 1 and st.period_ms == 100
    assert peer.read(1, peer.value_handle(CONFIG))[0] == ATT_INSUFFICIENT_ENCRYPTION
    assert peer.read(1, peer.value_handle(POSTURE))[0] == ATT_READ_NOT_PERMITTED
    assert peer.write(1, peer.value_handle(STATUS), b"\x00") == ATT_WRITE_NOT_PERMITTED
    info = [peer.read(1, peer.value_handle(u)) for u in (0x2A29, 0x2A24, 0x2A26, 0x2A27)]
    assert info == [(0, b"Neckline"), (0, b"NL-test"), (0, b"0.0.1-test"), (0, b"sim")]
    assert peer.read(1, peer.value_handle(0x2A19)) == (0, b"\x00")

    assert peer.pair(1)["status"] == 0
    status, value = peer.read(1, peer.value_handle(CONFIG))
    assert status == 0
    rej = decode.Rejections()
    config = decode.decode_config(value, rej)
    assert config is not None, rej.summary()
    assert len(config.values) == 11 and not config.unknown

    # The battery level notifies subscribers when it changes.
    assert peer.subscribe(1, 0x2A19) == 0
    assert dev.command("battery 57", "battery", peer) == 57
    peer.wait_until(lambda: peer.on(peer.value_handle(0x2A19)), what="battery notification")
    assert peer.on(peer.value_handle(0x2A19))[0].data == bytes([57])
    assert dev.quit(peer) == 0


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_advertising_payload(launch: Launcher, peer: BridgePeer, interpreter: str) -> None:
    dev = boot(launch, peer, interpreter, addr="aa:bb:cc:dd:3e:0f")
    assert peer.hello is not None and peer.hello["addr"] == "aa:bb:cc:dd:3e:0f"
    adv = peer.wait_for("adv")
    assert adv["connectable"] is True and adv["interval_us"] > 0
    data, resp = bytes.fromhex(adv["adv"]), bytes.fromhex(adv["resp"])
    assert len(data) <= 31 and len(resp) <= 31
    fields = dict(parse_ad(data))
    assert fields[0x01] == b"\x06"
    assert fields[0x07] == bytes.fromhex(SERVICE.replace("-", ""))[::-1]
    assert int.from_bytes(fields[0x19], "little") == 0x0540
    assert 0x09 not in fields  # the name does not fit: it is in the scan response
    assert dict(parse_ad(resp)) == {0x09: b"Neckline-3E0F"}
    assert dev.quit(peer) == 0


# ============================================================================ MTU and posture


@pytest.mark.parametrize("interpreter", INTERPRETERS)
@pytest.mark.parametrize(("mtu", "samples", "size"), [(23, 1, 20), (247, 33, 244), (517, 71, 510)])
def test_posture_notifications_fill_the_negotiated_mtu(
    launch: Launcher, peer: BridgePeer, interpreter: str, mtu: int, samples: int, size: int
) -> None:
    dev = boot(launch, peer, interpreter)
    secure(dev, peer, mtu=mtu if mtu != 23 else None)
    assert peer.subscribe(1, POSTURE) == 0
    reply = dev.command("stream 3", "streamed", peer)
    assert reply == [1, 1, 1]
    handle = peer.value_handle(POSTURE)
    peer.wait_until(lambda: len(peer.on(handle)) >= 3, what="3 posture notifications")
    packets = [n.data for n in peer.on(handle)]
    assert [len(p) for p in packets] == [size] * 3
    arrays, rej = decode.decode_samples(packets)
    assert rej.total == 0, rej.summary()
    assert len(arrays) == 3 * samples
    assert list(arrays.seq) == list(range(3 * samples))
    assert not arrays.backfill.any()
    st = stats(dev, peer)
    assert st["stats"]["notify_sent"] == 3 and st["stats"]["notify_dropped"] == 0
    assert st["sim"]["notify_truncated"] == 0
    dev.quit(peer)


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_request_raw_sends_backfill_before_its_response(launch: Launcher, peer: BridgePeer,
                                                        interpreter: str) -> None:
    dev = boot(launch, peer, interpreter)
    secure(dev, peer, mtu=247)
    assert peer.subscribe(1, POSTURE) == 0
    assert peer.subscribe(1, CONTROL, notify=False, indicate=True) == 0
    request = bytes([Opcode.REQUEST_RAW]) + (100).to_bytes(4, "little")
    request += (149).to_bytes(4, "little")
    assert peer.write(1, peer.value_handle(CONTROL), request) == 0
    peer.wait_until(lambda: cp_responses(peer), what="REQUEST_RAW response")
    resp = cp_responses(peer)[0]
    assert resp.status == CPStatus.SUCCESS and resp.opcode == Opcode.REQUEST_RAW
    order = [n.handle for n in peer.received]
    posture, control = peer.value_handle(POSTURE), peer.value_handle(CONTROL)
    assert order == [posture, posture, control]  # 33 + 17 samples, then the response
    arrays, rej = decode.decode_samples([n.data for n in peer.on(posture)])
    assert rej.total == 0 and arrays.backfill.all()
    assert list(arrays.seq) == list(range(100, 150))
    assert dev.requests() == [Opcode.REQUEST_RAW]
    dev.quit(peer)


@pytest.mark.parametrize("interpreter", ["micropython"])
def test_posture_send_path_allocates_nothing(launch: Launcher, peer: BridgePeer,
                                             interpreter: str) -> None:
    dev = boot(launch, peer, interpreter)
    secure(dev, peer, mtu=247)
    assert dev.command("alloc 500", "alloc", peer) == "ok"
    dev.quit(peer)


# ============================================================================ security


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_unencrypted_link_gets_nothing(launch: Launcher, peer: BridgePeer,
                                       interpreter: str) -> None:
    dev = boot(launch, peer, interpreter)
    peer.connect(1)
    control = peer.value_handle(CONTROL)
    # NimBLE lets anyone write a CCCD; the device's own checks must hold.
    assert peer.subscribe(1, CONTROL, notify=False, indicate=True) == 0
    assert peer.subscribe(1, POSTURE) == 0
    assert peer.subscribe(1, EVENTS) == 0
    assert peer.write(1, control, bytes([Opcode.GET_STATUS])) == ATT_INSUFFICIENT_ENCRYPTION
    assert dev.command("stream 2", "streamed", peer) == [0, 0]
    assert dev.command("events 1", "events", peer) == [True]  # held until the link is secure
    peer.settle(0.4)
    assert peer.received == []
    st = stats(dev, peer)["stats"]
    assert st["writes_ok"] == 0 and st["notify_blocked"] == 2 and st["events_sent"] == 0
    assert dev.requests() == []
    # Once encrypted, the held event goes out.
    assert peer.pair(1)["status"] == 0
    peer.wait_until(lambda: peer.on(peer.value_handle(EVENTS)), what="held event")
    dev.quit(peer)


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_control_point_not_authorised_without_encryption(launch: Launcher, peer: BridgePeer,
                                                         interpreter: str) -> None:
    """A stack that does not enforce WRITE_ENCRYPTED: the firmware answers NOT_AUTHORISED."""
    dev = boot(launch, peer, interpreter)
    assert dev.command("insecure", "insecure", peer) is True
    peer.connect(1)
    assert peer.subscribe(1, CONTROL, notify=False, indicate=True) == 0
    assert peer.subscribe(1, EVENTS) == 0
    # An event held back until the link is encrypted must not hold the responses up.
    assert dev.command("events 1", "events", peer) == [True]
    control = peer.value_handle(CONTROL)
    assert peer.write(1, control, bytes([Opcode.GET_STATUS])) == 0
    assert peer.write(1, control, b"") == 0  # malformed: the parser's verdict comes first
    assert peer.write(1, control, bytes([0x7F, 1, 2])) == 0
    peer.wait_until(lambda: len(cp_responses(peer)) >= 3, what="three responses")
    got = [(r.request_opcode, r.status) for r in cp_responses(peer)]
    assert got == [
        (Opcode.GET_STATUS, CPStatus.NOT_AUTHORISED),
        (0x00, CPStatus.INVALID_PARAMETER),
        (0x7F, CPStatus.UNSUPPORTED),
    ]
    assert peer.on(control)[0].data == bytes([0x17, 0x07, 0x05])
    st = stats(dev, peer)["stats"]
    assert st["writes_refused"] == 1 and st["writes_invalid"] == 2 and st["writes_ok"] == 0
    assert dev.requests() == []  # the main loop's handler never saw them
    # The same link, encrypted, is served.
    assert peer.pair(1)["status"] == 0
    assert peer.write(1, control, bytes([Opcode.GET_STATUS])) == 0
    peer.wait_until(lambda: len(cp_responses(peer)) >= 4, what="served request")
    assert cp_responses(peer)[3].status == CPStatus.SUCCESS
    assert dev.requests() == [Opcode.GET_STATUS]
    peer.wait_until(lambda: peer.on(peer.value_handle(EVENTS)), what="the held event")
    dev.quit(peer)


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_bond_survives_reboot_and_clear_bonds_forgets_it(
    launch: Launcher, peer: BridgePeer, tmp_path: Path, interpreter: str
) -> None:
    fs = tmp_path / "flash"
    control_uuid = CONTROL
    dev = boot(launch, peer, interpreter, fs=fs)
    ltk = secure(dev, peer)
    control = peer.value_handle(control_uuid)
    assert peer.write(1, control, bytes([Opcode.GET_STATUS])) == 0
    # The host reads the status after the response says it is fresh.
    peer.wait_until(lambda: cp_responses(peer), what="GET_STATUS response")
    status = decode.require_supported_version(peer.read(1, peer.value_handle(STATUS))[1])
    assert StateFlag.BONDED in status.state
    assert stats(dev, peer)["stats"]["bonds_stored"] == 1
    assert dev.quit(peer) == 0
    bond_file = fs / "bonds.bin"
    assert bytes.fromhex(ltk) in bond_file.read_bytes()
    if interpreter == "cpython":
        assert stat.S_IMODE(bond_file.stat().st_mode) == 0o600
    assert ltk not in dev.output()  # never printed

    # "Reboot": a new process on the same filesystem. The central re-encrypts with its LTK.
    dev = boot(launch, peer, interpreter, fs=fs)
    peer.connect(1)
    assert peer.write(1, control, bytes([Opcode.GET_STATUS])) == ATT_INSUFFICIENT_ENCRYPTION
    resp = peer.encrypt(1, ltk)
    assert resp["status"] == 0 and resp["bonded"] is True
    assert link_state(dev, peer) == [23, True, False, True]
    assert peer.write(1, control, bytes([Opcode.GET_STATUS])) == 0
    assert peer.encrypt(1, "00" * 16)["status"] == 5  # a wrong key is refused

    # The button combination: bonds go, the central is dropped, advertising resumes.
    adverts = len(peer.adv_history)
    assert dev.command("clear", "cleared", peer) == 1
    peer.wait_for("disconnect", lambda m: m["conn"] == 1)
    peer.wait_until(lambda: len(peer.adv_history) > adverts, what="advertising after clear")
    assert bytes.fromhex(ltk) not in bond_file.read_bytes()  # our own IRK stays
    peer.connect(2)
    assert peer.encrypt(2, ltk)["status"] == 5
    assert peer.write(2, control, bytes([Opcode.GET_STATUS])) == ATT_INSUFFICIENT_ENCRYPTION
    st = stats(dev, peer)
    assert st["bonded"] is False and st["stats"]["bond_misses"] >= 1
    assert dev.quit(peer) == 0

    # And the clearing survives a reboot too.
    dev = boot(launch, peer, interpreter, fs=fs)
    peer.connect(1)
    assert peer.encrypt(1, ltk)["status"] == 5
    assert stats(dev, peer)["bonded"] is False
    dev.quit(peer)


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_requests_beyond_the_pending_limit_get_busy(launch: Launcher, peer: BridgePeer,
                                                    interpreter: str) -> None:
    dev = boot(launch, peer, interpreter)
    secure(dev, peer)
    control = peer.value_handle(CONTROL)
    write = {"op": "write", "conn": 1, "handle": control, "data": "07", "response": True}
    answers = peer.pipeline([write] * 6, "write_resp")
    assert [a["status"] for a in answers] == [0] * 6
    peer.wait_until(lambda: len(cp_responses(peer)) == 6, what="six responses")
    statuses = sorted(r.status for r in cp_responses(peer))
    assert statuses == [CPStatus.SUCCESS] * 4 + [CPStatus.BUSY] * 2
    st = stats(dev, peer)["stats"]
    assert st["writes_overflow"] == 2 and st["writes_ok"] == 4 and st["writes_invalid"] == 0
    assert dev.requests() == [Opcode.GET_STATUS] * 4
    dev.quit(peer)


# ============================================================================ indications, events


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_indications_wait_for_indicate_done(launch: Launcher, peer: BridgePeer,
                                           interpreter: str) -> None:
    dev = boot(launch, peer, interpreter, probe_ms=5000)
    secure(dev, peer)
    peer.auto_ack = False
    assert peer.subscribe(1, CONTROL, notify=False, indicate=True) == 0
    assert peer.subscribe(1, EVENTS, notify=False, indicate=True) == 0
    control, events = peer.value_handle(CONTROL), peer.value_handle(EVENTS)

    # CALIBRATE: the stand-in main loop answers REFUSED, then queues the CALIBRATION event.
    assert peer.write(1, control, bytes([Opcode.CALIBRATE])) == 0
    peer.wait_until(lambda: peer.received, what="first indication")
    peer.settle(0.5)
    assert [(n.handle, n.indication) for n in peer.received] == [(control, True)]
    assert cp_responses(peer)[0].status == CPStatus.REFUSED

    peer.indicate_done(1, control)
    peer.wait_until(lambda: len(peer.received) == 2, what="the event after the ack")
    rej = decode.Rejections()
    event = decode.decode_event(peer.received[1].data, rej)
    assert event is not None and event.code == EventCode.CALIBRATION, rej.summary()
    assert peer.received[1].indication and peer.received[1].handle == events

    def received(n: int) -> Callable[[], bool]:
        return lambda: len(peer.received) == n

    # Three more events: each waits for the previous one's acknowledgement.
    assert dev.command("events 3", "events", peer) == [True, True, True]
    for expected in (3, 4, 5):
        peer.settle(0.3)
        assert len(peer.received) == expected - 1, [n.handle for n in peer.received]
        peer.indicate_done(1, events)
        peer.wait_until(received(expected), what=f"indication {expected}")
    peer.indicate_done(1, events)
    assert [e.event_seq for e in decoded_events(peer.received[1:])] == [0, 1, 2, 3]
    assert peer.overlaps == []
    # Two requests back to back: the second response waits for the first one's acknowledgement.
    assert peer.write(1, control, bytes([Opcode.GET_STATUS])) == 0
    assert peer.write(1, control, bytes([Opcode.ABORT])) == 0
    peer.wait_until(lambda: len(peer.received) == 6, what="first response")
    peer.settle(0.3)
    assert len(peer.received) == 6
    peer.indicate_done(1, control)
    peer.wait_until(lambda: len(peer.received) == 7, what="second response")
    peer.indicate_done(1, control)
    assert [(r.request_opcode, r.status) for r in cp_responses(peer)[1:]] == [
        (Opcode.GET_STATUS, CPStatus.SUCCESS), (Opcode.ABORT, CPStatus.SUCCESS)]
    assert peer.overlaps == []
    st = wait_stats(dev, peer, lambda s: s["stats"]["indications_acked"] == 7)
    assert st["sim"]["indicate_overlap"] == 0
    dev.quit(peer)


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_events_follow_a_notify_subscription(launch: Launcher, peer: BridgePeer,
                                             interpreter: str) -> None:
    dev = boot(launch, peer, interpreter, probe_ms=150)
    secure(dev, peer)
    assert peer.subscribe(1, EVENTS) == 0
    assert peer.subscribe(1, CONTROL, notify=False, indicate=True) == 0
    events, control = peer.value_handle(EVENTS), peer.value_handle(CONTROL)
    assert dev.command("events 3", "events", peer) == [True, True, True]
    set_time = bytes([Opcode.SET_TIME]) + (1_700_000_000_000).to_bytes(8, "little")
    assert peer.write(1, control, set_time) == 0
    peer.wait_until(lambda: len(peer.on(events)) == 3 and cp_responses(peer), timeout=10,
                    what="3 events and a response")
    assert not any(n.indication for n in peer.on(events))
    assert [e.event_seq for e in decoded_events(peer.on(events))] == [0, 1, 2]
    resp = cp_responses(peer)[0]
    assert resp.status == CPStatus.SUCCESS and resp.opcode == Opcode.SET_TIME
    assert resp.data == TimeAnchor(boot_id=7, t_ms=4242)
    dev.quit(peer)


# ============================================================================ disconnect


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_disconnect_readvertises(launch: Launcher, peer: BridgePeer, interpreter: str) -> None:
    dev = boot(launch, peer, interpreter)
    first = peer.wait_for("adv")
    peer.connect(1)
    wait_link(dev, peer, lambda s: s is not None)
    st = stats(dev, peer)
    assert st["advertising"] is False and st["connected"] is True
    peer.disconnect(1)
    again = peer.wait_for("adv")
    assert (again["adv"], again["resp"], again["interval_us"]) == (
        first["adv"], first["resp"], first["interval_us"])
    st = stats(dev, peer)
    assert st["advertising"] is True and st["connected"] is False
    assert st["stats"]["connects"] == 1 and st["stats"]["disconnects"] == 1
    # A second central can connect and is served like the first.
    secure(dev, peer, conn=5)
    assert link_state(dev, peer, 5) == [23, True, False, True]
    dev.quit(peer)


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_losing_the_bridge_is_survived(launch: Launcher, peer: BridgePeer,
                                       interpreter: str) -> None:
    dev = boot(launch, peer, interpreter)
    secure(dev, peer)
    peer.drop_device()
    # The link is gone (disconnect IRQ), advertising cannot restart: counted, retried, no crash.
    st = wait_stats(dev, peer, lambda s: s["stats"]["disconnects"] == 1
                    and s["stats"]["adv_errors"] >= 1)
    assert st["connected"] is False and st["advertising"] is False
    assert st["sim"]["bridge_lost"] == 1
    assert dev.command("stream 1", "streamed", peer) == [0]
    assert dev.quit() == 0
    assert "bridge connection lost" in dev.output()


# ============================================================================ the shim itself


class Probe:
    def __init__(self, launch: Launcher, peer: BridgePeer, interpreter: str) -> None:
        self.dev = launch(interpreter, PROBE)
        self.peer = peer
        self.dev.expect("singleton")

    def irqs(self) -> list[list[Any]]:
        return [obj["irq"] for obj in self.dev.seen if "irq" in obj]

    def settle(self) -> None:
        self.peer.settle(0.15)
        self.dev.drain()

    def cmd(self, line: str, key: str) -> Any:
        return self.dev.command(line, key, self.peer)


@pytest.fixture(params=INTERPRETERS)
def probe(request: pytest.FixtureRequest, launch: Launcher, peer: BridgePeer) -> Iterator[Probe]:
    p = Probe(launch, peer, request.param)
    yield p
    p.dev.quit(peer)


def test_shim_start_register_and_irq_shapes(probe: Probe, peer: BridgePeer) -> None:
    info = probe.dev.expect_object("handles")
    assert info["handles"] == [[3, 5, 7, 9], [12, 14, 16]]
    assert info["mac"] == {"bytes": "4e4c00000001"}
    assert info["uuid_repr"] == ["UUID(0x180f)", "UUID('6e400001-b5a3-f393-e0a9-e50e24dcca9e')"]
    peer.wait_for("register")
    assert peer.services is not None
    a, b = peer.services
    assert (a["uuid"], a["handle"], b["uuid"], b["handle"]) == (
        "aaaa", 1, "6e400001-b5a3-f393-e0a9-e50e24dcca9e", 10)
    c2 = a["chars"][1]
    assert (c2["decl_handle"], c2["value_handle"], c2["cccd_handle"]) == (4, 5, 6)
    assert c2["descs"] == [{"uuid": "2901", "flags": 0x0002, "handle": 7}]
    assert a["chars"][2]["uuid"] == "6e400003-b5a3-f393-e0a9-e50e24dcca9e"
    assert a["chars"][2]["cccd_handle"] is None

    # NimBLE's start-up IRK load came first: GET (none stored), then SET of a fresh 16-byte key.
    irqs = probe.irqs()
    assert irqs[0] == [29, 10, 0, {"mv": b"irk".hex()}]
    assert irqs[1][:3] == [30, 10, {"mv": b"irk".hex()}] and len(irqs[1][3]["mv"]) == 32

    peer.connect(1, addr="c0:ff:ee:00:00:01", addr_type=1)
    peer.mtu(1, 185)
    peer.mtu(1, 400)  # above the stack's preferred 256: the exchange settles on 256
    probe.settle()
    assert probe.irqs()[2:] == [
        [1, 1, 1, {"mv": "c0ffee000001"}],
        [21, 1, 185],
        [21, 1, 256],
    ]


def test_shim_writes_buffers_and_cccd(probe: Probe, peer: BridgePeer) -> None:
    probe.dev.expect("handles")
    peer.wait_for("register")
    peer.connect(1)
    probe.settle()
    n = len(probe.irqs())
    assert peer.write(1, 3, b"hello") == 0
    probe.settle()
    assert probe.irqs()[n:] == [[3, 1, 3]]
    assert probe.cmd("read 3", "read") == b"hello".hex()
    # Remote writes are cut to the 20-byte default buffer, silently on a real stack.
    assert peer.write(1, 3, bytes(range(25))) == 0
    assert probe.cmd("read 3", "read") == bytes(range(20)).hex()
    # A local write grows the buffer.
    assert probe.cmd("write 3 " + bytes(30).hex(), "written") == 30
    assert peer.read(1, 3) == (0, bytes(30))

    # Append mode: writes accumulate up to the buffer size; gatts_read drains.
    assert probe.cmd("buffer 9 8 1", "buffer") is True
    for chunk in (b"abcd", b"efgh", b"ij"):
        assert peer.write(1, 9, chunk, response=False) == 0
    assert probe.cmd("read 9", "read") == b"abcdefgh".hex()
    assert probe.cmd("read 9", "read") == ""

    # CCCD writes change the subscription and raise no IRQ.
    n = len(probe.irqs())
    assert peer.write(1, 6, b"\x01\x00") == 0
    assert peer.read(1, 6) == (0, b"\x01\x00")
    assert peer.write(1, 17, b"\x02\x00") == 0x06  # indications on a notify-only characteristic
    assert peer.write(1, 6, b"\x01") == 0x0D
    probe.settle()
    assert probe.irqs()[n:] == []

    # Permission checks, answered by the "stack" with no IRQ.
    assert peer.write(1, 5, b"x") == 0x03
    assert peer.read(1, 9)[0] == 0x02
    assert peer.read(1, 99)[0] == 0x01
    assert peer.write(1, 12, b"x") == ATT_INSUFFICIENT_ENCRYPTION
    assert peer.read(1, 12)[0] == ATT_INSUFFICIENT_ENCRYPTION
    probe.settle()
    assert probe.irqs()[n:] == []
    st = probe.cmd("stats", "stats")
    assert st["write_truncated"] == 2


def test_shim_pairing_and_encryption(probe: Probe, peer: BridgePeer) -> None:
    probe.dev.expect("handles")
    peer.connect(1, addr="c0:ff:ee:00:00:01")
    resp = peer.pair(1)
    assert resp["status"] == 0 and resp["bonded"] is True
    probe.settle()
    key = "00c0ffee000001"
    assert probe.irqs()[-2:] == [
        [30, 2, {"mv": key}, {"mv": resp["ltk"]}],
        [28, 1, 1, 0, 1, 16],
    ]
    assert peer.write(1, 12, b"ok") == 0
    assert peer.read(1, 14)[0] == ATT_INSUFFICIENT_AUTHENTICATION  # Just Works is not MITM

    peer.connect(2, addr="c0:ff:ee:00:00:01")
    assert peer.encrypt(2, resp["ltk"])["status"] == 0
    peer.connect(3, addr="c0:ff:ee:00:00:02")
    assert peer.encrypt(3, resp["ltk"])["status"] == 5
    probe.settle()
    assert [29, 2, 0, {"mv": "00c0ffee000002"}] in probe.irqs()
    assert probe.irqs()[-1] == [28, 3, 0, 0, 0, 0]
    assert peer.write(3, 12, b"no") == ATT_INSUFFICIENT_ENCRYPTION


def test_shim_notify_indicate_and_disconnect(probe: Probe, peer: BridgePeer) -> None:
    probe.dev.expect("handles")
    peer.auto_ack = False
    peer.connect(1)
    probe.settle()
    # Notifications are cut to MTU - 3 like a real stack would.
    assert probe.cmd("notify 1 16 " + bytes(range(30)).hex(), "notify") is None
    peer.wait_until(lambda: peer.on(16), what="notification")
    assert peer.on(16)[0].data == bytes(range(20))
    # send_update follows the subscription: notify...
    assert peer.write(1, 6, b"\x01\x00") == 0
    assert probe.cmd("write 5 aa 1", "written") == 1
    peer.wait_until(lambda: peer.on(5), what="update as notification")
    assert not peer.on(5)[0].indication
    # ...or indicate, holding further updates back until the ack, then sending the latest value.
    assert peer.write(1, 6, b"\x02\x00") == 0
    for value in ("b1", "b2", "b3"):
        assert probe.cmd(f"write 5 {value} 1", "written") == 1
    peer.settle(0.3)
    assert [x.data for x in peer.on(5) if x.indication] == [b"\xb1"]
    n = len(probe.irqs())
    peer.indicate_done(1, 5)
    peer.wait_until(lambda: len([x for x in peer.on(5) if x.indication]) == 2, what="pending")
    assert [x.data for x in peer.on(5) if x.indication] == [b"\xb1", b"\xb3"]
    probe.settle()
    assert probe.irqs()[n:] == [[20, 1, 5, 0]]
    # A disconnect while an indication is unacknowledged completes it with NimBLE's ENOTCONN
    # first. gap_disconnect returns before the disconnect event arrives.
    assert probe.cmd("disconnect 1", "disconnect_returned") is True
    peer.wait_for("disconnect")
    probe.settle()
    assert probe.irqs()[-2:] == [[20, 1, 5, 7], [2, 1, 0, {"mv": "c0ffee000001"}]]
    index = next(i for i, obj in enumerate(probe.dev.seen) if "disconnect_returned" in obj)
    assert [20, 1, 5, 7] in [obj.get("irq") for obj in probe.dev.seen[index:]]
    assert probe.cmd("disconnect 1", "disconnect_returned") is False
    assert probe.cmd("notify 1 16 00", "oserror") == 107  # ENOTCONN
    assert probe.cmd("adv 32", "oserror") == 22  # EINVAL: over the 31-byte legacy limit
    assert probe.cmd("adv 31", "adv") is True


def test_shim_ignores_unknown_and_malformed_messages(probe: Probe, peer: BridgePeer) -> None:
    probe.dev.expect("handles")
    peer.send({"op": "from-the-future", "x": 1})
    assert peer._sock is not None
    peer._sock.setblocking(True)
    peer._sock.sendall(b"this is not json\n")
    peer._sock.setblocking(False)
    peer.send({"op": "write", "conn": 1})  # missing fields
    peer.connect(1)
    assert peer.write(1, 3, b"still alive") == 0
    st = probe.cmd("stats", "stats")
    assert st["rx_unknown_op"] == 1 and st["rx_bad"] == 2


# ============================================================================ the bond store


def test_bond_store_under_both_interpreters(tmp_path: Path) -> None:
    results = {}
    for interpreter in INTERPRETERS:
        if interpreter == "micropython" and micropython_binary() is None:
            pytest.fail("the micropython unix port is missing; `make test` installs it")
        cwd = tmp_path / interpreter
        cwd.mkdir()
        proc = popen_firmware(interpreter, HERE / "ble_bonds_check.py", cwd=cwd)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, out + err
        results[interpreter] = json.loads(out.splitlines()[-1])
    r = results["micropython"]
    assert r == results["cpython"]
    assert r["empty_load"] == 0 and r["irk"] is True and r["a"] == [True, True]
    assert r["get_a"] == "a2" * 8
    assert r["get_index"] == ["a2" * 8, None]
    assert r["replace"] is True and r["after_replace"] == [3, "A2" * 8]
    assert r["delete_missing"] is False
    assert r["b"] == [True, True] and r["c"] is True
    assert r["after_evict"] == [4, 2, None, True, 1]
    assert r["reload"] == [4, 2, "c2" * 8]
    assert r["damaged"] == [0, 1, 0] and r["truncated"] == [0, 2]
    assert r["clear"] == [1, 0, 1] and r["clear_persisted"] == [1, 0]
    assert r["removed"] is True
    assert r["logged"] >= 3 and r["secret_in_log"] is False
