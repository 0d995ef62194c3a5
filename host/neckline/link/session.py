"""One connection to one wearer, from connect to disconnect (docs/link.md has the state machine).

    session = Session(sighting.device, sink=queue.put_nowait, planner=pipeline,
                      settings=LinkSettings(), strain_config=config, name=sighting.name)
    await session.open()                  # connect, check, secure, subscribe, SET_TIME, config
    reason = await session.serve(stop)    # backfill, then stream until lost/stopped/silent
    await session.close(reason)           # ABORT (if still connected), disconnect

`open()` in order:
1. establish_connection (bleak-retry-connector) within `connect_timeout`;
2. the Neckline service and its five characteristics must be there;
3. read STATUS (readable unencrypted) and refuse another protocol version with the user message
   of docs/protocol.md §2 (decode.require_supported_version);
4. make sure the link is encrypted: read CONFIG (encrypted). If the device refuses for lack of
   security, pair when `allow_pairing`, otherwise fail with NotBonded;
5. subscribe: control point (indications, before any write, as §3.1 requires), events, posture;
6. SET_TIME with the host's UTC; the answer becomes a TimeSynced notice with both host times;
7. push the shared StrainConfig (SET_CONFIG writes sized to the MTU) and read the config back.

Every payload goes to the sink as a `Received` from bleak's callback, in arrival order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.exc import BleakDBusError, BleakError, BleakGATTProtocolError, BleakGATTProtocolErrorCode
from bleak_retry_connector import establish_connection

from neckline.decode import Rejections, decode_config, decode_event, require_supported_version
from neckline.errors import NecklineError
from neckline.link.controlpoint import ControlPoint, ControlPointError, LinkError
from neckline.link.planner import BackfillPlanner, NoBackfill
from neckline.link.records import (
    ConfigRead,
    Kind,
    LinkRecord,
    RawBackfilled,
    Received,
    SessionDown,
    SessionUp,
    Sink,
    StatusRead,
    SummaryBackfilled,
    TimeSynced,
    utc_ms_now,
)
from neckline.link.settings import LinkSettings
from neckline.link.watchdog import Watchdog
from neckline.protocol import (
    CONFIG_UUID,
    CONTROL_POINT_UUID,
    EVENTS_UUID,
    POSTURE_UUID,
    SERVICE_UUID,
    STATUS_UUID,
    CalibrationOutcome,
    Config,
    EventCode,
    Opcode,
    ProtocolError,
    RawBackfillResult,
    Status,
    SummaryBackfillResult,
)
from neckline.strain_config import StrainConfig, StrainConfigError

log = logging.getLogger(__name__)

# bleak's BlueZ backend raises these for "the link is not encrypted" (docs/vble.md, Errors):
# ATT 0x05/0x0F/0x0C all become NotPermitted "Not paired"; other stacks report the ATT code.
_SECURITY_CODES = frozenset({
    BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHENTICATION,
    BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION,
    BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION_KEY_SIZE,
})
# StartNotify keeps posture and control-point traffic on one D-Bus connection, so a backfill's
# packets reach the callback before its response does (AcquireNotify would use a socket per
# characteristic, and the response could overtake the last packets).
_NOTIFY_ARGS: Any = {"use_start_notify": True}


class NotBonded(NecklineError):
    """The wearer needs pairing and this connection may not pair."""

    exit_code = 77  # EX_NOPERM


class BondBroken(NecklineError):
    """BlueZ thinks it is bonded but the wearer no longer has the key."""

    exit_code = 77


def is_security_error(exc: BaseException) -> bool:
    if isinstance(exc, BleakGATTProtocolError):
        return exc.code in _SECURITY_CODES
    if isinstance(exc, BleakDBusError):
        details = (exc.dbus_error_details or "").lower()
        return exc.dbus_error in (
            "org.bluez.Error.NotPermitted", "org.bluez.Error.NotAuthorized"
        ) and ("paired" in details or "authenticat" in details or "encrypt" in details)
    return False


class Session:
    """One connection to one wearer."""

    def __init__(
        self,
        device: BLEDevice,
        *,
        sink: Sink,
        planner: BackfillPlanner | None = None,
        settings: LinkSettings | None = None,
        strain_config: StrainConfig | None = None,
        name: str | None = None,
    ) -> None:
        self.device = device
        self.address = device.address.upper()
        self.name = name or device.name
        self.settings = settings or LinkSettings()
        self.planner = planner or NoBackfill()
        self.strain_config = strain_config
        self._sink = sink
        self._client: BleakClient | None = None
        self._chars: dict[str, BleakGATTCharacteristic] = {}
        self._gone = asyncio.Event()
        self._down_sent = False
        self._aborting = False
        self._connecting = False
        self.cp = ControlPoint(self._write_cp, timeout=self.settings.cp_timeout)
        self.watchdog = Watchdog(self.settings.silence_timeout, self.settings.probe_timeout)
        self.rejections = Rejections()
        self.mtu = 23
        self.status: Status | None = None
        self.config: Config | None = None
        self.received: dict[Kind, int] = dict.fromkeys(Kind, 0)
        self.sink_errors = 0
        self._event_waiters: list[tuple[EventCode, asyncio.Future[Any]]] = []

    # --- downstream ---------------------------------------------------------------------------
    def _emit(self, record: LinkRecord) -> None:
        try:
            self._sink(record)
        except Exception:  # the sink is the caller's; its failure must not kill bleak's loop
            self.sink_errors += 1
            log.exception("%s: the sink refused a %s record", self.address,
                          type(record).__name__)

    def _receiver(self, kind: Kind) -> Callable[[BleakGATTCharacteristic, bytearray], None]:
        def on_value(_: BleakGATTCharacteristic, data: bytearray) -> None:
            utc_ms = time.time_ns() // 1_000_000
            mono_ns = time.monotonic_ns()
            payload = bytes(data)
            self.watchdog.feed(mono_ns / 1e9)
            self.received[kind] += 1
            self._emit(Received(self.address, utc_ms, mono_ns, kind, payload))
            if kind is Kind.CP:
                self.cp.feed(payload, utc_ms)
            elif kind is Kind.EVENT and self._event_waiters:
                self._offer_event(payload)

        return on_value

    def _offer_event(self, payload: bytes) -> None:
        event = decode_event(payload, self.rejections)
        if event is None:
            return
        for code, waiter in list(self._event_waiters):
            if code is event.code and not waiter.done():
                waiter.set_result(event.data)

    def _on_disconnect(self, _: BleakClient) -> None:
        if self._connecting:
            # bleak reports the link of an attempt it retries itself (le-connection-abort-by-local
            # is Connected true, then false): that is not the end of this session.
            log.debug("%s: link dropped during connect; bleak retries", self.address)
            return
        if not self._gone.is_set():
            log.info("%s: disconnected", self.address)
        self._gone.set()
        self.cp.close(LinkError(f"{self.address}: link lost"))

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected and not self._gone.is_set()

    @property
    def last_rx(self) -> float:
        return self.watchdog.last

    # --- GATT helpers -----------------------------------------------------------------------
    def _require_client(self) -> BleakClient:
        if self._client is None or self._gone.is_set():
            raise LinkError(f"{self.address}: not connected")
        return self._client

    async def _write_cp(self, payload: bytes) -> None:
        client = self._require_client()
        await client.write_gatt_char(self._chars[CONTROL_POINT_UUID], payload, response=True)

    async def _read(self, uuid: str) -> bytes:
        client = self._require_client()
        data = await asyncio.wait_for(
            client.read_gatt_char(self._chars[uuid]), self.settings.gatt_timeout
        )
        return bytes(data)

    async def read_status(self) -> Status:
        return require_supported_version(await self._read(STATUS_UUID))

    async def _read_config(self) -> Config:
        config = decode_config(await self._read(CONFIG_UUID), self.rejections)
        if config is None:
            example = self.rejections.examples[-1]
            raise ProtocolError(
                f"{self.address}: config value unreadable ({example.reason}: {example.detail})"
            )
        return config

    # --- opening ------------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect and prepare the link; on failure everything is torn down and re-raised."""
        try:
            await self._connect()
            self._find_characteristics()
            self.status = await self.read_status()
            self.mtu = self._chars[CONTROL_POINT_UUID].max_write_without_response_size + 3
            self.config = await self._secure()
            await self._subscribe()
            self.watchdog.stretch(self.status.period_ms / 1000.0)
            self.watchdog.feed()
            self._emit(SessionUp(self.address, utc_ms_now(), self.name, self.mtu, self.status))
            await self._set_time()
            await self._push_config()
        except BaseException as exc:
            await self.close(f"setup failed: {type(exc).__name__}: {exc}", abort=False)
            raise

    async def _connect(self) -> None:
        settings = self.settings
        log.info("%s: connecting", self.address)
        self._connecting = True
        try:
            client = await asyncio.wait_for(self._establish(), settings.connect_timeout)
        finally:
            self._connecting = False
        self._client = client
        if not client.is_connected:
            raise LinkError(f"{self.address}: the link dropped while connecting")

    async def _establish(self) -> BleakClient:
        settings = self.settings
        return await establish_connection(
                BleakClient, self.device, self.name or self.address,
                disconnected_callback=self._on_disconnect,
                max_attempts=settings.connect_attempts,
                # bleak's service cache lets it skip waiting for ServicesResolved; a wearer's
                # table can change with a firmware update, and reconnects are rare: no cache.
                use_services_cache=False,
                timeout=settings.connect_timeout,
        )

    def _find_characteristics(self) -> None:
        client = self._require_client()
        service = client.services.get_service(SERVICE_UUID)
        if service is None:
            raise ProtocolError(f"{self.address} has no Neckline service: not a Neckline wearer")
        for uuid in (POSTURE_UUID, CONTROL_POINT_UUID, EVENTS_UUID, STATUS_UUID, CONFIG_UUID):
            char = service.get_characteristic(uuid)
            if char is None:
                raise ProtocolError(
                    f"{self.address}: the Neckline service lacks characteristic {uuid}"
                )
            self._chars[uuid] = char

    async def _secure(self) -> Config:
        """Read CONFIG, which needs an encrypted link; pair first if that is needed and allowed."""
        try:
            return await self._read_config()
        except BleakError as exc:  # BleakGATTProtocolError and BleakDBusError among them
            if not is_security_error(exc):
                raise
        if not self.settings.allow_pairing:
            raise NotBonded(
                f"{self.address} is not paired with this host, or no longer accepts its key; "
                f"run `neckline pair {self.address}` (add --repair if it was paired before)"
            )
        log.info("%s: pairing", self.address)
        client = self._require_client()
        await asyncio.wait_for(client.pair(), self.settings.gatt_timeout)
        try:
            return await self._read_config()
        except BleakError as exc:  # BleakGATTProtocolError and BleakDBusError among them
            if not is_security_error(exc):
                raise
            raise BondBroken(
                f"{self.address} refuses this host's key (was it reset or paired elsewhere?); "
                f"run `neckline pair --repair {self.address}`"
            ) from exc

    async def _subscribe(self) -> None:
        client = self._require_client()
        for uuid, kind in (
            (CONTROL_POINT_UUID, Kind.CP), (EVENTS_UUID, Kind.EVENT), (POSTURE_UUID, Kind.POSTURE)
        ):
            await asyncio.wait_for(
                client.start_notify(self._chars[uuid], self._receiver(kind), bluez=_NOTIFY_ARGS),
                self.settings.gatt_timeout,
            )

    async def _set_time(self) -> None:
        sent = utc_ms_now()
        anchor = await self.cp.set_time(sent)
        received = self.cp.response_utc_ms.get(Opcode.SET_TIME, utc_ms_now())
        self._emit(TimeSynced(self.address, anchor.boot_id, anchor.t_ms, sent, received))
        log.info("%s: time set (boot %d, t_ms %d, round trip %d ms)", self.address,
                 anchor.boot_id, anchor.t_ms, received - sent)

    async def _push_config(self) -> None:
        assert self.config is not None
        wanted = self.strain_config
        if wanted is None:
            self._emit(ConfigRead(self.address, utc_ms_now(), self.config, {}))
            return
        if wanted.differences(self.config):
            try:
                current: StrainConfig | None = StrainConfig.from_device(self.config)
            except StrainConfigError:
                current = None
            try:
                for write in wanted.set_config_writes(self.mtu, current):
                    await self.cp.set_config(write)
            except ControlPointError as exc:
                # Keep streaming with the device's own settings; the notice shows the difference.
                log.error("%s: configuration refused: %s", self.address, exc)
            self.config = await self._read_config()
        differences = wanted.differences(self.config)
        if differences:
            log.warning("%s: device config differs from the host's: %s", self.address,
                        {k.name: v for k, v in differences.items()})
        self._emit(ConfigRead(self.address, utc_ms_now(), self.config, differences))

    # --- backfill -----------------------------------------------------------------------------
    async def backfill(self) -> None:
        """One round: fresh status, then the raw gaps the planner names, then summaries."""
        await self.cp.get_status()
        status = await self.read_status()
        self.status = status
        self._emit(StatusRead(self.address, utc_ms_now(), status))
        ranges = list(await self.planner.missing_ranges(self.address, status))
        limit = self.settings.max_ranges_per_round
        if len(ranges) > limit:
            log.info("%s: %d gaps; asking for the oldest %d now", self.address, len(ranges),
                     limit)
        for requested in ranges[:limit]:
            if self._aborting:
                return
            try:
                response = await self.cp.request_raw(
                    requested.first_seq, requested.last_seq,
                    idle_timeout=self.settings.backfill_idle_timeout, progress=self._progress,
                )
            except ControlPointError as exc:  # BUSY, REFUSED...: the range stays missing
                log.warning("%s: REQUEST_RAW %d..%d: %s", self.address, requested.first_seq,
                            requested.last_seq, exc)
                self._emit(RawBackfilled(self.address, requested, exc.status, None,
                                         self._aborting))
                return
            raw = response.data if isinstance(response.data, RawBackfillResult) else None
            self._emit(RawBackfilled(self.address, requested, response.status, raw,
                                     self._aborting))
        start = await self.planner.summary_from(self.address, status)
        if start is None or self._aborting or start == status.next_record:
            return
        try:
            response = await self.cp.request_summary(
                start, idle_timeout=self.settings.backfill_idle_timeout, progress=self._progress
            )
        except ControlPointError as exc:
            log.warning("%s: REQUEST_SUMMARY from %d: %s", self.address, start, exc)
            self._emit(SummaryBackfilled(self.address, start, exc.status, None, self._aborting))
            return
        summary = response.data if isinstance(response.data, SummaryBackfillResult) else None
        self._emit(SummaryBackfilled(self.address, start, response.status, summary,
                                     self._aborting))

    def _progress(self) -> float:
        return self.watchdog.last

    # --- steady state -------------------------------------------------------------------------
    async def serve(self, stop: asyncio.Event) -> str:
        """Backfill, then keep the link until it is lost, silent, or `stop` is set.

        Returns why it ended. At `stop` a running backfill is aborted (ABORT) first.
        """
        work = asyncio.create_task(self._work(), name=f"neckline-link-{self.address}")
        stopped = asyncio.create_task(stop.wait())
        gone = asyncio.create_task(self._gone.wait())
        try:
            await asyncio.wait({work, stopped, gone}, return_when=asyncio.FIRST_COMPLETED)
            if work.done():
                return work.result()  # the watchdog's verdict, or its exception
            if gone.done():
                return "link lost"
            await self._abort()
            return "shutdown"
        finally:
            for task in (work, stopped, gone):
                task.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await work

    async def _work(self) -> str:
        await self.backfill()
        interval = self.settings.backfill_interval
        next_round = None if interval is None else time.monotonic() + interval
        while True:
            verdict = await self.watchdog.check(self.cp.get_status)
            if verdict is not None:
                log.warning("%s: %s", self.address, verdict)
                return verdict
            if next_round is not None and interval is not None and time.monotonic() >= next_round:
                await self.backfill()
                next_round = time.monotonic() + interval
            await asyncio.sleep(self.settings.tick)

    async def _abort(self) -> None:
        """ABORT whatever backfill runs; its own response still arrives first (§10.3)."""
        self._aborting = True
        if not self.connected:
            return
        try:
            await self.cp.abort(timeout=self.settings.shutdown_timeout)
        except Exception as exc:  # shutting down anyway
            log.info("%s: ABORT at shutdown got no answer: %s", self.address, exc)

    # --- commands -----------------------------------------------------------------------------
    async def calibrate(self, timeout: float) -> CalibrationOutcome:
        """CALIBRATE and wait for the CALIBRATION event with the result (SUCCESS or REFUSED)."""
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        entry = (EventCode.CALIBRATION, waiter)
        self._event_waiters.append(entry)
        try:
            status = await self.cp.calibrate()
            log.info("%s: CALIBRATE answered %s", self.address, status.name)
            outcome = await asyncio.wait_for(waiter, timeout)
        finally:
            self._event_waiters.remove(entry)
        assert isinstance(outcome, CalibrationOutcome)
        return outcome

    # --- closing ------------------------------------------------------------------------------
    async def close(self, reason: str, abort: bool = True) -> None:
        """ABORT (if asked and still connected), disconnect, and say so downstream once."""
        if abort and self.connected and not self._aborting:
            await self._abort()
        client = self._client
        if client is not None:
            try:
                await asyncio.wait_for(client.disconnect(), self.settings.shutdown_timeout)
            except (BleakError, TimeoutError, EOFError, OSError) as exc:
                log.info("%s: disconnect: %s", self.address, exc)
        self._gone.set()
        self.cp.close(LinkError(f"{self.address}: closed ({reason})"))
        if not self._down_sent:
            self._down_sent = True
            self._emit(SessionDown(self.address, utc_ms_now(), reason))

    async def __aenter__(self) -> Session:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close("closed by the caller")

