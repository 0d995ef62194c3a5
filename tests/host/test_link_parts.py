"""The link's parts that need no radio: the control-point client against a loopback peer that
answers with real protocol bytes, the watchdog, the allow-list file, settings, error triage.
The whole link against the virtual BlueZ and the real firmware is in tests/e2e/test_link.py."""

from __future__ import annotations

import asyncio
import itertools
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from bleak.exc import BleakDBusError, BleakGATTProtocolError, BleakGATTProtocolErrorCode

from neckline.errors import ConfigError
from neckline.link import (
    AllowList,
    ControlPoint,
    ControlPointError,
    ControlPointTimeout,
    LinkError,
    LinkSettings,
    normalise_address,
)
from neckline.link.session import is_security_error
from neckline.link.watchdog import Watchdog
from neckline.protocol import CPStatus, Opcode, RawBackfillResult, RejectReason, TimeAnchor


def response(opcode: int, status: int, data: bytes = b"") -> bytes:
    return bytes([0x17, opcode, status]) + data


class Peer:
    """Plays the device: every written request gets the answers `script` gives for it."""

    def __init__(self, script: Callable[[bytes], list[tuple[float, bytes]]]) -> None:
        self.script = script
        self.written: list[bytes] = []
        self.cp: ControlPoint | None = None

    async def write(self, payload: bytes) -> None:
        self.written.append(payload)
        loop = asyncio.get_running_loop()
        for delay, answer in self.script(payload):
            assert self.cp is not None
            loop.call_later(delay, self.cp.feed, answer, 1234)


def control_point(script: Callable[[bytes], list[tuple[float, bytes]]], timeout: float = 0.5
                  ) -> tuple[ControlPoint, Peer]:
    peer = Peer(script)
    cp = ControlPoint(peer.write, timeout=timeout)
    peer.cp = cp
    return cp, peer


async def test_set_time_returns_the_anchor_and_keeps_the_arrival_time() -> None:
    cp, peer = control_point(
        lambda req: [(0.01, response(req[0], 1, struct.pack("<BI", 7, 4242)))]
    )
    anchor = await cp.set_time(1_700_000_000_123)
    assert anchor == TimeAnchor(7, 4242)
    assert peer.written == [struct.pack("<BQ", Opcode.SET_TIME, 1_700_000_000_123)]
    assert cp.response_utc_ms[Opcode.SET_TIME] == 1234
    assert cp.stats.responses == 1 and cp.stats.unexpected == 0


async def test_a_refusal_raises_with_its_status() -> None:
    cp, _ = control_point(lambda req: [(0.0, response(req[0], CPStatus.BUSY))])
    with pytest.raises(ControlPointError) as info:
        await cp.request_raw(1, 2, idle_timeout=0.5, progress=time.monotonic)
    assert info.value.status is CPStatus.BUSY
    assert "REQUEST_RAW" in str(info.value)


async def test_no_records_is_an_answer_not_an_error() -> None:
    cp, _ = control_point(lambda req: [(0.0, response(req[0], CPStatus.NO_RECORDS))])
    answer = await cp.request_summary(5, idle_timeout=0.5, progress=time.monotonic)
    assert answer.status is CPStatus.NO_RECORDS and answer.data is None


async def test_timeout_then_the_late_answer_is_counted_not_raised() -> None:
    cp, _ = control_point(lambda req: [(0.3, response(req[0], 1))], timeout=0.1)
    with pytest.raises(ControlPointTimeout) as info:
        await cp.get_status()
    assert isinstance(info.value, LinkError) and "GET_STATUS" in str(info.value)
    await asyncio.sleep(0.35)
    assert cp.stats.timeouts == 1 and cp.stats.unexpected == 1


async def test_backfill_timeout_restarts_with_progress() -> None:
    # The answer comes after 0.6 s, three times the idle timeout, but data keeps flowing.
    cp, _ = control_point(lambda req: [(0.6, response(req[0], 1, struct.pack("<II", 9, 1)))])
    last = [time.monotonic()]

    async def flowing() -> None:
        for _ in range(12):
            await asyncio.sleep(0.05)
            last[0] = time.monotonic()

    feeder = asyncio.create_task(flowing())
    answer = await cp.request_raw(1, 9, idle_timeout=0.2, progress=lambda: last[0])
    await feeder
    assert answer.status is CPStatus.SUCCESS and answer.data is not None
    # Without progress the same wait is a timeout.
    with pytest.raises(ControlPointTimeout):
        await cp.request_raw(1, 9, idle_timeout=0.2, progress=lambda: 0.0)


async def test_abort_gets_past_a_running_backfill_and_both_answer() -> None:
    def device(req: bytes) -> list[tuple[float, bytes]]:
        if req[0] == Opcode.ABORT:  # the stopped procedure answers first (protocol §10.3)
            return [(0.01, response(Opcode.REQUEST_RAW, 1, struct.pack("<II", 3, 0))),
                    (0.02, response(Opcode.ABORT, 1))]
        return []

    cp, peer = control_point(device, timeout=2.0)
    backfill = asyncio.create_task(
        cp.request_raw(0, 100, idle_timeout=2.0, progress=time.monotonic)
    )
    await asyncio.sleep(0.05)
    await cp.abort()
    answer = await backfill
    assert isinstance(answer.data, RawBackfillResult) and answer.data.samples_sent == 3
    assert [w[0] for w in peer.written] == [Opcode.REQUEST_RAW, Opcode.ABORT]


async def test_one_procedure_at_a_time() -> None:
    writes: list[tuple[float, int]] = []

    def device(req: bytes) -> list[tuple[float, bytes]]:
        writes.append((time.monotonic(), req[0]))
        return [(0.05, response(req[0], 1))]

    cp, _ = control_point(device)
    config = bytes([Opcode.SET_CONFIG, 5]) + struct.pack("<i", 100)
    await asyncio.gather(cp.get_status(), cp.calibrate(), cp.set_config(config))
    assert sorted(op for _, op in writes) == [Opcode.CALIBRATE, Opcode.SET_CONFIG,
                                              Opcode.GET_STATUS]
    # Each request was written only after the previous one was answered.
    assert all(b[0] - a[0] >= 0.04 for a, b in itertools.pairwise(writes))
    assert cp.stats.requests == 3 and cp.stats.responses == 3


async def test_closing_fails_the_waiting_request_at_once() -> None:
    cp, _ = control_point(lambda req: [], timeout=5.0)
    waiting = asyncio.create_task(cp.get_status())
    await asyncio.sleep(0.01)
    cp.close(LinkError("link lost"))
    with pytest.raises(LinkError, match="link lost"):
        await asyncio.wait_for(waiting, 1)
    with pytest.raises(LinkError, match="closed"):
        await cp.get_status()


async def test_malformed_and_unsolicited_responses_are_counted() -> None:
    cp, _ = control_point(lambda req: [])
    cp.feed(bytes([0x17, 0x02]))  # truncated
    cp.feed(response(Opcode.SET_TIME, 1, b"\x00"))  # wrong data length
    cp.feed(response(Opcode.GET_STATUS, 1))  # nobody asked
    assert cp.rejections.count(RejectReason.TRUNCATED) == 1
    assert cp.rejections.count(RejectReason.BAD_LENGTH) == 1
    assert cp.stats.unexpected == 1


async def test_watchdog_probes_a_quiet_link() -> None:
    dog = Watchdog(silence=0.05, probe_timeout=0.1)

    async def answers() -> None:
        await asyncio.sleep(0.01)

    async def silent() -> None:
        await asyncio.sleep(1)

    assert await dog.check(silent) is None  # not quiet long enough yet: no probe
    await asyncio.sleep(0.06)
    assert await dog.check(answers) is None and dog.probes == 1
    assert dog.silent_for() < 0.05  # the answer fed it
    await asyncio.sleep(0.06)
    verdict = await dog.check(silent)
    assert verdict is not None and verdict.startswith("watchdog: nothing received for")
    assert "TimeoutError" in verdict and dog.trips == 1
    dog.stretch(1.0)
    assert dog.silence == 3.0


def test_allow_list_rejects_a_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / "wearers.json"
    path.write_text('{"version": 1, "wearers": [{"address": "not-an-address"}]}')
    with pytest.raises(ConfigError, match="not a valid Neckline allow-list"):
        AllowList(path)
    path.write_text("{")
    with pytest.raises(ConfigError):
        AllowList(path)


def test_addresses_are_normalised() -> None:
    assert normalise_address(" c0-de-00-00-00-0a ") == "C0:DE:00:00:00:0A"
    for bad in ("C0:DE:00:00:00", "C0:DE:00:00:00:0G", ""):
        with pytest.raises(ValueError):
            normalise_address(bad)


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        LinkSettings(cp_timeout=0)
    with pytest.raises(ValueError):
        LinkSettings(backoff_base=2.0, backoff_cap=1.0)
    with pytest.raises(ValueError):
        LinkSettings(backfill_interval=0)


def test_security_errors_are_told_apart_from_others() -> None:
    not_paired = BleakDBusError("org.bluez.Error.NotPermitted", ["Not paired"])
    read_denied = BleakGATTProtocolError(BleakGATTProtocolErrorCode.READ_NOT_PERMITTED)
    encryption = BleakGATTProtocolError(BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION)
    gone = BleakDBusError("org.bluez.Error.Failed", ["Operation failed"])
    assert is_security_error(not_paired) and is_security_error(encryption)
    assert not is_security_error(read_denied) and not is_security_error(gone)
