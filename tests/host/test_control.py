"""Host control-point encoders (neckline.control) and the response decoder, against the vectors."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from neckline.control import (
    encode_abort,
    encode_calibrate,
    encode_get_status,
    encode_request_raw,
    encode_request_summary,
    encode_set_config,
    encode_set_time,
    split_set_config,
)
from neckline.decode import Rejections, decode_cp_response
from neckline.protocol import (
    CONFIG_DEFAULTS,
    ConfigKey,
    CPResponse,
    CPStatus,
    Opcode,
    RawBackfillResult,
    SummaryBackfillResult,
    TimeAnchor,
    config_entries_per_write,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
CONTROL: dict[str, Any] = json.loads((VECTORS / "control.json").read_text())
REQUESTS = [v for v in CONTROL["vectors"] if v["direction"] == "host_to_device"]
RESPONSES = [v for v in CONTROL["vectors"] if v["direction"] == "device_to_host"]
BAD_REQUESTS = [
    v for v in json.loads((VECTORS / "malformed.json").read_text())["vectors"]
    if v["decoder"] == "cp_request"
]


def ids(entries: list[dict[str, Any]]) -> list[str]:
    return [e["name"] for e in entries]


def encode_from_meaning(decoded: dict[str, Any]) -> bytes:
    """Build a request with the host encoder named by the vector's opcode."""
    opcode = Opcode(decoded["opcode"])
    ops = decoded["operands"]
    if opcode is Opcode.CALIBRATE:
        return encode_calibrate()
    if opcode is Opcode.SET_TIME:
        return encode_set_time(ops["utc_epoch_ms"])
    if opcode is Opcode.SET_CONFIG:
        return encode_set_config([(ConfigKey[e["key_name"]], e["value"]) for e in ops["entries"]])
    if opcode is Opcode.REQUEST_RAW:
        return encode_request_raw(ops["first_seq"], ops["last_seq"])
    if opcode is Opcode.REQUEST_SUMMARY:
        return encode_request_summary(ops["from_record"])
    if opcode is Opcode.ABORT:
        return encode_abort()
    return encode_get_status()


@pytest.mark.parametrize("vector", REQUESTS, ids=ids(REQUESTS))
def test_request_encoder_matches_vector(vector: dict[str, Any]) -> None:
    raw = encode_from_meaning(vector["decoded"])
    assert raw == bytes.fromhex(vector["hex"])
    assert len(raw) <= vector["min_mtu"] - 3


def test_every_opcode_has_a_request_vector() -> None:
    assert {v["decoded"]["opcode"] for v in REQUESTS} == {int(op) for op in Opcode}


def response_meaning(response: CPResponse) -> dict[str, Any]:
    data = response.data
    meaning: dict[str, Any] | None
    if isinstance(data, TimeAnchor):
        meaning = {"boot_id": data.boot_id, "t_ms": data.t_ms}
    elif isinstance(data, RawBackfillResult):
        meaning = {"samples_sent": data.samples_sent,
                   "oldest_available_seq": data.oldest_available_seq}
    elif isinstance(data, SummaryBackfillResult):
        meaning = {"records_sent": data.records_sent, "next_record": data.next_record}
    else:
        meaning = None
    opcode = response.opcode
    return {
        "version": 1, "type": 7, "type_name": "CP_RESPONSE",
        "request_opcode": response.request_opcode,
        "request_opcode_name": None if opcode is None else opcode.name,
        "status": int(response.status), "status_name": response.status.name, "data": meaning,
    }


@pytest.mark.parametrize("vector", RESPONSES, ids=ids(RESPONSES))
def test_response_vector_decodes(vector: dict[str, Any]) -> None:
    rejections = Rejections()
    response = decode_cp_response(bytes.fromhex(vector["hex"]), rejections)
    assert rejections.total == 0, rejections.summary()
    assert response is not None
    assert response_meaning(response) == vector["decoded"]


def test_every_opcode_and_status_has_a_response_vector() -> None:
    success = {v["decoded"]["request_opcode"] for v in RESPONSES
               if v["decoded"]["status"] == CPStatus.SUCCESS}
    assert success == {int(op) for op in Opcode}
    assert {v["decoded"]["status"] for v in RESPONSES} == {int(s) for s in CPStatus}


@pytest.mark.parametrize("vector", BAD_REQUESTS, ids=ids(BAD_REQUESTS))
def test_device_answer_to_a_bad_request_decodes(vector: dict[str, Any]) -> None:
    rejections = Rejections()
    response = decode_cp_response(bytes.fromhex(vector["response_hex"]), rejections)
    assert response is not None, rejections.summary()
    assert response.status == vector["device_status"]
    assert response.request_opcode == vector["response_opcode"]
    assert response.data is None


def _config_entries(raw: bytes) -> list[tuple[int, int]]:
    return [struct.unpack_from("<Bi", raw, off) for off in range(1, len(raw) - 4, 5)]


BAD_CONFIG_VALUES = [
    v for v in BAD_REQUESTS
    if v["name"].startswith("request_set_config_") and len(v["hex"]) >= 12
    and (len(v["hex"]) // 2 - 1) % 5 == 0
]


@pytest.mark.parametrize("vector", BAD_CONFIG_VALUES, ids=ids(BAD_CONFIG_VALUES))
def test_host_refuses_config_the_device_would_refuse(vector: dict[str, Any]) -> None:
    entries = _config_entries(bytes.fromhex(vector["hex"]))
    assert entries
    with pytest.raises(ValueError):
        encode_set_config(entries)


def test_bad_config_vectors_are_covered() -> None:
    assert len(BAD_CONFIG_VALUES) >= 7


def test_host_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="utc_epoch_ms"):
        encode_set_time(4294967296000)
    with pytest.raises(ValueError):
        encode_set_time(-1)
    with pytest.raises(ValueError, match="at least one"):
        encode_set_config({})
    with pytest.raises(ValueError, match="first_seq"):
        encode_request_raw(-1, 5)
    with pytest.raises(ValueError, match="last_seq"):
        encode_request_raw(0, 2**32)
    with pytest.raises(ValueError, match="from_record"):
        encode_request_summary(2**32)


def test_set_config_accepts_a_mapping() -> None:
    assert encode_set_config({ConfigKey.STRAIN_THRESHOLD_CDEG: 2500}) == bytes.fromhex(
        next(v["hex"] for v in REQUESTS if v["name"] == "set_config_one")
    )


@pytest.mark.parametrize("mtu", [23, 27, 40, 59, 185, 247, 517])
def test_split_set_config_fits_each_write_in_the_mtu(mtu: int) -> None:
    writes = split_set_config(CONFIG_DEFAULTS, mtu)
    per_write = config_entries_per_write(mtu)
    assert len(writes) == -(-len(CONFIG_DEFAULTS) // per_write)
    entries: list[tuple[int, int]] = []
    for raw in writes:
        assert raw[0] == Opcode.SET_CONFIG
        assert len(raw) <= mtu - 3
        entries.extend(_config_entries(raw))
    assert entries == [(int(k), v) for k, v in CONFIG_DEFAULTS.items()]


def test_split_at_default_mtu_matches_the_three_entry_limit() -> None:
    writes = split_set_config(CONFIG_DEFAULTS, 23)
    assert [len(w) for w in writes] == [16, 16, 16, 11]
    every = next(v for v in REQUESTS if v["name"] == "set_config_all_defaults")
    assert split_set_config(CONFIG_DEFAULTS, every["min_mtu"]) == [bytes.fromhex(every["hex"])]
