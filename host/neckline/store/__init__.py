"""Neckline's durable storage stage: line protocol, an on-disk spool, a batcher, two writers.

    encode_posture / encode_points  ->  Batcher.submit  ->  Spool (disk)  ->  Writer (HTTP)

See docs/storage.md for the guarantees and docs/schema.md for what is stored.
"""

from neckline.store.batcher import Batcher, StoreStatus
from neckline.store.errors import (
    BatcherClosed,
    LineProtocolError,
    SpoolFull,
    SpoolLocked,
    SpoolWriteError,
    StoreError,
)
from neckline.store.factory import writer_for
from neckline.store.lineproto import LineBatch, encode_line, split_lines
from neckline.store.posture_lines import encode_posture
from neckline.store.records import EncodeReport, Point, encode_point, encode_points
from neckline.store.schema import ensure_schema_v1, rollup_range
from neckline.store.spool import RecoveryReport, Spool, SpoolRecord
from neckline.store.writer import Outcome, Writer, WriteResult
from neckline.store.writer_v1 import V1Writer
from neckline.store.writer_v2 import V2Writer

__all__ = [
    "Batcher",
    "BatcherClosed",
    "EncodeReport",
    "LineBatch",
    "LineProtocolError",
    "Outcome",
    "Point",
    "RecoveryReport",
    "Spool",
    "SpoolFull",
    "SpoolLocked",
    "SpoolRecord",
    "SpoolWriteError",
    "StoreError",
    "StoreStatus",
    "V1Writer",
    "V2Writer",
    "WriteResult",
    "Writer",
    "encode_line",
    "encode_point",
    "encode_points",
    "encode_posture",
    "ensure_schema_v1",
    "rollup_range",
    "split_lines",
    "writer_for",
]
