"""The local InfluxDB launcher, as the CLI and the fixtures use it, against the real influxd."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from neckline.errors import InfluxNotInstalled
from neckline.influxd import InfluxdState, LocalInfluxd, temporary_influxd
from neckline.influxql import ping, query, series_values


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "neckline", *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )


@pytest.fixture
def user_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFLUX_")}
    env["NECKLINE_DATA_DIR"] = str(tmp_path / "data")
    env["NECKLINE_CONFIG"] = str(tmp_path / "neckline.toml")
    return env


def _write(url: str, db: str, lines: str) -> None:
    req = urllib.request.Request(f"{url}/write?db={db}&precision=ms", data=lines.encode())
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 204


def test_cli_start_status_stop_as_a_new_user(user_env: dict[str, str], tmp_path: Path) -> None:
    status = _cli("influx", "status", env=user_env)
    assert status.returncode == 3
    assert "stopped" in status.stdout

    start = _cli("influx", "start", env=user_env)
    try:
        assert start.returncode == 0, start.stderr
        state = json.loads((tmp_path / "data" / "influxdb" / "influxd.json").read_text())
        url = state["url"]
        assert url.startswith("http://127.0.0.1:")
        assert url in start.stdout
        assert str(tmp_path / "data" / "influxdb") in start.stdout
        assert ping(url) is not None
        # The default database exists, so a fresh user can write at once.
        names = [r["name"] for r in series_values(query(url, "SHOW DATABASES"))]
        assert "neckline" in names

        again = _cli("influx", "start", env=user_env)
        assert again.returncode == 0
        assert f"pid {state['pid']}" in again.stdout, "a second start must reuse the server"

        status = _cli("influx", "status", env=user_env)
        assert status.returncode == 0
        assert "running" in status.stdout and url in status.stdout
    finally:
        stop = _cli("influx", "stop", env=user_env)
    assert stop.returncode == 0
    assert "stopped" in stop.stdout
    assert ping(url) is None
    assert not Path(f"/proc/{state['pid']}").exists() or b"influxd" not in Path(
        f"/proc/{state['pid']}/cmdline"
    ).read_bytes()
    assert _cli("influx", "status", env=user_env).returncode == 3


def test_data_survives_a_restart(tmp_path: Path) -> None:
    server = LocalInfluxd(tmp_path / "db")
    state = server.start(die_with_parent=True)
    try:
        query(state.url, 'CREATE DATABASE "keep"')
        _write(state.url, "keep", "posture,device=a flexion=12.5 1700000000000\n")
        assert server.stop()
        again = server.start(die_with_parent=True)
        rows = series_values(query(again.url, "SELECT flexion FROM posture", db="keep"))
        assert rows == [{"time": 1700000000000, "flexion": 12.5}]
        assert again.url == state.url, "the URL changed across a restart"
    finally:
        server.stop()


def test_a_taken_remembered_port_gives_new_ones(tmp_path: Path) -> None:
    server = LocalInfluxd(tmp_path / "db")
    first = server.start(die_with_parent=True)
    server.stop()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        # The stopped server's connections may leave the port in TIME_WAIT; SO_REUSEADDR lets
        # the squatter bind it anyway, and its listen() makes the port truly taken.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", first.port))
        squatter.listen(1)
        try:
            second = server.start(die_with_parent=True)
            assert second.port != first.port
            assert ping(second.url)
        finally:
            server.stop()
    third = server.start(die_with_parent=True)  # the new ports are the remembered ones now
    try:
        assert third.port == second.port
    finally:
        server.stop()


def test_missing_binary_gives_a_clear_message(tmp_path: Path) -> None:
    server = LocalInfluxd(tmp_path / "db", binary="/nonexistent/influxd")
    with pytest.raises(InfluxNotInstalled, match="apt-get install influxdb"):
        server.start()


def test_cli_reports_missing_binary(user_env: dict[str, str]) -> None:
    user_env["NECKLINE_INFLUXD"] = "/nonexistent/influxd"
    result = _cli("influx", "start", env=user_env)
    assert result.returncode == 69
    assert "influxd is not installed" in result.stderr
    assert "Traceback" not in result.stderr


def test_external_url_is_used_instead(user_env: dict[str, str], influxd: InfluxdState) -> None:
    user_env["INFLUX_URL"] = influxd.url
    start = _cli("influx", "start", env=user_env)
    assert start.returncode == 0
    assert "external InfluxDB is configured" in start.stdout
    assert not (Path(user_env["NECKLINE_DATA_DIR"]) / "influxdb" / "influxd.json").exists()
    status = _cli("influx", "status", env=user_env)
    assert f"external InfluxDB {influxd.url}: reachable" in status.stdout


def test_stale_state_is_not_trusted(tmp_path: Path) -> None:
    root = tmp_path / "db"
    root.mkdir()
    # pid 1 exists but is not our influxd: it must never be signalled.
    (root / "influxd.json").write_text(
        json.dumps({"pid": 1, "url": "http://127.0.0.1:1", "port": 1, "rpc_port": 2,
                    "root": str(root), "started_at": 0})
    )
    server = LocalInfluxd(root)
    assert server.running() is None
    assert not (root / "influxd.json").exists()
    assert server.stop() is False


def test_temporary_server_is_gone_after_the_block(tmp_path: Path) -> None:
    with temporary_influxd(tmp_path / "tmpdb") as state:
        assert ping(state.url) is not None
        pid = state.pid
    assert ping(state.url) is None
    assert not Path(f"/proc/{pid}/cmdline").exists()
