"""The Grafana dashboards: every query runs on a real influxd, the JSON type-checks, uids agree.

The database is filled the way `neckline demo` fills it: a week of the simulated wearer through
the real pipeline (neckline.demo.history: decode, align, filter, strain, spool, V1Writer into the
RPs of ensure_schema_v1, rollups), the diary as the headache store writes it, and a real
correlation result. Added here because the history has no device or link side: the last 15
minutes of posture and link status (what `neckline run` writes while connected) and alert
counts (which come from the device's summary records).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from neckline.analysis.correlation import Headaches, correlate
from neckline.analysis.exposure import from_arrays
from neckline.analysis.results import correlation_points
from neckline.config import default_device_tag
from neckline.demo.history import HistoryDevice, HistoryOptions, load_history
from neckline.headache.model import HeadacheEntry
from neckline.headache.store import entry_point
from neckline.influxd import InfluxdState
from neckline.influxql import query
from neckline.pipeline import PipelineSettings
from neckline.sim.headache import HeadacheConfig
from neckline.sim.person import PersonData, simulate_person
from neckline.store import Point, V1Writer, encode_points, ensure_schema_v1, rollup_range
from neckline.vsim import wearer_address

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
DATASOURCE_FILES = [
    GRAFANA / "provisioning" / "datasources" / "neckline-influxdb1.yaml",
    GRAFANA / "provisioning" / "datasources" / "neckline-influxdb2.yaml.example",
]
ADDRESS = wearer_address(1)
DEVICE = default_device_tag(ADDRESS)
DAYS = 7

# Columns every query must return (time first), keyed by dashboard file, panel title, refId.
# A panel added without an entry here fails `test_every_query_is_expected`.
EXPECTED: dict[str, dict[str, list[str]]] = {
    "live-posture.json": {
        "Flexion now/A": ["time", "flexion"],
        "Lateral bend now/A": ["time", "lateral"],
        "Link state/A": ["time", "state"],
        "Battery/A": ["time", "battery_pct"],
        "Backlog/A": ["time", "backlog"],
        "Flexion and lateral bend, last 15 minutes/A": ["time", "flexion", "lateral"],
        "Strain state/A": ["time", "strain", "worn"],
        "Link state/A#2": ["time", "state"],
        "Battery, backlog and spool, last 15 minutes/A": ["time", "battery_pct"],
        "Battery, backlog and spool, last 15 minutes/B": ["time", "backlog", "spool_bytes"],
        "$device": ["key", "value"],
    },
    "daily-weekly.json": {
        "Strain share of wear time, per hour/A": ["time", "strain_pct"],
        "Strain share of wear time, per day/A": ["time", "strain_pct", "wear_h"],
        "Longest strain bout/A": ["time", "longest_s"],
        "Alerts/A": ["time", "alerts"],
        "Longest bout and alerts, per day/A": ["time", "longest_min", "bouts"],
        "Longest bout and alerts, per day/B": ["time", "alerts"],
        "Strain-load trend/A": ["time", "strain_load"],
        "Strain-load trend/B": ["time", "strain_load_7d"],
        "Strain share by hour × weekday/A": ["time", "strain_pct"],
        "$device": ["key", "value"],
    },
    "headaches.json": {
        "Strain load, with headaches/A": ["time", "strain_load"],
        "Observed strain hours in the windows before/A": ["time", "strain_h_2_6h"],
        "Observed strain hours in the windows before/B": ["time", "strain_h_6_12h"],
        "Observed strain hours in the windows before/C": ["time", "strain_h_12_24h"],
        "Observed strain hours in the windows before/D": ["time", "strain_h_24_48h"],
        "Headaches/A": ["time", "severity", "type", "aura", "medication", "notes"],
        "Latest correlation: odds ratio per window/A":
            ["time", "odds_ratio", "ci_low", "ci_high", "p_adjusted", "n_cases"],
        "Enough data for a verdict?/A": ["time", "sufficient"],
        "Data-sufficiency verdict/A": ["time", "verdict", "n_cases"],
        "@Headaches": ["time", "type", "severity"],
        "$device": ["key", "value"],
    },
}


def _dashboard(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _queries(dash: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(key, InfluxQL) of every panel target, template variable and annotation."""
    seen: set[str] = set()
    for panel in dash["panels"]:
        for target in panel["targets"]:
            key = f"{panel['title']}/{target['refId']}"
            if key in seen:
                key += "#2"
            seen.add(key)
            yield key, target["query"]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            yield f"${var['name']}", var["query"]
    for anno in dash["annotations"]["list"]:
        if anno.get("builtIn"):
            continue
        yield f"@{anno['name']}", anno["query"]


def expand(q: str, *, interval: str = "1m", time_filter: str = "time > now() - 30d") -> str:
    """What Grafana sends for one panel: macros and variables replaced (device = the demo's)."""
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[interval[-1]] * int(interval[:-1])
    text = (q.replace("$timeFilter", time_filter)
            .replace("$__interval_ms", str(seconds * 1000))
            .replace("$__interval", interval)
            .replace("$device", re.escape(DEVICE))
            .replace("$tz", "Europe/Berlin"))
    assert not re.search(r"\$[\w{]", text), f"unexpanded macro in {text}"
    return text


# -- the data ---------------------------------------------------------------------------------


def _alerts(person: PersonData) -> Iterator[Point]:
    """Alert counts as device summary records carry them: one per strain bout held 60 s."""
    obs = person.observed
    in_strain = np.append(obs.strain_s >= 30, False)
    run_start: int | None = None
    for i, strained in enumerate(in_strain):
        if strained and run_start is None:
            run_start = i
        elif not strained and run_start is not None:
            if float(obs.strain_s[run_start:i].sum()) >= 60:
                yield Point("exposure", int(obs.minute_epoch_s[run_start]) * 1000,
                            {"device": DEVICE}, {"alerts": 1})
            run_start = None


def _headaches(person: PersonData) -> Iterator[Point]:
    diary = person.diary
    for onset, severity, kind in zip(diary.onset_epoch_s.tolist(), diary.severity.tolist(),
                                     diary.kind.tolist(), strict=True):
        yield entry_point(HeadacheEntry(
            id=f"sim-{onset}", onset=datetime.fromtimestamp(onset, UTC), severity=int(severity),
            type=str(kind), source="import"))


def _live(now_ms: int) -> Iterator[Point]:
    """The last 16 minutes of a connected wearer: 2 Hz posture, link status every 5 s."""
    start = now_ms - 16 * 60_000
    for k in range(16 * 60 * 2):
        t = start + k * 500
        flexion = 18.0 + 12.0 * math.sin(k / 240.0)
        yield Point("posture", t, {"device": DEVICE}, {
            "flexion": flexion, "lateral": 4.0 * math.cos(k / 90.0), "rotation": 0.0,
            "flexion_raw": round(flexion, 2), "lateral_raw": 0.0, "seq": k, "boot": 1,
            "flags": 0, "worn": 1, "strain": int(flexion > 25.0), "backfill": 0,
        })
    states = ["connected"] * 150 + ["disconnected"] * 6 + ["connecting", "backfilling"]
    for k, state in enumerate(states * 2):
        t = start + k * 5_000
        if t > now_ms:
            break
        yield Point("link", t, {"device": DEVICE}, {
            "state": state, "rssi": -60, "battery_pct": 80 - k // 40,
            "backlog": 300 if state == "backfilling" else 0, "spool_bytes": 0, "rejected": 0,
        })


def _write(url: str, db: str, points: Iterator[Point]) -> None:
    report = encode_points(points)
    assert not report.refused, report.refused[:3]

    async def run() -> None:
        writer = V1Writer(url, db)
        try:
            for batch in report.batches:
                result = await writer.write(batch.dest, batch.body)
                assert result.status == 204, result
        finally:
            await writer.close()

    asyncio.run(run())


@pytest.fixture(scope="module")
def demo_db(influxd: InfluxdState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = "grafana_demo"
    ensure_schema_v1(influxd.url, db)
    now = datetime.now(UTC)
    start = (now - timedelta(days=DAYS)).replace(hour=0, minute=0, second=0, microsecond=0)
    planted = HeadacheConfig(log_or_per_hour=float(np.log(2.5)), lag_h=(6.0, 12.0))
    person = simulate_person(7, start, days=DAYS, headache=planted)
    assert len(person.diary) > 0
    device = HistoryDevice(ADDRESS, "Neckline-0001", HistoryOptions(), 7)
    loaded = asyncio.run(load_history(person, 7, device, influxd.url, db,
                                      tmp_path_factory.mktemp("history"), PipelineSettings()))
    assert loaded.samples > 0 and loaded.rejected_records == 0
    _write(influxd.url, db, _headaches(person))
    _write(influxd.url, db, _alerts(person))
    now_ms = int(now.timestamp() * 1000)
    _write(influxd.url, db, _live(now_ms))
    rollup_range(influxd.url, db, now_ms - 20 * 60_000, now_ms)
    obs = person.observed
    analysis = correlate(
        from_arrays(start, obs.wear_s, obs.strain_s),
        Headaches(person.diary.onset_epoch_s.astype(np.int64),
                  tuple(str(k) for k in person.diary.kind)),
        now=now,
    )
    _write(influxd.url, db, iter(correlation_points(analysis)))
    yield db
    query(influxd.url, f'DROP DATABASE "{db}"')


# -- the tests --------------------------------------------------------------------------------


def test_dashboards_exist() -> None:
    assert [p.name for p in DASHBOARDS] == sorted(EXPECTED)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_query_is_expected(path: Path) -> None:
    keys = [key for key, _ in _queries(_dashboard(path))]
    assert sorted(keys) == sorted(EXPECTED[path.name])


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_query_returns_demo_data(path: Path, influxd: InfluxdState, demo_db: str) -> None:
    dash = _dashboard(path)
    # The live dashboard looks at the last 15 minutes; the others at their default range.
    live = dash["time"]["from"] == "now-15m"
    time_filter = "time > now() - 15m" if live else "time > now() - 30d"
    interval = "5s" if live else "1h"
    for key, raw in _queries(dash):
        results = query(influxd.url, expand(raw, interval=interval, time_filter=time_filter),
                        db=demo_db)
        series = results[0].get("series", [])
        assert series, f"{path.name} {key}: no series for {raw}"
        for s in series:
            assert s["columns"] == EXPECTED[path.name][key], f"{path.name} {key}"
            assert s["values"], f"{path.name} {key}: empty series"
            values = [v for row in s["values"] for v in row[1:]]
            assert any(v is not None for v in values), f"{path.name} {key}: only nulls"
        if key.startswith("$"):
            assert [row[1] for s in series for row in s["values"]] == [DEVICE]


def test_device_filter_excludes_other_devices(influxd: InfluxdState, demo_db: str) -> None:
    dash = _dashboard(GRAFANA / "dashboards" / "daily-weekly.json")
    q = dict(_queries(dash))["Strain-load trend/A"].replace("$device", "nobody")
    results = query(influxd.url, expand(q), db=demo_db)
    assert not results[0].get("series")


def test_correlation_table_has_one_row_per_window(influxd: InfluxdState, demo_db: str) -> None:
    dash = _dashboard(GRAFANA / "dashboards" / "headaches.json")
    q = dict(_queries(dash))["Latest correlation: odds ratio per window/A"]
    series = query(influxd.url, expand(q), db=demo_db)[0]["series"]
    windows = sorted(s["tags"]["window"] for s in series)
    assert windows == sorted(["0-2h", "2-6h", "6-12h", "12-24h", "24-48h"])
    assert all(len(s["values"]) == 1 for s in series)


def _walk_datasources(node: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield where, value
            else:
                yield from _walk_datasources(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk_datasources(value, f"{where}[{i}]")


def _yaml_values(path: Path, key: str) -> list[str]:
    """Values of `key:` lines in a small provisioning YAML file (no YAML library needed)."""
    pattern = re.compile(rf"^\s*-?\s*{re.escape(key)}:\s*['\"]?([^'\"#\n]*?)['\"]?\s*(#.*)?$", re.M)
    return [m.group(1) for m in pattern.finditer(path.read_text(encoding="utf-8"))]


def test_datasource_uids_are_consistent() -> None:
    uids: set[str] = set()
    for path in DATASOURCE_FILES:
        assert _yaml_values(path, "type") == ["influxdb"], path
        assert _yaml_values(path, "access") == ["proxy"], path
        assert _yaml_values(path, "version") in ([], ["InfluxQL"]), path
        found = _yaml_values(path, "uid")
        assert len(found) == 1, path
        uids.update(found)
    assert len(uids) == 1
    (uid,) = uids
    for path in DASHBOARDS:
        dash = _dashboard(path)
        refs = list(_walk_datasources(dash))
        assert refs, path.name
        for where, ref in refs:
            if ref == {"type": "grafana", "uid": "-- Grafana --"}:
                assert where.startswith("/annotations"), where
                continue
            assert ref == {"type": "influxdb", "uid": uid}, f"{path.name}{where}: {ref}"
        for panel in dash["panels"]:
            assert "datasource" in panel and all("datasource" in t for t in panel["targets"])
        assert 39 <= dash["schemaVersion"] <= 41
        assert "${DS_" not in path.read_text(encoding="utf-8")


def test_dashboard_provider_points_at_the_dashboards() -> None:
    provider = GRAFANA / "provisioning" / "dashboards" / "neckline.yaml"
    assert _yaml_values(provider, "type") == ["file"]
    (inside,) = _yaml_values(provider, "path")
    compose = (REPO / "compose.yaml").read_text(encoding="utf-8")
    mounts = re.findall(r"^\s*-\s*(\./grafana/[\w/-]*):([\w/.-]+)", compose, re.M)
    mounted = {container: host for host, container in mounts}
    assert inside in mounted, f"{inside} is not mounted in compose.yaml: {mounts}"
    assert (REPO / mounted[inside]).resolve() == (GRAFANA / "dashboards").resolve()
    uids = [_dashboard(p)["uid"] for p in DASHBOARDS]
    assert len(set(uids)) == len(uids)


def test_dashboards_type_check_against_grafana_schema() -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: cannot type-check the dashboards with @grafana/schema")
    check = GRAFANA / "schema-check"
    if not (check / "node_modules" / ".bin" / "tsc").exists():
        installed = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=check, capture_output=True, text=True,
            timeout=300, check=False,
        )
        if installed.returncode != 0:
            pytest.skip(f"npm ci failed (offline?): {installed.stderr[-500:]}")
    result = subprocess.run(
        [npm, "run", "--silent", "check"], cwd=check, capture_output=True, text=True,
        timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    imported = re.findall(r"dashboards/([\w-]+\.json)", (check / "check.ts").read_text())
    assert sorted(imported) == [p.name for p in DASHBOARDS]
