"""Timings and policies of the BLE link, in one place (docs/link.md explains each)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LinkSettings:
    # finding and connecting
    scan_timeout: float = 20.0  # wait this long for the wearer's advertisement per attempt
    connect_timeout: float = 45.0  # one whole establish_connection call, its retries included
    connect_attempts: int = 3  # establish_connection's max_attempts
    gatt_timeout: float = 10.0  # one read, write or subscription
    allow_pairing: bool = False  # pair an unbonded wearer during connect (`neckline pair` does)
    # control point
    cp_timeout: float = 5.0  # response to a simple request
    backfill_idle_timeout: float = 15.0  # a backfill may run long, but never this long silent
    max_ranges_per_round: int = 32  # REQUEST_RAW per backfill round; the rest next round
    backfill_interval: float | None = 300.0  # look for new gaps this often while connected
    # watchdog
    silence_timeout: float = 20.0  # nothing received this long: probe with GET_STATUS
    probe_timeout: float = 5.0  # no answer to the probe either: the link is dead
    tick: float = 0.5  # how often a connected session checks its state
    shutdown_timeout: float = 3.0  # ABORT and disconnect at shutdown, each
    # reconnecting
    backoff_base: float = 1.0  # first delay after a failure (jittered down by up to half)
    backoff_cap: float = 60.0  # longest delay; also the retry interval for refused wearers
    stable_after: float = 30.0  # a session up this long resets the back-off

    def __post_init__(self) -> None:
        for name in ("scan_timeout", "connect_timeout", "gatt_timeout", "cp_timeout",
                     "backfill_idle_timeout", "silence_timeout", "probe_timeout", "tick",
                     "shutdown_timeout", "backoff_base"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.backoff_cap < self.backoff_base:
            raise ValueError("backoff_cap must not be below backoff_base")
        if self.connect_attempts < 1 or self.max_ranges_per_round < 1:
            raise ValueError("connect_attempts and max_ranges_per_round must be at least 1")
        if self.backfill_interval is not None and self.backfill_interval <= 0:
            raise ValueError("backfill_interval must be positive or None")
