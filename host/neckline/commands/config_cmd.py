"""`neckline config check|path`: validate the configuration, show where it lives.

`check` loads the file and the environment overrides exactly as `neckline run` does, prints the
effective configuration (secrets masked) as TOML, and checks the surroundings the service needs:
the allow-list file, the data directory, and an `influxd` binary when no external server is set.
Problems with the configuration itself are errors (exit 78, naming file, section and key);
problems with the surroundings are warnings (exit 0, or 1 with --strict).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from typing import Any

from neckline import config as config_mod
from neckline.errors import ConfigError
from neckline.paths import config_file
from neckline.paths import data_dir as default_data_dir


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "config",
        help="check the configuration or show where it lives",
        description="Validate Neckline's configuration file and environment overrides.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check", help="validate the file and environment; print the effective configuration"
    )
    check.add_argument("--config", type=Path, default=None, help="configuration file")
    check.add_argument("--json", action="store_true", help="print the configuration as JSON")
    check.add_argument("--strict", action="store_true", help="treat warnings as errors")
    check.set_defaults(func=_check)
    path = actions.add_parser("path", help="print where the configuration and data live")
    path.set_defaults(func=_path)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{" + items + "}"
    raise TypeError(f"cannot show {value!r} as TOML")


def to_toml(effective: dict[str, Any]) -> str:
    lines: list[str] = []
    if effective.get("data_dir"):
        lines.append(f"data_dir = {_toml_value(effective['data_dir'])}")
    for section, values in effective.items():
        if not isinstance(values, dict):
            continue
        lines.append(f"\n[{section}]")
        for key, value in values.items():
            if value is None:
                lines.append(f"# {key} = (not set)")
            else:
                lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines).lstrip("\n")


def environment_warnings(cfg: config_mod.Config) -> list[str]:
    warnings: list[str] = []
    from neckline.link.allowlist import AllowList, default_path

    try:
        listed = AllowList().addresses()
    except ConfigError as exc:
        warnings.append(str(exc))
        listed = []
    root = cfg.data_dir or default_data_dir()
    probe = root if root.exists() else next((p for p in root.parents if p.exists()), Path("/"))
    if not os.access(probe, os.W_OK):
        warnings.append(f"data directory {root} is not writable by this user")
    if cfg.influx.url is None:
        binary = os.environ.get("NECKLINE_INFLUXD") or "influxd"
        if shutil.which(binary) is None:
            warnings.append(
                "no external InfluxDB is configured and `influxd` is not installed: install it "
                "(Debian: apt-get install influxdb) or set [influx] url / INFLUX_URL"
            )
    if not listed and not cfg.devices.allow and not cfg.devices.connect_bonded:
        warnings.append(
            f"no wearer can be connected: the allow-list ({default_path()}) and [devices] allow "
            "are empty and connect_bonded is false"
        )
    for address in cfg.devices.aliases:
        if address not in cfg.devices.allow and address not in listed:
            warnings.append(f"[devices].aliases names {address}, which is not allowed (yet); "
                            "fine if it is bonded or will be paired")
    return warnings


def _check(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)  # a ConfigError is printed by the CLI (exit 78)
    effective = config_mod.effective(cfg)
    source = cfg.source or (args.config or config_file())
    warnings = environment_warnings(cfg)
    if args.json:
        print(json.dumps({"config": effective, "warnings": warnings}, indent=2))
    else:
        where = f"{source}" if cfg.source else f"{source} (absent: defaults)"
        print(f"# configuration OK: {where}")
        overrides = [v for v in (*config_mod.ENV_OVERRIDES, *config_mod.ENV_SETTINGS)
                     if os.environ.get(v)]
        if overrides:
            print(f"# environment overrides: {', '.join(overrides)}")
        print(to_toml(effective))
        for warning in warnings:
            print(f"warning: {warning}")
    return 1 if warnings and args.strict else 0


def _path(args: argparse.Namespace) -> int:
    from neckline.link.allowlist import default_path

    path = config_file()
    cfg = config_mod.load(path)
    print(f"config file: {path}{'' if path.exists() else ' (absent: defaults)'}")
    print(f"allow-list:  {default_path()}")
    print(f"data dir:    {cfg.data_dir or default_data_dir()}")
    return 0
