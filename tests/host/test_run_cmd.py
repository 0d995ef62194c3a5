"""`neckline run`, `neckline status` and `neckline config` as a user runs them: real processes.

The service runs as a subprocess with its own data directory and configuration: once with the
private local influxd it starts itself, on the virtual BlueZ with no wearer (it keeps scanning),
and once against an external server with JSON logs and a spool left over from a previous run.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from neckline.influxd import InfluxdState, LocalInfluxd
from neckline.influxql import query, series_values
from neckline.store import LineBatch, Spool
from tests.vble_fixtures import VBleHandle

REPO = Path(__file__).resolve().parents[2]


def neckline(args: list[str], env: dict[str, str], timeout: float = 60
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "neckline", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def environment(tmp: Path, config: str, **extra: str) -> dict[str, str]:
    (tmp / "neckline.toml").write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INFLUX_", "NECKLINE_"))}
    env.update(NECKLINE_DATA_DIR=str(tmp / "data"), NECKLINE_CONFIG=str(tmp / "neckline.toml"),
               PYTHONPATH=str(REPO), **extra)
    return env


class Service:
    def __init__(self, env: dict[str, str], tmp: Path) -> None:
        self.status_path = tmp / "data" / "status.json"
        self.log_path = tmp / "run.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "neckline", "run"], cwd=REPO, env=env,
            stdout=self.log, stderr=subprocess.STDOUT,
        )

    def status(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.status_path.read_text())
            return data
        except (FileNotFoundError, ValueError):
            return None

    def wait_for(self, check: Any, timeout: float = 45.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"neckline run exited:\n{self.output()}"
            doc = self.status()
            if doc is not None and check(doc):
                return doc
            time.sleep(0.2)
        raise AssertionError(f"status never matched; last {self.status()}\n{self.output()}")

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self.log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.log.closed:
            self.log.close()


@pytest.fixture
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in started:
        service.kill()


FAST = """
[pipeline]
status_interval_s = 0.3
batch_interval_s = 0.1
[devices]
scan_every_s = 1.0
scan_window_s = 0.5
"""


def test_run_with_no_wearer_keeps_scanning_and_stops_cleanly_on_sigterm(
    vble: VBleHandle, tmp_path: Path, services: list[Service]
) -> None:
    env = environment(tmp_path, FAST)
    service = Service(env, tmp_path)
    services.append(service)
    doc = service.wait_for(lambda d: d["state"] == "running" and d["scan"]["scans"] >= 2
                           and d["influx"]["schema"] == "ok")
    assert doc["influx"]["local"] and doc["wearers"] == {} and doc["scan"]["last_error"] is None
    assert stat.S_IMODE(service.status_path.stat().st_mode) == 0o600
    influxd = LocalInfluxd(tmp_path / "data" / "influxdb")
    running = influxd.running()
    assert running is not None and running.url == doc["influx"]["url"]

    shown = neckline(["status"], env)
    assert shown.returncode == 0, shown.stderr
    assert "neckline run: running" in shown.stdout
    assert "No wearers yet; scanning" in shown.stdout and "neckline pair" in shown.stdout
    assert "spool 0 B of 512.0 MB" in shown.stdout

    assert service.stop() == 0, service.output()
    log = service.output()
    assert "msg=\"SIGTERM received: stopping\"" in log
    assert "level=info logger=neckline.run" in log
    assert influxd.running() is None, "the influxd this run started is stopped again"
    final = json.loads(service.status_path.read_text())
    assert final["state"] == "stopped" and final["store"]["pending_lines"] == 0
    after = neckline(["status"], env)
    assert after.returncode == 3 and "not running (stopped cleanly" in after.stdout


def test_run_against_an_external_server_replays_the_spool_with_json_logs_and_no_secrets(
    influxd: InfluxdState, influx_db: str, tmp_path: Path, services: list[Service]
) -> None:
    secret = "s3cret-Pa55word"
    env = environment(
        tmp_path, FAST + '\n[logging]\nformat = "json"\n',
        INFLUX_URL=influxd.url, INFLUX_DB=influx_db, INFLUX_USERNAME="neck",
        INFLUX_PASSWORD=secret,
    )
    # A previous run left 3000 posture lines in the spool.
    now = int(time.time() * 1000) - 600_000
    body = "\n".join(
        f"posture,device=neckline-left flexion_raw=1.5,seq={i}i {now + i * 100}"
        for i in range(3000)
    ).encode()
    with Spool(tmp_path / "data" / "spool") as spool:
        spool.append(LineBatch("raw", body, 3000))
    service = Service(env, tmp_path)
    services.append(service)
    doc = service.wait_for(lambda d: d["state"] == "running" and d["store"]["pending_lines"] == 0
                           and d["store"]["written_points"] >= 3000)
    assert not doc["influx"]["local"] and doc["influx"]["database"] == influx_db
    listed = neckline(["status", "--json"], env)
    assert listed.returncode == 0 and json.loads(listed.stdout)["pid"] == service.proc.pid
    assert service.stop(signal.SIGINT) == 0
    log = service.output()
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert records and all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    assert any("replaying 3000 lines" in r["msg"] for r in records)
    assert "spool replay" in log and "3,000/3,000 lines" in log  # the progress line
    assert any("SIGINT received" in r["msg"] for r in records)
    assert secret not in log and secret not in service.status_path.read_text()
    rows = series_values(query(influxd.url, 'SELECT count("seq") FROM "raw"."posture"',
                               db=influx_db))
    assert rows[0]["count"] == 3000


def test_status_when_nothing_runs(tmp_path: Path) -> None:
    env = environment(tmp_path, "")
    result = neckline(["status"], env)
    assert result.returncode == 3
    assert "neckline is not running (no status file at" in result.stdout
    # A status file left by a process that is gone (SIGKILL) is recognised as such.
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "status.json").write_text(json.dumps({
        "version": 1, "pid": 2**22 + 17, "state": "running", "started_at": 0,
        "updated_at": time.time() - 60, "interval_s": 5,
    }))
    result = neckline(["status"], env)
    assert result.returncode == 3 and f"pid {2**22 + 17} is gone" in result.stdout


def test_config_check_shows_the_effective_configuration_with_secrets_masked(
    tmp_path: Path,
) -> None:
    env = environment(tmp_path, '[strain]\nthreshold_cdeg = 2200\n[devices]\nallow = '
                      '["C0:DE:00:00:00:09"]\n', INFLUX_URL="http://127.0.0.1:1",
                      INFLUX_TOKEN="tok-123456789")
    result = neckline(["config", "check"], env)
    assert result.returncode == 0, result.stderr
    assert "# configuration OK: " + str(tmp_path / "neckline.toml") in result.stdout
    assert "# environment overrides: INFLUX_URL, INFLUX_TOKEN" in result.stdout
    assert "threshold_cdeg = 2200" in result.stdout
    assert 'allow = ["C0:DE:00:00:00:09"]' in result.stdout
    assert 'token = "********"' in result.stdout and "tok-123456789" not in result.stdout
    as_json = neckline(["config", "check", "--json"], env)
    assert json.loads(as_json.stdout)["config"]["strain"]["threshold_cdeg"] == 2200
    paths = neckline(["config", "path"], env)
    assert str(tmp_path / "neckline.toml") in paths.stdout
    assert str(tmp_path / "data") in paths.stdout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[strain]\nhold_s = 0\n", "[strain] hold_s must be 1..3600, got 0"),
        ("[store]\nfsync_interval_s = -1\n", "[store] fsync_interval_s must be >= 0"),
        ('[devices]\nallow = ["C0:DE:00:00:00"]\n', "not a Bluetooth address"),
        ("[pipline]\n", "unknown section(s) ['pipline']"),
    ],
)
def test_config_check_errors_are_clear(tmp_path: Path, text: str, message: str) -> None:
    env = environment(tmp_path, text)
    result = neckline(["config", "check"], env)
    assert result.returncode == 78
    assert result.stderr.startswith("neckline: error: " + str(tmp_path / "neckline.toml"))
    assert message in result.stderr and "Traceback" not in result.stderr


def test_config_check_warns_about_the_surroundings(tmp_path: Path) -> None:
    env = environment(tmp_path, "[devices]\nconnect_bonded = false\n",
                      NECKLINE_INFLUXD="no-such-influxd-binary")
    result = neckline(["config", "check", "--strict"], env)
    assert result.returncode == 1
    assert "warning: no external InfluxDB is configured and `influxd` is not installed" in (
        result.stdout)
    assert "warning: no wearer can be connected" in result.stdout


def test_the_systemd_unit_runs_the_service_and_lets_it_stop_cleanly(tmp_path: Path) -> None:
    import configparser
    import shutil

    unit = REPO / "deploy" / "neckline.service"
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(unit.read_text())
    service = parser["Service"]
    assert service["ExecStart"].endswith("neckline run")
    assert service["KillMode"] == "mixed" and service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) >= 30
    assert service["UMask"] == "0077" and service["NoNewPrivileges"] == "yes"
    assert "%h/.local/share/neckline" in service["ReadWritePaths"]
    assert parser["Install"]["WantedBy"] == "default.target"
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # systemd checks every directive; ExecStart must name an executable that exists here.
    copy = tmp_path / "neckline.service"
    copy.write_text(unit.read_text().replace("%h/.local/bin/neckline", sys.executable))
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Unknown" not in result.stderr and "Invalid" not in result.stderr
