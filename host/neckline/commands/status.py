"""`neckline status`: what the running service is doing, from the status file it keeps.

`neckline run` rewrites `<data dir>/status.json` (0600) every few seconds: per wearer the link
state, the newest sample placed, the backlog (samples the device still owes), samples waiting in
order, rejected payloads; and the store's spool and delivery counts. This command reads it, so it
needs no connection to the service and never disturbs it. Exit status: 0 running, 3 not running,
1 status unreadable or stale.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from neckline import config as config_mod
from neckline.paths import data_dir as default_data_dir

STATUS_FILE = "status.json"
STATUS_VERSION = 1
NOT_RUNNING = 3


def status_path(data_dir: Path) -> Path:
    return data_dir / STATUS_FILE


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "status",
        help="show what `neckline run` is doing",
        description=(
            "Per wearer: link state, last sample, backlog still on the device, samples waiting "
            "for their turn, rejected payloads; and the spool and delivery counts. Read from the "
            "status file the service updates every few seconds."
        ),
    )
    parser.add_argument("--config", type=Path, default=None, help="configuration file")
    parser.add_argument("--json", action="store_true", help="print the raw status document")
    parser.set_defaults(func=_run)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_status(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StatusUnreadable(f"status file {path} is unreadable: {exc}") from exc
    if not isinstance(data, dict) or data.get("version") != STATUS_VERSION:
        raise StatusUnreadable(f"status file {path} has an unknown format")
    return data


class StatusUnreadable(Exception):
    pass


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} days ago"


def _when(utc_ms: int | None, now: float) -> str:
    if utc_ms is None:
        return "never"
    moment = datetime.fromtimestamp(utc_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{moment}Z ({_ago(now - utc_ms / 1000)})"


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _uptime(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 86400}d {s % 86400 // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def format_status(doc: dict[str, Any], now: float | None = None) -> str:
    now = time.time() if now is None else now
    lines: list[str] = []
    age = now - float(doc["updated_at"])
    lines.append(
        f"neckline run: {doc['state']} (pid {doc['pid']}, up {_uptime(now - doc['started_at'])}),"
        f" status updated {_ago(age)}"
    )
    influx = doc.get("influx") or {}
    where = "local" if influx.get("local") else "external"
    lines.append(f"InfluxDB: {influx.get('url')} ({where}, {influx.get('dialect')}), database "
                 f"{influx.get('database')}; schema {influx.get('schema')}")
    store = doc.get("store")
    if store:
        lines.append(
            f"Store: {store['state']}; spool {_size(store['spool_bytes'])} of "
            f"{_size(store['spool_max_bytes'])}, {store['pending_lines']:,} lines waiting; "
            f"written {store['written_points']:,}, rejected {store['rejected_points']:,}, "
            f"refused {store['refused_points']:,}, retries {store['retries']:,}"
        )
        if store.get("last_error"):
            lines.append(f"  last store error: {store['last_error']}")
    pipeline = doc.get("pipeline") or {}
    devices: dict[str, Any] = pipeline.get("devices", {})
    wearers: dict[str, Any] = doc.get("wearers") or {}
    addresses = sorted(set(devices) | set(wearers))
    if not addresses:
        scan = doc.get("scan")
        if scan is None:
            lines.append("No wearers (the link is off: --no-link).")
        elif scan.get("last_error"):
            lines.append(f"No wearers yet; scanning fails: {scan['last_error']}")
        else:
            lines.append(f"No wearers yet; scanning ({scan.get('scans', 0)} scans so far). "
                         "Pair one with `neckline pair ADDRESS`.")
        return "\n".join(lines)
    header = ("DEVICE", "ADDRESS", "LINK", "LAST SAMPLE", "BACKLOG", "WAITING", "REJECTED")
    rows: list[tuple[str, ...]] = [header]
    for address in addresses:
        dev = devices.get(address, {})
        wearer = wearers.get(address, {})
        link = wearer.get("state") or dev.get("link", {}).get("state", "unknown")
        if link == "connected" and dev.get("backlog"):
            link = "backfilling"
        rows.append((
            dev.get("device", "-"), address, link,
            _when(dev.get("last_sample_utc_ms"), now),
            f"{dev.get('backlog', 0):,}", f"{dev.get('held', 0):,}",
            f"{dev.get('rejected_total', 0):,}",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    for address in addresses:
        dev = devices.get(address, {})
        wearer = wearers.get(address, {})
        notes = []
        if dev.get("rejected"):
            notes.append("rejected " + ", ".join(f"{k}={v}" for k, v in dev["rejected"].items()))
        if wearer.get("last_error"):
            notes.append(f"link: {wearer['last_error']}")
        battery = dev.get("link", {}).get("battery_pct")
        if battery is not None:
            notes.append(f"battery {battery} %")
        if notes:
            lines.append(f"  {dev.get('device', address)}: " + "; ".join(notes))
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    path = status_path(cfg.data_dir or default_data_dir())
    try:
        doc = read_status(path)
    except StatusUnreadable as exc:
        print(f"neckline status: {exc}", file=sys.stderr)
        return 1
    if doc is None:
        print(f"neckline is not running (no status file at {path}); start it with `neckline "
              "run` or `systemctl --user start neckline`")
        return NOT_RUNNING
    if args.json:
        print(json.dumps(doc, indent=2, sort_keys=True))
    now = time.time()
    updated = datetime.fromtimestamp(float(doc["updated_at"]), UTC).strftime("%Y-%m-%d %H:%M:%S")
    if doc.get("state") == "stopped":
        if not args.json:
            print(f"neckline is not running (stopped cleanly at {updated}Z)")
        return NOT_RUNNING
    if not _alive(int(doc["pid"])):
        if not args.json:
            print(f"neckline is not running (pid {doc['pid']} is gone; it last reported at "
                  f"{updated}Z, state {doc.get('state')})")
        return NOT_RUNNING
    if args.json:
        return 0
    print(format_status(doc, now))
    stale = now - float(doc["updated_at"]) > 3 * float(doc.get("interval_s", 5)) + 10
    if stale:
        print(f"warning: the status has not been updated since {updated}Z; the service may be "
              "stuck", file=sys.stderr)
        return 1
    return 0
