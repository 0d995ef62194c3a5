"""The read side: InfluxQL query builders shared by the analysis and the dashboards.

InfluxQL is the one query language every current InfluxDB line answers: 1.x natively, 2.x (2.4+)
through the virtual DBRP mapping every bucket has, 3.x natively. So every query here is InfluxQL,
uses only what 1.6 already had (no Flux, no subqueries beyond that), and names measurements
qualified by retention policy as store/schema.py places them (`"raw"."posture"`,
`"forever"."exposure"`), or unqualified where the data sits in the default policy (2.x buckets,
or a single configured `retention_policy`): `Layout` decides.

Times are either the last N minutes (`time > now() - 15m`), an explicit UTC range (RFC 3339
strings, which every version parses), or Grafana's `$timeFilter` macro. Device names and other
literals are validated and quoted; nothing from a caller is pasted in raw.

Exposure rows of minutes worn less than `min_wear_s` carry no `strain_s` (docs/pipeline.md): they
are not scored. Share-of-time queries therefore also require `"wear_s" >= min_wear_s`, so those
minutes count neither as strain nor as good posture.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from neckline.config import InfluxConfig

RAW = "raw"
FOREVER = "forever"
# Where each measurement lives (store/schema.py MEASUREMENTS[...].dest, without importing the
# store and its HTTP clients into read-only tools).
DESTINATIONS: Mapping[str, str] = {
    "posture": RAW, "link": RAW, "exposure": FOREVER, "strain_episode": FOREVER,
    "device_event": FOREVER, "headache": FOREVER, "correlation": FOREVER, "posture_1m": FOREVER,
}
_INTERVAL = re.compile(r"^[1-9][0-9]{0,5}(s|m|h|d|w)$")
_TZ = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}$")
_GRAFANA_MACRO = re.compile(r"^\$[A-Za-z_]+$")


class QueryError(ValueError):
    """A query argument that cannot be used safely."""


def ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def literal(value: str) -> str:
    if any(c in value for c in "\n\r\x00"):
        raise QueryError(f"line breaks are not allowed in a query value: {value!r}")
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _interval(text: str) -> str:
    if not _INTERVAL.match(text) and not _GRAFANA_MACRO.match(text):
        raise QueryError(f"not an InfluxQL interval: {text!r} (e.g. 1m, 1h, 1d)")
    return text


@dataclass(frozen=True)
class Layout:
    """Database and retention policy per destination (None: the database's default policy)."""

    database: str = "neckline"
    policies: Mapping[str, str | None] = field(
        default_factory=lambda: {RAW: RAW, FOREVER: FOREVER}
    )

    @classmethod
    def from_config(cls, influx: InfluxConfig) -> Layout:
        if influx.dialect == "v2":
            # 2.4+: every bucket has a virtual DBRP mapping `bucket/autogen` (the default).
            return cls(influx.bucket or influx.database, {RAW: None, FOREVER: None})
        if influx.retention_policy:
            rp = influx.retention_policy
            return cls(influx.database, {RAW: rp, FOREVER: rp})
        return cls(influx.database)

    def measurement(self, name: str) -> str:
        if name not in DESTINATIONS:
            raise QueryError(f"unknown measurement {name!r}")
        rp = self.policies.get(DESTINATIONS[name])
        return f"{ident(rp)}.{ident(name)}" if rp else ident(name)


@dataclass(frozen=True)
class TimeRange:
    """A WHERE condition on time."""

    clause: str

    @classmethod
    def last(cls, *, minutes: int = 0, hours: int = 0, days: int = 0) -> TimeRange:
        total = minutes + 60 * hours + 1440 * days
        if total <= 0:
            raise QueryError("a time range must be positive")
        return cls(f"time > now() - {total}m")

    @classmethod
    def between(cls, start_ms: int, end_ms: int) -> TimeRange:
        if end_ms <= start_ms:
            raise QueryError("a time range must end after it starts")
        return cls(f"time >= {literal(rfc3339(start_ms))} AND time < {literal(rfc3339(end_ms))}")

    @classmethod
    def grafana(cls) -> TimeRange:
        return cls("$timeFilter")


def rfc3339(utc_ms: int) -> str:
    moment = datetime.fromtimestamp(utc_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc_ms % 1000:03d}Z"


def _where(time: TimeRange, device: str | None, *extra: str) -> str:
    parts = [time.clause]
    if device is not None:
        parts.append(f"{ident('device')} = {literal(device)}")
    parts.extend(extra)
    return " WHERE " + " AND ".join(parts)


def _tz(tz: str | None) -> str:
    if tz is None:
        return ""
    if not _TZ.match(tz):
        raise QueryError(f"not a time zone name: {tz!r}")
    return f" tz({literal(tz)})"


def _fields(names: Sequence[str]) -> str:
    return ", ".join(ident(n) for n in names)


POSTURE_FIELDS = ("flexion", "lateral", "rotation", "flexion_raw", "lateral_raw", "worn", "strain",
                  "seq", "boot", "flags", "backfill")
EXPOSURE_FIELDS = ("wear_s", "strain_s", "strain_load", "mean_flexion", "max_flexion", "episodes",
                   "alerts", "source")
EPISODE_FIELDS = ("end", "duration_s", "peak_flexion", "mean_flexion")
HEADACHE_FIELDS = ("severity", "type", "end", "aura", "medication", "notes", "needs_details",
                   "id")
EVENT_FIELDS = ("type", "code", "value", "detail", "event_seq")
LINK_FIELDS = ("state", "rssi", "battery_pct", "backlog", "spool_bytes", "rejected")


def posture(layout: Layout, device: str, time: TimeRange,
            fields: Sequence[str] = ("flexion", "lateral", "rotation", "strain", "worn")) -> str:
    """Raw posture samples of one device (e.g. the last 15 minutes for the live panel)."""
    return (f"SELECT {_fields(fields)} FROM {layout.measurement('posture')}"
            f"{_where(time, device)}")


def posture_recent(layout: Layout, device: str, minutes: int = 15) -> str:
    return posture(layout, device, TimeRange.last(minutes=minutes))


def posture_per_minute(layout: Layout, device: str, time: TimeRange) -> str:
    """The per-minute rollup (worn samples only), for ranges too long for raw samples."""
    names = _fields(("flexion_mean", "flexion_min", "flexion_max", "lateral_mean", "samples"))
    return f"SELECT {names} FROM {layout.measurement('posture_1m')}{_where(time, device)}"


def exposure(layout: Layout, device: str, time: TimeRange) -> str:
    """Per-minute exposure rows (host-computed, source 1, or the device's own, source 2)."""
    return (f"SELECT {_fields(EXPOSURE_FIELDS)} FROM {layout.measurement('exposure')}"
            f"{_where(time, device)}")


def strain_share(layout: Layout, device: str, time: TimeRange, interval: str = "1d", *,
                 min_wear_s: int = 30, tz: str | None = None) -> str:
    """Per interval: scored wear, strain seconds and the strain share in percent.

    Only minutes worn at least `min_wear_s` count; intervals without such minutes have no row.
    """
    if not 0 <= min_wear_s <= 60:
        raise QueryError("min_wear_s must be 0..60")
    scored = f"{ident('wear_s')} >= {min_wear_s}"
    return (
        f'SELECT sum("wear_s") AS "wear_s", sum("strain_s") AS "strain_s", '
        f'100 * sum("strain_s") / sum("wear_s") AS "strain_pct", '
        f'sum("strain_load") AS "strain_load", sum("episodes") AS "episodes" '
        f"FROM {layout.measurement('exposure')}"
        f"{_where(time, device, scored)}"
        f" GROUP BY time({_interval(interval)}) fill(none){_tz(tz)}"
    )


def daily_strain(layout: Layout, device: str, time: TimeRange, *, min_wear_s: int = 30,
                 tz: str | None = None) -> str:
    return strain_share(layout, device, time, "1d", min_wear_s=min_wear_s, tz=tz)


def hourly_strain(layout: Layout, device: str, time: TimeRange, *, min_wear_s: int = 30,
                  tz: str | None = None) -> str:
    return strain_share(layout, device, time, "1h", min_wear_s=min_wear_s, tz=tz)


def episodes(layout: Layout, device: str, time: TimeRange) -> str:
    """Sustained-strain episodes: start (time), end (UTC ms), duration, peak and mean flexion."""
    return (f"SELECT {_fields(EPISODE_FIELDS)} FROM {layout.measurement('strain_episode')}"
            f"{_where(time, device)}")


def episode_stats(layout: Layout, device: str, time: TimeRange, interval: str = "1d", *,
                  tz: str | None = None) -> str:
    return (
        f'SELECT count("duration_s") AS "episodes", sum("duration_s") AS "duration_s", '
        f'max("peak_flexion") AS "peak_flexion" FROM {layout.measurement("strain_episode")}'
        f"{_where(time, device)} GROUP BY time({_interval(interval)}) fill(none){_tz(tz)}"
    )


def headaches(layout: Layout, time: TimeRange, source: str | None = None) -> str:
    extra = [f"{ident('source')} = {literal(source)}"] if source else []
    return (f"SELECT {_fields(HEADACHE_FIELDS)} FROM {layout.measurement('headache')}"
            f"{_where(time, None, *extra)} GROUP BY {ident('source')}")


def device_events(layout: Layout, device: str, time: TimeRange,
                  types: Sequence[str] | None = None) -> str:
    extra: list[str] = []
    if types:
        extra.append("(" + " OR ".join(f"{ident('type')} = {literal(t)}" for t in types) + ")")
    return (f"SELECT {_fields(EVENT_FIELDS)} FROM {layout.measurement('device_event')}"
            f"{_where(time, device, *extra)}")


def link_status(layout: Layout, time: TimeRange | None = None, device: str | None = None) -> str:
    """The newest link status of every device (or one): state, battery, backlog, spool."""
    time = time or TimeRange.last(hours=1)
    picks = ", ".join(f"last({ident(f)}) AS {ident(f)}" for f in LINK_FIELDS)
    return (f"SELECT {picks} FROM {layout.measurement('link')}{_where(time, device)} "
            f"GROUP BY {ident('device')}")


def link_history(layout: Layout, device: str, time: TimeRange) -> str:
    return (f"SELECT {_fields(LINK_FIELDS)} FROM {layout.measurement('link')}"
            f"{_where(time, device)}")


def devices(layout: Layout) -> str:
    """The device tags that have posture data."""
    return (f"SHOW TAG VALUES FROM {layout.measurement('posture')} "
            f"WITH KEY = {ident('device')}")
