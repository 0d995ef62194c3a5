"""The control-point client: write a request, wait for the indicated response, type the result.

docs/protocol.md §10. One procedure runs at a time (a lock), except ABORT, which exists to stop a
running REQUEST_RAW / REQUEST_SUMMARY and so must get past it. A response is matched to the
waiting request by the echoed opcode; a response nobody waits for (late, after a timeout) is
counted and logged, never raised. Backfill procedures stream packets before their response, so
their timeout is an idle timeout: it restarts whenever the link shows progress.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from neckline import control
from neckline.decode import Rejections, decode_cp_response
from neckline.errors import NecklineError
from neckline.protocol import (
    CPResponse,
    CPStatus,
    Opcode,
    RawBackfillResult,
    SummaryBackfillResult,
    TimeAnchor,
)

log = logging.getLogger(__name__)

Writer = Callable[[bytes], Awaitable[None]]
Progress = Callable[[], float]  # monotonic seconds of the latest sign of life


class LinkError(NecklineError):
    """The connection to a wearable failed or misbehaved; the supervisor reconnects."""


class ControlPointTimeout(LinkError):
    def __init__(self, opcode: int, seconds: float) -> None:
        super().__init__(f"no control-point response to {_name(opcode)} within {seconds:g} s")
        self.opcode = opcode


class ControlPointError(NecklineError):
    """The device answered a request with a status other than the one(s) the caller accepts."""

    def __init__(self, opcode: int, status: CPStatus) -> None:
        super().__init__(f"device answered {_name(opcode)} with {status.name}")
        self.opcode = opcode
        self.status = status


def _name(opcode: int) -> str:
    try:
        return Opcode(opcode).name
    except ValueError:
        return f"opcode 0x{opcode:02x}"


@dataclass
class ControlPointStats:
    requests: int = 0
    responses: int = 0
    unexpected: int = 0  # responses nobody waited for (late, or for another host's request)
    timeouts: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class ControlPoint:
    """Requests and responses on one connection's control point."""

    def __init__(self, write: Writer, *, timeout: float = 5.0) -> None:
        self._write = write
        self.timeout = timeout
        self._lock = asyncio.Lock()
        self._waiting: dict[int, asyncio.Future[CPResponse]] = {}
        self.rejections = Rejections()
        self.stats = ControlPointStats()
        self._closed: BaseException | None = None
        self.response_utc_ms: dict[int, int] = {}

    # --- input -------------------------------------------------------------------------------
    def feed(self, payload: bytes, utc_ms: int | None = None) -> None:
        """An indication from the control point (called from bleak's callback, with the host
        time it arrived, kept per opcode in `response_utc_ms`)."""
        response = decode_cp_response(payload, self.rejections)
        if response is None:
            log.warning("malformed control-point response %s: %s", payload.hex(),
                        self.rejections.examples[-1].detail if self.rejections.examples else "")
            return
        waiter = self._waiting.get(response.request_opcode)
        if waiter is None or waiter.done():
            self.stats.unexpected += 1
            log.warning("control-point response nobody waited for: %s %s",
                        _name(response.request_opcode), response.status.name)
            return
        self.stats.responses += 1
        if utc_ms is not None:
            self.response_utc_ms[response.request_opcode] = utc_ms
        waiter.set_result(response)

    def close(self, reason: BaseException) -> None:
        """The link is gone: every waiting request fails now instead of timing out."""
        self._closed = reason
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_exception(reason)

    # --- requests ----------------------------------------------------------------------------
    async def request(
        self, payload: bytes, *, timeout: float | None = None, progress: Progress | None = None
    ) -> CPResponse:
        """Write one request and return its response, whatever the status.

        `timeout` (default: the instance's) counts from the write, or with `progress` from the
        latest progress it reports (an idle timeout for backfills).
        """
        if payload[:1] == bytes([Opcode.ABORT]):
            return await self._exchange(payload, timeout, progress)
        async with self._lock:
            return await self._exchange(payload, timeout, progress)

    async def _exchange(
        self, payload: bytes, timeout: float | None, progress: Progress | None
    ) -> CPResponse:
        if self._closed is not None:
            raise LinkError(f"control point closed: {self._closed}")
        opcode = payload[0]
        if opcode in self._waiting:
            raise RuntimeError(f"{_name(opcode)} is already waiting for its response")
        seconds = self.timeout if timeout is None else timeout
        waiter: asyncio.Future[CPResponse] = asyncio.get_running_loop().create_future()
        # Registered before writing: the indication can overtake the write's own reply.
        self._waiting[opcode] = waiter
        self.stats.requests += 1
        try:
            await asyncio.wait_for(self._write(payload), seconds)
            started = time.monotonic()
            while True:
                last = max(started, progress()) if progress is not None else started
                left = last + seconds - time.monotonic()
                if left <= 0:
                    self.stats.timeouts += 1
                    raise ControlPointTimeout(opcode, seconds)
                done, _ = await asyncio.wait({waiter}, timeout=left)
                if done:
                    return waiter.result()
        finally:
            del self._waiting[opcode]
            if not waiter.done():
                waiter.cancel()

    async def _expect(
        self, payload: bytes, accepted: tuple[CPStatus, ...] = (CPStatus.SUCCESS,), *,
        timeout: float | None = None, progress: Progress | None = None,
    ) -> CPResponse:
        response = await self.request(payload, timeout=timeout, progress=progress)
        if response.status not in accepted:
            raise ControlPointError(payload[0], response.status)
        return response

    # --- typed procedures --------------------------------------------------------------------
    async def set_time(self, utc_epoch_ms: int) -> TimeAnchor:
        response = await self._expect(control.encode_set_time(utc_epoch_ms))
        assert isinstance(response.data, TimeAnchor)
        return response.data

    async def set_config(self, write: bytes) -> None:
        """One SET_CONFIG write (StrainConfig.set_config_writes, control.split_set_config)."""
        if write[:1] != bytes([Opcode.SET_CONFIG]):
            raise ValueError("not a SET_CONFIG request")
        await self._expect(write)

    async def request_raw(
        self, first_seq: int, last_seq: int, *, idle_timeout: float, progress: Progress
    ) -> CPResponse:
        """REQUEST_RAW: SUCCESS (with RawBackfillResult) or NO_RECORDS; other statuses raise."""
        response = await self._expect(
            control.encode_request_raw(first_seq, last_seq),
            (CPStatus.SUCCESS, CPStatus.NO_RECORDS), timeout=idle_timeout, progress=progress,
        )
        assert response.data is None or isinstance(response.data, RawBackfillResult)
        return response

    async def request_summary(
        self, from_record: int, *, idle_timeout: float, progress: Progress
    ) -> CPResponse:
        """REQUEST_SUMMARY: SUCCESS (with SummaryBackfillResult) or NO_RECORDS."""
        response = await self._expect(
            control.encode_request_summary(from_record),
            (CPStatus.SUCCESS, CPStatus.NO_RECORDS), timeout=idle_timeout, progress=progress,
        )
        assert response.data is None or isinstance(response.data, SummaryBackfillResult)
        return response

    async def abort(self, timeout: float | None = None) -> None:
        await self._expect(control.encode_abort(), timeout=timeout)

    async def get_status(self) -> None:
        await self._expect(control.encode_get_status())

    async def calibrate(self) -> CPStatus:
        """SUCCESS (capture started) or REFUSED (the CALIBRATION event says why)."""
        response = await self._expect(
            control.encode_calibrate(), (CPStatus.SUCCESS, CPStatus.REFUSED)
        )
        return response.status
