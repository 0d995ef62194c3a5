"""Where Neckline keeps its files. Everything is local to this user by default."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "neckline"


def data_dir() -> Path:
    """Root for local data (InfluxDB files, spool). `NECKLINE_DATA_DIR` overrides it."""
    override = os.environ.get("NECKLINE_DATA_DIR")
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir(APP, appauthor=False))


def config_file() -> Path:
    """The TOML configuration file. `NECKLINE_CONFIG` overrides it."""
    override = os.environ.get("NECKLINE_CONFIG")
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir(APP, appauthor=False)) / "neckline.toml"


def local_influx_dir() -> Path:
    return data_dir() / "influxdb"


def ensure_private_dir(path: Path) -> Path:
    """Create `path` (and parents) readable by this user only: it holds health data."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path
