"""Keep every wearer connected, forever: one asyncio task per wearer, reconnecting with back-off.

    async with LinkSupervisor(sink=queue.put_nowait, planner=pipeline, finder=finder,
                              settings=LinkSettings(), strain_config=config) as links:
        links.add("C0:DE:00:00:00:01")
        await stop_requested.wait()
    # leaving the block: ABORT running backfills, disconnect, wait for every task

Each wearer's task loops: wait for its advertisement (the shared WearerFinder), open a Session,
serve it until the link is lost, silent (the watchdog) or the supervisor stops, then wait a
jittered, capped, exponentially growing delay and start again. The delay resets once a session
stayed up `stable_after` seconds. Failures are caught per wearer, logged and counted in its
WearerState, so one wearer that is out of range, refuses connections or trips a bug never stalls
another. Wearers that retrying cannot fix (another protocol version, not paired, not a Neckline
device) are retried at the longest delay, with the reason logged once as an error and kept in
their state.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

from bleak.exc import BleakError
from bleak_retry_connector import close_stale_connections_by_address

from neckline.backoff import Backoff
from neckline.link.allowlist import normalise_address
from neckline.link.controlpoint import LinkError
from neckline.link.discovery import WearerFinder
from neckline.link.planner import BackfillPlanner
from neckline.link.records import Sink
from neckline.link.session import BondBroken, NotBonded, Session
from neckline.link.settings import LinkSettings
from neckline.protocol import ProtocolError
from neckline.strain_config import StrainConfig

log = logging.getLogger(__name__)

T = TypeVar("T")

# Retrying soon will not help: the user has to act (update, pair). Retried at backoff_cap.
REFUSALS: tuple[type[Exception], ...] = (ProtocolError, NotBonded, BondBroken)
# The ordinary ways a BLE connection attempt or link fails.
LINK_FAILURES: tuple[type[BaseException], ...] = (
    LinkError, BleakError, TimeoutError, OSError, EOFError,
)


class _Stopped(Exception):
    pass


@dataclass
class WearerState:
    """What the supervisor knows about one wearer (for status output and tests)."""

    address: str
    state: str = "idle"  # searching, connecting, connected, waiting, stopped
    attempts: int = 0
    sessions: int = 0  # sessions that came up
    failures: int = 0
    not_seen: int = 0  # attempts where no advertisement was heard in time
    watchdog_trips: int = 0
    last_error: str | None = None
    last_down: str | None = None
    delay: float = 0.0


class LinkSupervisor:
    def __init__(
        self,
        *,
        sink: Sink,
        planner: BackfillPlanner | None = None,
        settings: LinkSettings | None = None,
        strain_config: StrainConfig | None = None,
        finder: WearerFinder | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.sink = sink
        self.planner = planner
        self.settings = settings or LinkSettings()
        self.strain_config = strain_config
        self.finder = finder or WearerFinder()
        self._rng = rng or random.Random()
        self._stop = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.wearers: dict[str, WearerState] = {}
        self.sessions: dict[str, Session] = {}  # the open session of each connected wearer

    # --- lifetime -----------------------------------------------------------------------------
    async def __aenter__(self) -> LinkSupervisor:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def add(self, address: str) -> WearerState:
        """Start looking after a wearer (idempotent). Needs a running event loop."""
        key = normalise_address(address)
        if self._stop.is_set():
            raise RuntimeError("the supervisor is stopped")
        if key not in self._tasks:
            state = WearerState(key)
            self.wearers[key] = state
            self._tasks[key] = asyncio.create_task(self._wearer(state), name=f"wearer-{key}")
        return self.wearers[key]

    async def stop(self) -> None:
        """Stop every wearer: ABORT running backfills, disconnect, wait for the tasks.

        A task that does not finish within its shutdown budget is cancelled.
        """
        self._stop.set()
        tasks = list(self._tasks.values())
        if not tasks:
            return
        budget = 3 * self.settings.shutdown_timeout + 1.0
        _, pending = await asyncio.wait(tasks, timeout=budget)
        for task in pending:
            log.warning("%s did not stop within %.1f s; cancelling it", task.get_name(), budget)
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    # --- one wearer ---------------------------------------------------------------------------
    async def _unless_stopped(self, work: Awaitable[T]) -> T:
        task = asyncio.ensure_future(work)
        stopper = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if task.done():
            return task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise _Stopped

    async def _wearer(self, w: WearerState) -> None:
        settings = self.settings
        backoff = Backoff(settings.backoff_base, settings.backoff_cap, self._rng)
        try:
            while not self._stop.is_set():
                refused = await self._attempt(w, backoff)
                w.delay = settings.backoff_cap if refused else backoff.next()
                w.state = "waiting"
                log.debug("%s: next attempt in %.2f s", w.address, w.delay)
                await self._unless_stopped(asyncio.sleep(w.delay))
        except _Stopped:
            pass
        finally:
            w.state = "stopped"

    async def _release_stale_link(self, w: WearerState) -> None:
        """Disconnect a link BlueZ still holds to this wearer from a host process that died.

        BlueZ keeps a connection when the process that made it goes away, and a connected wearer
        does not advertise, so without this a restarted host would never find it again.
        """
        try:
            await self._unless_stopped(close_stale_connections_by_address(w.address))
        except (BleakError, OSError, TimeoutError) as exc:
            log.debug("%s: could not check for a stale connection: %s", w.address, exc)

    async def _attempt(self, w: WearerState, backoff: Backoff) -> bool:
        """One find-connect-serve cycle. Returns True when the wearer refused (see REFUSALS)."""
        settings = self.settings
        w.attempts += 1
        w.state = "searching"
        started = time.monotonic()
        sighting = await self._unless_stopped(self.finder.find(w.address, settings.scan_timeout))
        if sighting is None:
            w.failures += 1
            heard = self.finder.last_sighting(w.address)
            if heard is not None and heard.seen_mono >= started:  # in range, but not allowed
                reason = (f"heard, but not allowed: not bonded and not on the allow-list "
                          f"(`neckline pair {w.address}`)")
                if w.last_error != reason:
                    log.error("%s: %s", w.address, reason)
                w.last_error = reason
                return True
            w.not_seen += 1
            w.last_error = f"not heard advertising within {settings.scan_timeout:g} s"
            log.info("%s: %s", w.address, w.last_error)
            await self._release_stale_link(w)
            return False
        session = Session(
            sighting.device, sink=self.sink, planner=self.planner, settings=settings,
            strain_config=self.strain_config, name=sighting.name,
        )
        reason = "ended"
        try:
            w.state = "connecting"
            await self._unless_stopped(session.open())
            w.state = "connected"
            w.sessions += 1
            self.sessions[w.address] = session
            up_at = time.monotonic()
            reason = await session.serve(self._stop)
            if reason.startswith("watchdog"):
                w.watchdog_trips += 1
            if time.monotonic() - up_at >= settings.stable_after:
                backoff.reset()
            w.last_down = reason
            log.info("%s: session ended: %s", w.address, reason)
            return False
        except _Stopped:
            reason = "shutdown"
            raise
        except REFUSALS as exc:
            w.failures += 1
            reason = str(exc)
            if w.last_error != reason:
                log.error("%s: %s", w.address, exc)
            w.last_error = reason
            return True
        except LINK_FAILURES as exc:
            w.failures += 1
            reason = f"{type(exc).__name__}: {exc}"
            w.last_error = reason
            log.warning("%s: link failed: %s", w.address, reason)
            return False
        except Exception as exc:  # a bug must not end this wearer's care, nor others'
            w.failures += 1
            reason = f"unexpected {type(exc).__name__}: {exc}"
            w.last_error = reason
            log.exception("%s: unexpected error in the link", w.address)
            return False
        finally:
            self.sessions.pop(w.address, None)
            # serve() already sent ABORT when stopping; after a failure it would only delay.
            await session.close(reason, abort=False)
