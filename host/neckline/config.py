"""Neckline's configuration: one TOML file, overridden by environment variables.

The file is optional; without it Neckline uses the private local InfluxDB. Every value is
validated when loaded and errors name the file, the key and what was expected.
"""

from __future__ import annotations

import os
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from neckline.errors import ConfigError
from neckline.paths import config_file

DIALECTS = ("v1", "v2")


@dataclass(frozen=True)
class InfluxConfig:
    """Where posture data goes. `url=None` means the embedded local influxd."""

    url: str | None = None
    dialect: str = "v1"
    database: str = "neckline"
    retention_policy: str | None = None
    org: str | None = None
    bucket: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    @property
    def external(self) -> bool:
        return self.url is not None


@dataclass(frozen=True)
class Config:
    influx: InfluxConfig = InfluxConfig()
    data_dir: Path | None = None
    source: Path | None = None


ENV_OVERRIDES: dict[str, str] = {
    "INFLUX_URL": "url",
    "INFLUX_DIALECT": "dialect",
    "INFLUX_DB": "database",
    "INFLUX_RP": "retention_policy",
    "INFLUX_ORG": "org",
    "INFLUX_BUCKET": "bucket",
    "INFLUX_USERNAME": "username",
    "INFLUX_PASSWORD": "password",
    "INFLUX_TOKEN": "token",
}


def load(path: Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Load the configuration file (if it exists) and apply environment overrides."""
    env = os.environ if env is None else env
    path = path or config_file()
    raw: dict[str, Any] = {}
    source: Path | None = None
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        source = path
    where = str(path)
    unknown = set(raw) - {"influx", "data_dir"}
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {sorted(unknown)}")
    influx = _influx_from(raw.get("influx", {}), where)
    overrides = {attr: env[name] for name, attr in ENV_OVERRIDES.items() if env.get(name)}
    if overrides:
        influx = _validated(replace(influx, **overrides), "environment")
    data_dir = raw.get("data_dir")
    if data_dir is not None and not isinstance(data_dir, str):
        raise ConfigError(f"{where}: data_dir must be a string path")
    return Config(
        influx=influx,
        data_dir=Path(data_dir).expanduser() if data_dir else None,
        source=source,
    )


def _influx_from(section: Any, where: str) -> InfluxConfig:
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: [influx] must be a table")
    known = {f for f in InfluxConfig.__dataclass_fields__}
    unknown = set(section) - known
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) in [influx]: {sorted(unknown)}")
    for key, value in section.items():
        if not isinstance(value, str):
            raise ConfigError(f"{where}: [influx].{key} must be a string, got {value!r}")
    return _validated(InfluxConfig(**section), where)


def _validated(influx: InfluxConfig, where: str) -> InfluxConfig:
    if influx.dialect not in DIALECTS:
        raise ConfigError(
            f"{where}: influx dialect must be one of {DIALECTS}, got {influx.dialect!r}"
        )
    if influx.url is not None:
        parsed = urllib.parse.urlparse(influx.url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(
                f"{where}: influx url must look like http://host:8086, got {influx.url!r}"
            )
    if influx.dialect == "v2" and not (influx.org and influx.bucket and influx.token):
        raise ConfigError(f"{where}: the v2 dialect needs org, bucket and token")
    return influx
