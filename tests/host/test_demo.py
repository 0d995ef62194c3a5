"""`neckline demo` end to end: the live part through the real firmware, virtual BlueZ, bleak and
`neckline run`; history through the pipeline; headache import; correlation and report. Run twice:
the second run starts from an empty demo database, and no process outlives either run.

Shortened (the real demo: 60 s live, 28 days): 30 s live (calibration ends ~25 s after boot),
7 days of history, and the second run skips the live part.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from neckline.influxd import temporary_influxd
from neckline.influxql import query, series_values
from neckline.vsim.wearer import micropython_binary

pytestmark = pytest.mark.skipif(micropython_binary() is None,
                                reason="needs the micropython binary")


def _demo(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "neckline", "demo", "--days", "7", *args],
        capture_output=True, text=True, env=env, timeout=400, check=False,
    )


def _processes_under(path: Path) -> list[str]:
    """Command lines of running processes that mention `path` (ours would: --data, configs)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in cmd:
            found.append(f"{proc.name}: {cmd}")
    return found


def test_demo_runs_live_and_history_twice_leaving_nothing_behind(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INFLUX_", "NECKLINE_"))}
    data = tmp_path / "data"
    env["NECKLINE_DATA_DIR"] = str(data)
    env["NECKLINE_CONFIG"] = str(tmp_path / "absent.toml")

    first = _demo(env, "--live-seconds", "30")
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    live = re.search(r"the device made (\d+) samples; InfluxDB holds (\d+) \((\d+) calibrated\)",
                     out)
    assert live is not None, out
    made, stored, calibrated = (int(g) for g in live.groups())
    # Every sample the device had made when the service stopped is stored, at most once each
    # (a second's worth may have been made after the device was asked).
    assert made > 100 and made <= stored <= made + 15, out
    assert calibrated > 0, out
    history = re.search(r"history: (\d+) worn days, ([\d,]+) samples, ([\d,]+) points stored", out)
    assert history is not None, out
    assert int(history.group(2).replace(",", "")) > 10_000
    imported = re.search(r"imported (\d+) headache\(s\)", out)
    assert imported is not None, out
    assert "Odds ratio per hour of sustained strain" in out
    report = data / "demo" / "report.html"
    assert report.exists() and "<html" in report.read_text()[:500].lower()
    assert "local InfluxDB stopped" in out
    assert not (data / "influxdb" / "influxd.json").exists()
    assert _processes_under(tmp_path) == []

    second = _demo(env, "--live-seconds", "0", "--keep-running")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "skipped (--live-seconds 0)" in second.stdout
    # The second run's database holds the history only: the first run's live minute is gone.
    url = re.search(r"local InfluxDB started at (http://[\d.:]+)", second.stdout)
    assert url is not None, second.stdout
    try:
        rows = series_values(query(url.group(1), 'SELECT count("seq") FROM "raw"."posture" '
                                   "WHERE time > now() - 1h", db="neckline_demo"))
        assert rows == [] or int(rows[0]["count"]) == 0
        headaches = series_values(query(url.group(1), 'SELECT count("severity") FROM '
                                        '"forever"."headache"', db="neckline_demo"))
        second_imported = re.search(r"imported (\d+) headache\(s\)", second.stdout)
        assert second_imported is not None
        assert int(headaches[0]["count"]) == int(second_imported.group(1))
    finally:
        subprocess.run([sys.executable, "-m", "neckline", "influx", "stop"], env=env,
                       capture_output=True, timeout=60, check=False)
    assert _processes_under(tmp_path) == []


def test_demo_refuses_too_short_a_history(tmp_path: Path) -> None:
    env = {**os.environ, "NECKLINE_DATA_DIR": str(tmp_path / "data")}
    result = _demo(env, "--days", "3")  # the last --days wins
    assert result.returncode != 0
    assert "--days must be at least 7" in result.stderr
    assert not (tmp_path / "data" / "influxdb").exists()


def test_history_loader_is_idempotent(tmp_path: Path) -> None:
    """Loading the same days twice stores the same points (same times, tags): no duplicates."""
    import asyncio
    from datetime import UTC, datetime

    from neckline.demo.history import HistoryDevice, HistoryOptions, history_start, load_history
    from neckline.pipeline import PipelineSettings
    from neckline.sim.person import simulate_person
    from neckline.store import ensure_schema_v1

    person = simulate_person(3, history_start(datetime.now(UTC), 1), days=1)
    with temporary_influxd(tmp_path / "influxd") as server:
        ensure_schema_v1(server.url, "hist")
        counts = []
        for run in range(2):
            device = HistoryDevice("C0:DE:5A:00:00:09", "Neckline-0009", HistoryOptions(), 3)
            result = asyncio.run(load_history(person, 3, device, server.url, "hist",
                                              tmp_path / f"work{run}", PipelineSettings()))
            assert result.rejected_records == 0
            rows = series_values(query(server.url, 'SELECT count("seq") FROM "raw"."posture"',
                                       db="hist"))
            counts.append(int(rows[0]["count"]) if rows else 0)
            assert counts[-1] == result.samples
        assert counts[0] == counts[1] > 10_000
