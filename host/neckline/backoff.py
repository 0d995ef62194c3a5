"""Exponential back-off with jitter and a cap, for anything that retries: the store's sender
when the server is down or refusing, the link's reconnect loop, the service's scans."""

from __future__ import annotations

import random


class Backoff:
    """Delays grow base, 2*base, 4*base ... up to `cap`; each is jittered down by up to half.

    The jitter keeps several Neckline hosts, wearers or restarts from retrying in lockstep;
    keeping the lower half out means a delay never collapses to nothing.
    """

    def __init__(self, base: float = 0.5, cap: float = 60.0, rng: random.Random | None = None):
        if base <= 0 or cap < base:
            raise ValueError("back-off needs 0 < base <= cap")
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        ceiling = min(self.cap, self.base * 2.0 ** min(self.attempt, 62))
        self.attempt += 1
        return ceiling * self._rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.attempt = 0
