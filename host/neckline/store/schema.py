"""Neckline's InfluxDB schema: names, field types, destinations, and the 1.x retention set-up.

docs/schema.md is the prose version of this module; change both together.

Every point is written with precision=ms. Each measurement goes to one *destination*, a short
alias the writers map to a retention policy (v1) or a bucket (v2): only the high-rate `posture`
stream and the operational `link` status live in `raw` (short retention); everything that is
already per-minute or rarer goes to `forever`, together with the `posture_1m` rollup that a
continuous query computes from `raw.posture`.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from neckline.influxql import NO_AUTH, Credentials, query
from neckline.store.errors import StoreError

log = logging.getLogger(__name__)

# -- names ---------------------------------------------------------------------------------------

POSTURE = "posture"
EXPOSURE = "exposure"
STRAIN_EPISODE = "strain_episode"
DEVICE_EVENT = "device_event"
LINK = "link"
HEADACHE = "headache"
CORRELATION = "correlation"
POSTURE_1M = "posture_1m"

RAW = "raw"
FOREVER = "forever"
DESTINATIONS = (RAW, FOREVER)

DEFAULT_DATABASE = "neckline"
DEFAULT_RAW_DURATION = "30d"

POSTURE_FLOAT_FIELDS = ("flexion", "lateral", "rotation", "flexion_raw", "lateral_raw")
POSTURE_INT_FIELDS = ("seq", "boot", "flags", "worn", "strain", "backfill")

EVENT_TYPES = frozenset(
    {"strain_start", "strain_end", "headache_marker", "calibration", "buffer_overflow",
     "low_battery"}
)
HEADACHE_SOURCES = frozenset({"cli", "device", "import"})
LINK_STATES = frozenset({"scanning", "connecting", "connected", "backfilling", "disconnected"})


class FieldType(enum.Enum):
    FLOAT = "float"
    INTEGER = "integer"
    STRING = "string"


F, INT, S = FieldType.FLOAT, FieldType.INTEGER, FieldType.STRING


@dataclass(frozen=True)
class MeasurementSpec:
    name: str
    dest: str
    tags: tuple[str, ...]
    fields: Mapping[str, FieldType]
    # Allowed values of enum-like tags; a tag not listed here is free-form (but low-cardinality).
    tag_values: Mapping[str, frozenset[str]]


def _spec(
    name: str,
    dest: str,
    tags: tuple[str, ...],
    fields: dict[str, FieldType],
    tag_values: dict[str, frozenset[str]] | None = None,
) -> MeasurementSpec:
    return MeasurementSpec(name, dest, tags, fields, tag_values or {})


MEASUREMENTS: dict[str, MeasurementSpec] = {
    spec.name: spec
    for spec in (
        _spec(
            POSTURE, RAW, ("device",),
            {**{f: F for f in POSTURE_FLOAT_FIELDS}, **{f: INT for f in POSTURE_INT_FIELDS}},
        ),
        _spec(
            EXPOSURE, FOREVER, ("device",),
            {"wear_s": F, "strain_s": F, "strain_load": F, "mean_flexion": F,
             "max_flexion": F, "episodes": INT, "alerts": INT, "source": INT},
        ),
        _spec(
            STRAIN_EPISODE, FOREVER, ("device",),
            {"end": INT, "duration_s": F, "peak_flexion": F, "mean_flexion": F},
        ),
        _spec(
            DEVICE_EVENT, FOREVER, ("device", "type"),
            {"code": INT, "value": F, "detail": S, "event_seq": INT},
            {"type": EVENT_TYPES},
        ),
        _spec(
            LINK, RAW, ("device",),
            {"state": S, "rssi": INT, "battery_pct": INT, "backlog": INT, "spool_bytes": INT,
             "rejected": INT},
        ),
        _spec(
            HEADACHE, FOREVER, ("source",),
            {"severity": INT, "type": S, "end": INT, "aura": INT, "medication": S, "notes": S,
             "needs_details": INT, "id": S},
            {"source": HEADACHE_SOURCES},
        ),
        _spec(
            CORRELATION, FOREVER, ("window",),
            {"odds_ratio": F, "ci_low": F, "ci_high": F, "p_value": F, "p_adjusted": F,
             "n_cases": INT, "sufficient": INT, "verdict": S, "alternative": S},
        ),
        _spec(
            POSTURE_1M, FOREVER, ("device",),
            {"flexion_mean": F, "flexion_min": F, "flexion_max": F, "lateral_mean": F,
             "lateral_min": F, "lateral_max": F, "samples": INT},
        ),
    )
}


def destination(measurement: str) -> str:
    try:
        return MEASUREMENTS[measurement].dest
    except KeyError:
        raise StoreError(f"unknown measurement {measurement!r}") from None


# -- 1.x retention policies and the continuous query --------------------------------------------

POSTURE_ROLLUP_CQ = "posture_1m_v1"  # bump the suffix when the query changes; old ones are dropped
_CQ_FAMILY = "posture_1m"
# Recompute the last 15 minutes every minute so that samples arriving a little late (a BLE
# reconnect) are still rolled up; older backfill is rolled up by `rollup_range`.
CQ_RESAMPLE = "RESAMPLE EVERY 1m FOR 15m"

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d|w)")
_UNIT_SECONDS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
    "d": 86400.0, "w": 604800.0,
}


def duration_seconds(text: str) -> float:
    """Seconds in an InfluxQL duration (`30d`, `720h0m0s`); `INF` and `0s` mean forever (0)."""
    if text.upper() == "INF":
        return 0.0
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise StoreError(f"not an InfluxDB duration: {text!r}")
    return total


def quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def posture_rollup_select(database: str, time_range: str = "") -> str:
    """The SELECT ... INTO behind `posture_1m` (worn samples only), optionally limited in time."""
    db = quote_ident(database)
    return (
        'SELECT mean("flexion") AS "flexion_mean", min("flexion") AS "flexion_min", '
        'max("flexion") AS "flexion_max", mean("lateral") AS "lateral_mean", '
        'min("lateral") AS "lateral_min", max("lateral") AS "lateral_max", '
        'count("flexion") AS "samples" '
        f'INTO {db}.{quote_ident(FOREVER)}.{quote_ident(POSTURE_1M)} '
        f'FROM {db}.{quote_ident(RAW)}.{quote_ident(POSTURE)} '
        f'WHERE "worn" = 1{time_range} GROUP BY time(1m), "device"'
    )


def posture_rollup_cq(database: str) -> str:
    return (
        f"CREATE CONTINUOUS QUERY {quote_ident(POSTURE_ROLLUP_CQ)} ON {quote_ident(database)} "
        f"{CQ_RESAMPLE} BEGIN {posture_rollup_select(database)} END"
    )


def _rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Like influxql.series_values, but a series without "values" (SHOW DATABASES on an empty
    # server) is an empty list rather than a KeyError.
    rows: list[dict[str, Any]] = []
    for series in results[0].get("series", []) if results else []:
        for values in series.get("values", []):
            rows.append({**dict(zip(series["columns"], values, strict=True)),
                         **series.get("tags", {})})
    return rows


def ensure_schema_v1(
    url: str,
    database: str = DEFAULT_DATABASE,
    *,
    raw_duration: str = DEFAULT_RAW_DURATION,
    credentials: Credentials = NO_AUTH,
) -> list[str]:
    """Create or fix the database, `raw` (DEFAULT) and `forever` (INF) policies and the rollup CQ.

    Idempotent: it reads what exists and only issues the statements needed, which it returns.
    Needs admin rights on a server with authentication. Blocking; run it in a thread from asyncio.
    """
    wanted_raw = duration_seconds(raw_duration)
    if raw_duration.upper() == "INF" or wanted_raw < 3600:
        raise StoreError(
            f"raw retention must be a finite duration of at least 1h: {raw_duration!r}"
        )
    db = quote_ident(database)
    done: list[str] = []

    def run(statement: str) -> None:
        query(url, statement, credentials=credentials)
        log.info("influx schema: %s", statement)
        done.append(statement)

    names = {row["name"] for row in _rows(query(url, "SHOW DATABASES", credentials=credentials))}
    if database not in names:
        run(f"CREATE DATABASE {db}")
    policies = {
        row["name"]: row
        for row in _rows(query(url, f"SHOW RETENTION POLICIES ON {db}", credentials=credentials))
    }
    raw = policies.get(RAW)
    if raw is None:
        run(f"CREATE RETENTION POLICY {quote_ident(RAW)} ON {db} DURATION {raw_duration} "
            "REPLICATION 1 DEFAULT")
    elif duration_seconds(raw["duration"]) != wanted_raw or not raw["default"]:
        run(f"ALTER RETENTION POLICY {quote_ident(RAW)} ON {db} DURATION {raw_duration} DEFAULT")
    forever = policies.get(FOREVER)
    if forever is None:
        run(f"CREATE RETENTION POLICY {quote_ident(FOREVER)} ON {db} DURATION INF REPLICATION 1")
    elif duration_seconds(forever["duration"]) != 0.0:
        run(f"ALTER RETENTION POLICY {quote_ident(FOREVER)} ON {db} DURATION INF")
    present: set[str] = set()
    for result in query(url, "SHOW CONTINUOUS QUERIES", credentials=credentials):
        for series in result.get("series", []):
            if series.get("name") == database:
                present.update(str(v[0]) for v in series.get("values", []))
    for name in sorted(present):
        if name.startswith(_CQ_FAMILY) and name != POSTURE_ROLLUP_CQ:
            run(f"DROP CONTINUOUS QUERY {quote_ident(name)} ON {db}")
    if POSTURE_ROLLUP_CQ not in present:
        run(posture_rollup_cq(database))
    return done


def rollup_range(
    url: str,
    database: str,
    start_ms: int,
    end_ms: int,
    *,
    credentials: Credentials = NO_AUTH,
) -> int:
    """Recompute `posture_1m` for [start, end) after a backfill older than the CQ's window.

    The range is widened to whole minutes. Rewriting a minute overwrites it (same tags and time),
    so running this twice is harmless. Returns the number of rollup points written.
    """
    start = start_ms - start_ms % 60_000
    end = end_ms + (-end_ms) % 60_000
    if end <= start:
        return 0
    statement = posture_rollup_select(database, f" AND time >= {start}ms AND time < {end}ms")
    rows = _rows(query(url, statement, db=database, credentials=credentials))
    return int(sum(row.get("written", 0) for row in rows))
