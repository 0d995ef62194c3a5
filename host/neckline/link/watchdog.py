"""The link watchdog: a connection that has gone quiet must prove it is alive, or it is dropped.

BlueZ can keep a connection "up" long after the wearer stopped talking (a wedged firmware, a
radio that still acknowledges at the link layer), and bleak then reports nothing. Live samples
normally arrive several times a second, so silence is suspicious, but not proof: the stream
period may be long. After `silence` seconds without any payload the session sends GET_STATUS;
if the device does not answer within the probe timeout the link counts as dead and the
supervisor reconnects. Any payload, the probe's answer included, feeds the watchdog.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class Watchdog:
    def __init__(self, silence: float, probe_timeout: float) -> None:
        if silence <= 0 or probe_timeout <= 0:
            raise ValueError("watchdog timings must be positive")
        self.silence = silence
        self.probe_timeout = probe_timeout
        self.last = time.monotonic()
        self.probes = 0
        self.trips = 0

    def feed(self, mono: float | None = None) -> None:
        self.last = time.monotonic() if mono is None else mono

    def silent_for(self) -> float:
        return time.monotonic() - self.last

    def stretch(self, period_s: float) -> None:
        """Never call a link silent within three of the device's own sample periods."""
        self.silence = max(self.silence, 3.0 * period_s)

    async def check(self, probe: Callable[[], Awaitable[None]]) -> str | None:
        """None while the link is alive; otherwise why it is considered dead."""
        quiet = self.silent_for()
        if quiet < self.silence:
            return None
        self.probes += 1
        try:
            await asyncio.wait_for(probe(), self.probe_timeout)
        except Exception as exc:  # a timeout or any failure of the probe: no answer
            self.trips += 1
            why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return (
                f"watchdog: nothing received for {quiet:.1f} s and no answer to GET_STATUS "
                f"within {self.probe_timeout:g} s ({why})"
            )
        self.feed()
        return None
