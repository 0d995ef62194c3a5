"""Neckline's configuration: one TOML file, overridden by environment variables.

The file is optional; without it Neckline uses the private local InfluxDB and the defaults below.
Every value is validated when loaded and errors name the file (or "environment"), the section,
the key and what was expected. docs/operations.md lists every key.

Sections: [influx] (where data goes), [strain] (the strain definition shared with the device),
[devices] (which wearers, and their names in the data), [link] (BLE timings), [store] (spool and
batching), [filters] (posture low-pass and spike rejection), [pipeline] (ordering and status),
[logging]. Sections mirror the settings classes of the modules that use them; this module stays
light (no numpy, scipy, bleak or aiohttp), so `neckline status` and `neckline config` start fast.
"""

from __future__ import annotations

import os
import re
import tomllib
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from neckline.errors import ConfigError
from neckline.paths import config_file
from neckline.strain_config import StrainConfig, StrainConfigError

DIALECTS = ("v1", "v2")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


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


_ADDRESS = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")
# Device tags go into line protocol and InfluxQL; a plain charset keeps them portable everywhere.
_TAG = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def normalise_address(address: str) -> str:
    """Upper-case colon form of a Bluetooth address; ValueError for anything else."""
    value = address.strip().upper().replace("-", ":")
    if not _ADDRESS.match(value):
        raise ValueError(f"not a Bluetooth address: {address!r} (expected AA:BB:CC:DD:EE:FF)")
    return value


def default_device_tag(address: str) -> str:
    """The `device` tag of a wearer without an alias: stable, derived from its address."""
    return "neckline-" + normalise_address(address).replace(":", "").lower()


@dataclass(frozen=True)
class DevicesConfig:
    """Which wearers `neckline run` looks after and what they are called in the data."""

    allow: tuple[str, ...] = ()  # addresses to connect to, besides the allow-list file
    aliases: Mapping[str, str] = field(default_factory=dict)  # address -> device tag
    connect_bonded: bool = True  # also connect to any Neckline device BlueZ is bonded with
    scan_every_s: float = 60.0  # look for bonded wearers this often (connect_bonded) ...
    scan_window_s: float = 10.0  # ... listening this long each time

    def tag(self, address: str) -> str:
        key = normalise_address(address)
        return self.aliases.get(key) or default_device_tag(key)


@dataclass(frozen=True)
class LinkConfig:
    """The [link] section: the knobs of neckline.link.LinkSettings that make sense to change.

    Field names and defaults equal LinkSettings' (a test keeps them in step); backfill_interval 0
    turns periodic backfill rounds off.
    """

    scan_timeout: float = 20.0
    connect_timeout: float = 45.0
    connect_attempts: int = 3
    gatt_timeout: float = 10.0
    cp_timeout: float = 5.0
    backfill_idle_timeout: float = 15.0
    max_ranges_per_round: int = 32
    backfill_interval: float = 300.0
    silence_timeout: float = 20.0
    probe_timeout: float = 5.0
    tick: float = 0.5
    shutdown_timeout: float = 3.0
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    stable_after: float = 30.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "backfill_interval":
                if value < 0:
                    raise ValueError("backfill_interval must be >= 0 (0 turns it off)")
            elif f.name in ("connect_attempts", "max_ranges_per_round"):
                if value < 1:
                    raise ValueError(f"{f.name} must be at least 1")
            elif value <= 0:
                raise ValueError(f"{f.name} must be positive")
        if self.backoff_cap < self.backoff_base:
            raise ValueError("backoff_cap must not be below backoff_base")

    def settings_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for neckline.link.LinkSettings."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        if not values["backfill_interval"]:
            values["backfill_interval"] = None
        return values


_DURATION = re.compile(r"^(\d+(ns|us|µs|ms|s|m|h|d|w))+$")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600,
           "d": 86400, "w": 604800}


def _duration_s(text: str) -> float:
    return sum(int(n) * _UNIT_S[u] for n, u in re.findall(r"(\d+)(ns|us|µs|ms|s|m|h|d|w)", text))


@dataclass(frozen=True)
class StoreConfig:
    """The [store] section: the spool and the batcher (docs/storage.md)."""

    spool_dir: Path | None = None  # default: <data_dir>/spool
    spool_max_mb: int = 512
    fsync_interval_s: float = 0.0  # 0: fdatasync every batch; T: group commit every T s
    batch_max_lines: int = 5000
    batch_max_delay_s: float = 1.0
    close_timeout_s: float = 10.0  # at shutdown, keep sending this long; the rest stays spooled
    raw_retention: str = "30d"  # 1.x retention of the `raw` policy (posture, link)

    def __post_init__(self) -> None:
        if self.spool_max_mb < 1:
            raise ValueError("spool_max_mb must be at least 1")
        if self.fsync_interval_s < 0:
            raise ValueError("fsync_interval_s must be >= 0")
        if self.batch_max_lines < 1:
            raise ValueError("batch_max_lines must be at least 1")
        if self.batch_max_delay_s <= 0 or self.close_timeout_s <= 0:
            raise ValueError("batch_max_delay_s and close_timeout_s must be positive")
        if not _DURATION.match(self.raw_retention) or _duration_s(self.raw_retention) < 3600:
            raise ValueError(
                f"raw_retention must be an InfluxDB duration of at least 1h such as 30d, got "
                f"{self.raw_retention!r}"
            )


@dataclass(frozen=True)
class FiltersConfig:
    """The [filters] section: neckline.filters.FilterConfig's tunable values (same names)."""

    cutoff_hz: float = 2.0
    order: int = 2
    spike_window: int = 5
    spike_sigma: float = 3.0
    spike_min_deg: float = 15.0
    max_gap_factor: float = 1.5

    def __post_init__(self) -> None:
        if self.cutoff_hz <= 0 or self.order < 1:
            raise ValueError("cutoff_hz must be positive and order at least 1")
        if self.spike_window < 3:
            raise ValueError("spike_window must be at least 3")
        if self.spike_min_deg < 0 or self.spike_sigma < 0 or self.max_gap_factor < 1:
            raise ValueError("spike thresholds must be >= 0 and max_gap_factor >= 1")


@dataclass(frozen=True)
class PipelineConfig:
    """The [pipeline] section (docs/pipeline.md)."""

    batch_interval_s: float = 1.0  # gather link records this long before a processing step
    hole_wait_s: float = 600.0  # wait for a missing range this long (while data flows) at most
    max_held_samples: int = 200_000  # samples held behind a missing range before giving up on it
    status_interval_s: float = 5.0  # status file and `link` points this often

    def __post_init__(self) -> None:
        if self.batch_interval_s < 0 or self.hole_wait_s < 0:
            raise ValueError("batch_interval_s and hole_wait_s must be >= 0")
        if self.max_held_samples < 1:
            raise ValueError("max_held_samples must be at least 1")
        if self.status_interval_s <= 0:
            raise ValueError("status_interval_s must be positive")


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "info"
    format: str = "text"  # text: key=value lines; json: one JSON object per line

    def __post_init__(self) -> None:
        if self.level not in LOG_LEVELS:
            raise ValueError(f"level must be one of {LOG_LEVELS}, got {self.level!r}")
        if self.format not in LOG_FORMATS:
            raise ValueError(f"format must be one of {LOG_FORMATS}, got {self.format!r}")


@dataclass(frozen=True)
class Config:
    influx: InfluxConfig = InfluxConfig()
    data_dir: Path | None = None
    source: Path | None = None
    strain: StrainConfig = field(default_factory=StrainConfig)
    min_wear_s: int = 30  # minutes worn less than this are marked, never scored
    devices: DevicesConfig = DevicesConfig()
    link: LinkConfig = LinkConfig()
    store: StoreConfig = StoreConfig()
    filters: FiltersConfig = FiltersConfig()
    pipeline: PipelineConfig = PipelineConfig()
    logging: LoggingConfig = LoggingConfig()


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
# Other environment overrides: variable -> (section, key). Values are parsed like TOML scalars.
ENV_SETTINGS: dict[str, tuple[str, str]] = {
    "NECKLINE_LOG_LEVEL": ("logging", "level"),
    "NECKLINE_LOG_FORMAT": ("logging", "format"),
    "NECKLINE_FSYNC_INTERVAL": ("store", "fsync_interval_s"),
}
SECRET_KEYS = frozenset({"password", "token"})
SECTIONS = ("influx", "strain", "devices", "link", "store", "filters", "pipeline", "logging")


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
    unknown = set(raw) - {*SECTIONS, "data_dir"}
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {sorted(unknown)}")
    for name in SECTIONS:
        if name in raw and not isinstance(raw[name], dict):
            raise ConfigError(f"{where}: [{name}] must be a table")
    influx = _influx_from(raw.get("influx", {}), where)
    overrides = {attr: env[name] for name, attr in ENV_OVERRIDES.items() if env.get(name)}
    if overrides:
        influx = _validated(replace(influx, **overrides), "environment")
    data_dir = raw.get("data_dir")
    if data_dir is not None and not isinstance(data_dir, str):
        raise ConfigError(f"{where}: data_dir must be a string path")

    sections = {name: dict(raw.get(name, {})) for name in SECTIONS if name != "influx"}
    env_sections: dict[str, dict[str, Any]] = {}
    for var, (section, key) in ENV_SETTINGS.items():
        if env.get(var):
            env_sections.setdefault(section, {})[key] = _env_value(env[var])

    def build(name: str, make: Callable[[dict[str, Any], str], Any]) -> Any:
        value = make(dict(sections[name]), where)
        extra = env_sections.get(name)
        if extra:
            names = [v for v, (s, _) in ENV_SETTINGS.items() if s == name and env.get(v)]
            value = make({**sections[name], **extra}, "environment " + ", ".join(names))
        return value

    strain, min_wear_s = _strain_from(sections["strain"], where)
    return Config(
        influx=influx,
        data_dir=Path(data_dir).expanduser() if data_dir else None,
        source=source,
        strain=strain,
        min_wear_s=min_wear_s,
        devices=_devices_from(sections["devices"], where),
        link=build("link", lambda s, w: _plain(LinkConfig, "link", s, w)),
        store=build("store", _store_from),
        filters=build("filters", lambda s, w: _plain(FiltersConfig, "filters", s, w)),
        pipeline=build("pipeline", lambda s, w: _plain(PipelineConfig, "pipeline", s, w)),
        logging=build("logging", lambda s, w: _plain(LoggingConfig, "logging", s, w)),
    )


def _env_value(text: str) -> Any:
    """An environment value as TOML would read it when it is a number, else the string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


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


# --- typed sections ---------------------------------------------------------------------------
def _kind_of(cls: type[Any], name: str) -> type:
    """The TOML type a field takes, from its default value."""
    default = cls.__dataclass_fields__[name].default
    return bool if isinstance(default, bool) else type(default)


def _check_type(section: str, key: str, value: Any, kind: type, where: str) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is bool and isinstance(value, bool):
        return value
    if kind is not bool and isinstance(value, bool):
        raise ConfigError(f"{where}: [{section}].{key} must be {_kind_name(kind)}, got {value!r}")
    if not isinstance(value, kind):
        raise ConfigError(f"{where}: [{section}].{key} must be {_kind_name(kind)}, got {value!r}")
    return value


def _kind_name(kind: type) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        kind, kind.__name__
    )


def _plain(cls: type[Any], section: str, values: dict[str, Any], where: str) -> Any:
    """A settings dataclass whose fields are plain scalars, checked key by key."""
    known = set(cls.__dataclass_fields__)
    unknown = set(values) - known
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) in [{section}]: {sorted(unknown)}; known: {sorted(known)}"
        )
    kwargs = {k: _check_type(section, k, v, _kind_of(cls, k), where) for k, v in values.items()}
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ConfigError(f"{where}: [{section}] {exc}") from exc


def _store_from(values: dict[str, Any], where: str) -> StoreConfig:
    spool = values.pop("spool_dir", None)
    if spool is not None and not isinstance(spool, str):
        raise ConfigError(f"{where}: [store].spool_dir must be a string path, got {spool!r}")
    store: StoreConfig = _plain(StoreConfig, "store", values, where)
    if spool:
        store = replace(store, spool_dir=Path(spool).expanduser())
    return store


def _strain_from(values: dict[str, Any], where: str) -> tuple[StrainConfig, int]:
    min_wear = values.pop("min_wear_s", 30)
    if isinstance(min_wear, bool) or not isinstance(min_wear, int) or not 0 <= min_wear <= 60:
        raise ConfigError(f"{where}: [strain].min_wear_s must be an integer 0..60, got "
                          f"{min_wear!r}")
    known = set(StrainConfig.__dataclass_fields__)
    unknown = set(values) - known
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) in [strain]: {sorted(unknown)}; known: "
            f"{sorted(known | {'min_wear_s'})}"
        )
    try:
        return StrainConfig(**values), min_wear
    except StrainConfigError as exc:
        raise ConfigError(f"{where}: [strain] {exc}") from exc


def _devices_from(values: dict[str, Any], where: str) -> DevicesConfig:
    unknown = set(values) - {"allow", "aliases", "connect_bonded", "scan_every_s",
                             "scan_window_s"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) in [devices]: {sorted(unknown)}")
    scan: dict[str, float] = {}
    for key in ("scan_every_s", "scan_window_s"):
        if key in values:
            value = _check_type("devices", key, values[key], float, where)
            if value <= 0:
                raise ConfigError(f"{where}: [devices].{key} must be positive, got {value!r}")
            scan[key] = value
    if scan.get("scan_window_s", 10.0) > scan.get("scan_every_s", 60.0):
        raise ConfigError(f"{where}: [devices].scan_window_s must not exceed scan_every_s")
    allow_raw = values.get("allow", [])
    if not isinstance(allow_raw, list) or not all(isinstance(a, str) for a in allow_raw):
        raise ConfigError(f"{where}: [devices].allow must be a list of addresses")
    aliases_raw = values.get("aliases", {})
    if not isinstance(aliases_raw, dict):
        raise ConfigError(f'{where}: [devices].aliases must be a table of "address" = "name"')
    bonded = values.get("connect_bonded", True)
    if not isinstance(bonded, bool):
        raise ConfigError(f"{where}: [devices].connect_bonded must be true or false")
    try:
        allow = tuple(dict.fromkeys(normalise_address(a) for a in allow_raw))
    except ValueError as exc:
        raise ConfigError(f"{where}: [devices].allow: {exc}") from exc
    aliases: dict[str, str] = {}
    for address, name in aliases_raw.items():
        try:
            key = normalise_address(address)
        except ValueError as exc:
            raise ConfigError(f"{where}: [devices].aliases: {exc}") from exc
        if not isinstance(name, str) or not _TAG.match(name):
            raise ConfigError(
                f"{where}: [devices].aliases: name for {key} must be 1-64 letters, digits, "
                f"'_', '.' or '-', got {name!r}"
            )
        aliases[key] = name
    taken: dict[str, str] = {}
    for key, name in aliases.items():
        if name in taken:
            raise ConfigError(f"{where}: [devices].aliases: {key} and {taken[name]} are both "
                              f"called {name!r}")
        taken[name] = key
    return DevicesConfig(allow=allow, aliases=aliases, connect_bonded=bonded, **scan)


# --- showing it -------------------------------------------------------------------------------
def effective(cfg: Config) -> dict[str, Any]:
    """The whole effective configuration as plain data, secrets masked (for `config check`)."""

    def plain(obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(obj):
            value = getattr(obj, f.name)
            if f.name in SECRET_KEYS and value:
                value = "********"
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = value
        return out

    return {
        "source": str(cfg.source) if cfg.source else None,
        "data_dir": str(cfg.data_dir) if cfg.data_dir else None,
        "influx": plain(cfg.influx),
        "strain": {**plain(cfg.strain), "min_wear_s": cfg.min_wear_s},
        "devices": plain(cfg.devices),
        "link": plain(cfg.link),
        "store": plain(cfg.store),
        "filters": plain(cfg.filters),
        "pipeline": plain(cfg.pipeline),
        "logging": plain(cfg.logging),
    }
