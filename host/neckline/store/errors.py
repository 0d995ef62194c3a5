"""Typed errors of the storage stage."""

from __future__ import annotations

from neckline.errors import NecklineError


class StoreError(NecklineError):
    """Something in the storage stage failed in a way the caller should hear about."""


class LineProtocolError(StoreError, ValueError):
    """A point cannot be written as InfluxDB line protocol (bad name, type or value)."""


class SpoolFull(StoreError):
    """The spool reached its size limit; the batch was refused (backpressure) and counted."""


class SpoolLocked(StoreError):
    """Another process already owns this spool directory."""


class SpoolWriteError(StoreError):
    """Appending to the spool failed (disk full, I/O error); the batch was not stored."""


class BatcherClosed(StoreError):
    """The batcher no longer accepts data because it is shutting down."""
