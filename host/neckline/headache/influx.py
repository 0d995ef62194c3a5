"""Where headaches and analysis results are read from and written to: one InfluxDB target.

The target is the configured server (`[influx] url` or INFLUX_URL) or else Neckline's private
local influxd, which must be running (`neckline influx start`). Writes go through the store
layer's schema-checked encoder and the configured writer, synchronously: a command that says
"saved" has had the server's answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from neckline import config as config_mod
from neckline.config import Config, InfluxConfig
from neckline.errors import NecklineError
from neckline.influxd import LocalInfluxd
from neckline.influxql import Credentials, InfluxQueryError, query, series_values
from neckline.paths import local_influx_dir
from neckline.queries import Layout
from neckline.store import Point, encode_points, ensure_schema_v1, writer_for
from neckline.store.errors import StoreError
from neckline.store.schema import FOREVER, quote_ident
from neckline.store.writer import Outcome


@dataclass(frozen=True)
class InfluxTarget:
    url: str
    influx: InfluxConfig
    local: bool = False

    @property
    def database(self) -> str:
        if self.influx.dialect == "v2":
            return self.influx.bucket or self.influx.database
        return self.influx.database

    @property
    def credentials(self) -> Credentials:
        return Credentials(self.influx.username, self.influx.password, self.influx.token)

    @property
    def layout(self) -> Layout:
        return Layout.from_config(self.influx)

    def source(self, measurement: str) -> str:
        """`"rp"."measurement"` for InfluxQL (2.x: the bucket's DBRP default policy)."""
        return self.layout.measurement(measurement)

    def rows(self, statement: str) -> list[dict[str, Any]]:
        try:
            return series_values(query(self.url, statement, db=self.database,
                                       credentials=self.credentials))
        except InfluxQueryError as exc:
            # Nothing was ever written there yet: an empty log, not an error.
            if "database not found" in str(exc) or "retention policy not found" in str(exc):
                return []
            raise

    def run(self, statement: str) -> None:
        query(self.url, statement, db=self.database, credentials=self.credentials)


def resolve_target(cfg: Config | None = None) -> InfluxTarget:
    """The configured InfluxDB, or the running private one; a clear error if there is none."""
    cfg = cfg or config_mod.load()
    if cfg.influx.url:
        return InfluxTarget(cfg.influx.url, cfg.influx)
    root = cfg.data_dir / "influxdb" if cfg.data_dir else local_influx_dir()
    state = LocalInfluxd(root).running()
    if state is None:
        raise NecklineError(
            "no InfluxDB to talk to: start the private one with `neckline influx start`, "
            "or set INFLUX_URL (or [influx] url in the config file)"
        )
    return InfluxTarget(state.url, cfg.influx, local=True)


def ensure_ready(target: InfluxTarget) -> None:
    """Make sure the database and its `forever` policy exist before the first write (v1).

    Only what is missing is created, by the project's own schema set-up, so a server that the
    pipeline already prepared is left exactly as it is.
    """
    if target.influx.dialect != "v1" or target.influx.retention_policy:
        return
    try:
        rows = series_values(query(
            target.url, f"SHOW RETENTION POLICIES ON {quote_ident(target.database)}",
            credentials=target.credentials,
        ))
    except InfluxQueryError as exc:
        if "database not found" not in str(exc):
            raise
        rows = []
    if not any(row.get("name") == FOREVER for row in rows):
        try:
            ensure_schema_v1(target.url, target.database, credentials=target.credentials)
        except (StoreError, InfluxQueryError) as exc:
            raise NecklineError(f"cannot prepare database {target.database!r}: {exc}") from exc


def write_points(target: InfluxTarget, points: Iterable[Point]) -> int:
    """Write the points now; raise NecklineError if any is refused or the server says no."""
    report = encode_points(points)
    if report.refused:
        reasons = "; ".join(reason for _, reason in report.refused[:5])
        raise NecklineError(f"{len(report.refused)} point(s) could not be encoded: {reasons}")
    if not report.batches:
        return 0
    ensure_ready(target)
    try:
        writer = writer_for(target.influx, target.url)
    except StoreError as exc:
        raise NecklineError(str(exc)) from exc

    async def send() -> int:
        written = 0
        try:
            for batch in report.batches:
                result = await writer.write(batch.dest, batch.body)
                if result.outcome is not Outcome.OK:
                    raise NecklineError(
                        f"InfluxDB at {target.url} did not store the data ({result.describe()})"
                    )
                written += batch.lines
        finally:
            await writer.close()
        return written

    return asyncio.run(send())
