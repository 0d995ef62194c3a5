"""Build the writer that `[influx]` in the configuration asks for."""

from __future__ import annotations

from neckline.config import InfluxConfig
from neckline.store.errors import StoreError
from neckline.store.schema import DESTINATIONS
from neckline.store.writer import Writer
from neckline.store.writer_v1 import V1Writer
from neckline.store.writer_v2 import V2Writer


def writer_for(config: InfluxConfig, url: str, *, timeout: float = 30.0) -> Writer:
    """A writer for `url` (the configured one, or the local influxd's when `config.url` is None).

    v1: each destination is the retention policy of that name (`raw`, `forever`, as
    `ensure_schema_v1` creates them) unless `retention_policy` is set, which then receives
    everything. v2: every destination goes to `bucket` (see docs/schema.md for a two-bucket
    layout on 2.x).
    """
    if config.dialect == "v1":
        rps: dict[str, str | None] | None = None
        if config.retention_policy:
            rps = {d: config.retention_policy for d in DESTINATIONS}
        return V1Writer(
            url, config.database, retention_policies=rps, username=config.username,
            password=config.password, token=config.token, timeout=timeout,
        )
    if config.dialect == "v2":
        if not (config.org and config.bucket and config.token):
            raise StoreError("the v2 dialect needs org, bucket and token")
        return V2Writer(url, config.org, config.token, config.bucket, timeout=timeout)
    raise StoreError(f"unknown InfluxDB dialect {config.dialect!r}")
