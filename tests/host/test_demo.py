"""`neckline demo` runs on embedded defaults, twice, and leaves no server behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def _demo(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "neckline", "demo", "--days", "3"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )


def test_demo_runs_twice_and_stops_its_server(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFLUX_")}
    env["NECKLINE_DATA_DIR"] = str(tmp_path / "data")
    env["NECKLINE_CONFIG"] = str(tmp_path / "absent.toml")
    outputs = []
    for _ in range(2):
        result = _demo(env)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
        assert "Local InfluxDB stopped" in result.stdout
        assert not (tmp_path / "data" / "influxdb" / "influxd.json").exists()
    for out in outputs:
        stored = re.search(r"Stored (\d+) points", out)
        assert stored is not None and int(stored.group(1)) > 0
        diary = re.search(r"Headaches in the simulated diary: (\d+) \(stored: (\d+)\)", out)
        assert diary is not None and diary.group(1) == diary.group(2)
        assert re.search(r"^\w{3} \d\d-\d\d\s+\d+\.\d\s+\d+\.\d", out, re.M), out
    # Same seed and days on the same day: the second run overwrote, it did not duplicate.
    def summary(out: str) -> list[str]:
        counts = re.findall(r"Stored \d+ points|stored: \d+", out)
        days = re.findall(r"^\w{3} \d\d-\d\d .*$", out, re.M)
        return counts + days

    assert summary(outputs[0]) == summary(outputs[1])
