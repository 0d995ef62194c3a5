"""A one-line progress display for long jobs: device backfills, spool replay, imports.

On a terminal it redraws a bar in place, at most `redraw_s` apart:

    spool replay [##########..........]  50%  25,000/50,000 lines  12,400/s  ETA 0:00:02

Anywhere else (a service's journal, a pipe) it writes the same text as a plain line every
`every_s` seconds and once at the end, so logs are not flooded with carriage returns. No
dependencies; the clock and the stream can be replaced for tests.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO


def _count(n: float) -> str:
    return f"{n:,.0f}"


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        unit: str = "",
        stream: TextIO | None = None,
        tty: bool | None = None,
        width: int = 20,
        redraw_s: float = 0.1,
        every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.width = width
        self.redraw_s = redraw_s if self.tty else every_s
        self.clock = clock
        self.done = 0
        self.started = clock()
        self._last_draw = -float("inf")
        self._closed = False
        self._drawn = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def update(self, done: int, total: int | None = None) -> None:
        """Set the amount done (and optionally a new total); redraws when due."""
        if total is not None:
            self.total = total
        self.done = max(0, done)
        now = self.clock()
        if now - self._last_draw >= self.redraw_s:
            self._draw(now)

    def advance(self, n: int = 1) -> None:
        self.update(self.done + n)

    def render(self, now: float | None = None) -> str:
        now = self.clock() if now is None else now
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        unit = f" {self.unit}" if self.unit else ""
        parts = [self.label]
        if self.total:
            frac = min(1.0, self.done / self.total)
            filled = round(frac * self.width)
            parts.append("[" + "#" * filled + "." * (self.width - filled) + "]")
            parts.append(f"{frac * 100:3.0f}%")
            parts.append(f"{_count(self.done)}/{_count(self.total)}{unit}")
        else:
            parts.append(f"{_count(self.done)}{unit}")
        parts.append(f"{_count(rate)}/s")
        if self.total and rate > 0 and self.done < self.total:
            parts.append(f"ETA {_duration((self.total - self.done) / rate)}")
        elif self._closed:
            parts.append(f"in {_duration(elapsed)}")
        return "  ".join(parts)

    def _draw(self, now: float) -> None:
        self._last_draw = now
        text = self.render(now)
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._drawn = True

    def close(self, message: str | None = None) -> None:
        """Draw the final state (and an optional closing message) and end the line."""
        if self._closed:
            return
        self._closed = True
        now = self.clock()
        text = self.render(now) + (f"  {message}" if message else "")
        if self.tty:
            self.stream.write("\r\x1b[K" + text + "\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
