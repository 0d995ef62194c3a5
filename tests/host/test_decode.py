"""The host decoders (neckline.decode) against the shared golden vectors, plus property tests."""

from __future__ import annotations

import json
import logging
import math
import random
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neckline.decode import (
    Rejections,
    SampleArrays,
    SummaryArrays,
    decode_config,
    decode_cp_response,
    decode_event,
    decode_events,
    decode_posture,
    decode_samples,
    decode_status,
    decode_summaries,
    require_supported_version,
)
from neckline.protocol import (
    BufferOverflow,
    CalibrationOutcome,
    Event,
    HeadacheMarker,
    LowBattery,
    ProtocolError,
    RejectReason,
    SampleFlag,
    StateFlag,
    Status,
    StrainEnd,
    StrainStart,
    SummaryFlag,
    UnsupportedProtocolVersion,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((VECTORS / name).read_text())
    return doc


def vectors(name: str) -> list[dict[str, Any]]:
    return list(load(name)["vectors"])


def ids(entries: list[dict[str, Any]]) -> list[str]:
    return [e["name"] for e in entries]


FlagEnum = type[SampleFlag] | type[SummaryFlag] | type[StateFlag]


def flag_names(value: int, enum: FlagEnum) -> list[str]:
    return [m.name or "" for m in enum if value & m.value]


def cdeg_of(deg: float) -> int | None:
    return None if math.isnan(deg) else round(deg * 100)


SAMPLES = vectors("samples.json")
SUMMARY = vectors("summary.json")
EVENTS = vectors("events.json")
STATUS = vectors("status.json")
CONFIG = vectors("config.json")
MALFORMED = [v for v in vectors("malformed.json") if v["decoder"] != "cp_request"]


# --- turning decoded objects back into the vectors' "decoded" form --------------------------------
def sample_meanings(arrays: SampleArrays) -> list[dict[str, Any]]:
    out = []
    for k in range(len(arrays)):
        flags = int(arrays.flags[k])
        out.append({
            "seq": int(arrays.seq[k]),
            "t_ms": int(arrays.t_ms[k]),
            "flexion_cdeg": cdeg_of(float(arrays.flexion_deg[k])),
            "lateral_cdeg": cdeg_of(float(arrays.lateral_deg[k])),
            "rotation_cdeg": cdeg_of(float(arrays.rotation_deg[k])),
            "flags": flags,
            "flag_names": flag_names(flags, SampleFlag),
        })
    return out


def record_meanings(arrays: SummaryArrays) -> list[dict[str, Any]]:
    return [
        {
            "index": r.index, "start": r.start, "boot_id": r.boot_id, "wear_s": r.wear_s,
            "mean_flexion_cdeg": r.mean_flexion_cdeg, "max_flexion_cdeg": r.max_flexion_cdeg,
            "strain_s": r.strain_s, "episodes": r.episodes, "flags": int(r.flags),
            "flag_names": flag_names(int(r.flags), SummaryFlag),
        }
        for r in arrays.to_records()
    ]


def event_meaning(event: Event) -> dict[str, Any]:
    data = event.data
    payload: dict[str, Any]
    if isinstance(data, StrainStart):
        payload = {"flexion_cdeg": data.flexion_cdeg}
    elif isinstance(data, StrainEnd):
        payload = {"duration_s": data.duration_s, "peak_flexion_cdeg": data.peak_flexion_cdeg}
    elif isinstance(data, HeadacheMarker):
        payload = {}
    elif isinstance(data, CalibrationOutcome):
        payload = {"result": int(data.result), "result_name": data.result.name,
                   "pitch_cdeg": data.pitch_cdeg, "roll_cdeg": data.roll_cdeg}
    elif isinstance(data, BufferOverflow):
        payload = {"first_lost_seq": data.first_lost_seq, "last_lost_seq": data.last_lost_seq}
    else:
        assert isinstance(data, LowBattery)
        payload = {"millivolts": data.millivolts, "percent": data.percent}
    return {
        "version": 1, "type": 4, "type_name": "EVENT", "code": int(event.code),
        "code_name": event.code.name, "event_seq": event.event_seq, "boot_id": event.boot_id,
        "t_ms": event.t_ms, "payload": payload,
    }


def status_meaning(s: Status) -> dict[str, Any]:
    return {
        "version": s.version, "type": 5, "type_name": "STATUS", "boot_id": s.boot_id,
        "t_ms": s.t_ms, "next_seq": s.next_seq, "oldest_seq": s.oldest_seq,
        "next_record": s.next_record, "oldest_record": s.oldest_record,
        "battery_mv": s.battery_mv, "battery_pct": s.battery_pct, "state": int(s.state),
        "state_names": flag_names(int(s.state), StateFlag), "period_ms": s.period_ms,
    }


# --- valid vectors ------------------------------------------------------------------------------
@pytest.mark.parametrize("vector", SAMPLES, ids=ids(SAMPLES))
def test_samples_vector(vector: dict[str, Any]) -> None:
    d = vector["decoded"]
    arrays, rejections = decode_samples([bytes.fromhex(vector["hex"])])
    assert rejections.total == 0, rejections.summary()
    assert len(arrays) == d["count"]
    assert sample_meanings(arrays) == d["samples"]
    assert set(arrays.boot_id.tolist()) == {d["boot_id"]}
    assert set(arrays.period_ms.tolist()) == {d["period_ms"]}
    assert set(arrays.backfill.tolist()) == {d["type"] == 2}
    assert set(arrays.packet_index.tolist()) == {0}
    assert arrays.seq.dtype == np.uint32 and arrays.t_ms.dtype == np.int64
    assert arrays.flexion_deg.dtype == np.float32 and arrays.flags.dtype == np.uint8
    # Exactly the float32 nearest cdeg / 100, not merely close to it.
    for deg, s in zip(arrays.flexion_deg.tolist(), d["samples"], strict=True):
        if s["flexion_cdeg"] is not None:
            assert deg == float(np.float32(s["flexion_cdeg"]) / np.float32(100))


@pytest.mark.parametrize("vector", SUMMARY, ids=ids(SUMMARY))
def test_summary_vector(vector: dict[str, Any]) -> None:
    d = vector["decoded"]
    arrays, rejections = decode_summaries([bytes.fromhex(vector["hex"])])
    assert rejections.total == 0, rejections.summary()
    assert record_meanings(arrays) == d["records"]
    assert arrays.record_index.dtype == np.uint32


def test_posture_stream_carries_samples_and_summaries() -> None:
    packets = [bytes.fromhex(v["hex"]) for v in SAMPLES + SUMMARY]
    samples, summaries, rejections = decode_posture(packets)
    assert rejections.total == 0
    assert len(samples) == sum(v["decoded"]["count"] for v in SAMPLES)
    assert len(summaries) == sum(v["decoded"]["count"] for v in SUMMARY)
    assert set(summaries.packet_index.tolist()) == set(range(len(SAMPLES), len(packets)))


def test_capacity_tables() -> None:
    from neckline.protocol import samples_per_packet, summary_records_per_packet

    for mtu, n in load("samples.json")["samples_per_packet"].items():
        assert samples_per_packet(int(mtu)) == n
    for mtu, n in load("summary.json")["records_per_packet"].items():
        assert summary_records_per_packet(int(mtu)) == n


@pytest.mark.parametrize("vector", EVENTS, ids=ids(EVENTS))
def test_event_vector(vector: dict[str, Any]) -> None:
    rejections = Rejections()
    event = decode_event(bytes.fromhex(vector["hex"]), rejections)
    assert rejections.total == 0, rejections.summary()
    assert event is not None
    assert event_meaning(event) == vector["decoded"]


def test_events_batch() -> None:
    events, rejections = decode_events([bytes.fromhex(v["hex"]) for v in EVENTS])
    assert rejections.total == 0
    assert [event_meaning(e) for e in events] == [v["decoded"] for v in EVENTS]


@pytest.mark.parametrize("vector", STATUS, ids=ids(STATUS))
def test_status_vector(vector: dict[str, Any]) -> None:
    rejections = Rejections()
    status = decode_status(bytes.fromhex(vector["hex"]), rejections)
    assert rejections.total == 0
    assert status is not None
    assert status_meaning(status) == vector["decoded"]
    assert require_supported_version(bytes.fromhex(vector["hex"])) == status


@pytest.mark.parametrize("vector", CONFIG, ids=ids(CONFIG))
def test_config_vector(vector: dict[str, Any]) -> None:
    rejections = Rejections()
    config = decode_config(bytes.fromhex(vector["hex"]), rejections)
    assert rejections.total == 0
    assert config is not None
    entries = vector["decoded"]["entries"]
    assert {int(k): v for k, v in config.values.items()} == {
        e["key"]: e["value"] for e in entries if e["key_name"] is not None
    }
    assert {k.name for k in config.values} == {e["key_name"] for e in entries if e["key_name"]}
    assert config.unknown == {e["key"]: e["value"] for e in entries if e["key_name"] is None}


# --- malformed vectors --------------------------------------------------------------------------
def decode_one(decoder: str, raw: bytes | bytearray | memoryview) -> tuple[bool, Rejections]:
    """Run the named decoder on one payload; returns (anything decoded?, rejections)."""
    rejections = Rejections()
    if decoder == "samples":
        return len(decode_samples([raw], rejections)[0]) > 0, rejections
    if decoder == "summary":
        return len(decode_summaries([raw], rejections)[0]) > 0, rejections
    if decoder == "posture":
        samples, summaries, _ = decode_posture([raw], rejections)
        return len(samples) + len(summaries) > 0, rejections
    single = {
        "event": decode_event, "status": decode_status, "config": decode_config,
        "cp_response": decode_cp_response,
    }[decoder]
    return single(raw, rejections) is not None, rejections


@pytest.mark.parametrize("vector", MALFORMED, ids=ids(MALFORMED))
def test_malformed_vector_is_rejected_and_counted(vector: dict[str, Any]) -> None:
    decoded, rejections = decode_one(vector["decoder"], bytes.fromhex(vector["hex"]))
    assert not decoded
    reason = RejectReason(vector["reason"])
    assert rejections.counts == {reason: 1}
    assert [e.reason for e in rejections.examples] == [reason]
    assert rejections.examples[0].length == len(vector["hex"]) // 2


def test_every_reject_reason_has_a_vector() -> None:
    assert {v["reason"] for v in MALFORMED} == {r.value for r in RejectReason}


def test_unsupported_version_message() -> None:
    status_v2 = next(v for v in MALFORMED if v["name"] == "status_version_2")
    raw = bytes.fromhex(status_v2["hex"])
    expected = (
        "device speaks Neckline protocol v2, this host speaks v1; update neckline or the firmware"
    )
    _, rejections = decode_one("status", raw)
    assert rejections.examples[0].detail == expected
    with pytest.raises(UnsupportedProtocolVersion) as caught:
        require_supported_version(raw)
    assert str(caught.value) == expected
    assert caught.value.device_version == 2


def test_connect_check_refuses_a_broken_v1_status() -> None:
    truncated = next(v for v in MALFORMED if v["name"] == "status_truncated")
    with pytest.raises(ProtocolError, match="truncated") as caught:
        require_supported_version(bytes.fromhex(truncated["hex"]))
    assert not isinstance(caught.value, UnsupportedProtocolVersion)
    with pytest.raises(ProtocolError, match="empty"):
        require_supported_version(b"")


def test_mixed_batch_keeps_all_valid_and_counts_all_bad() -> None:
    bad = [v for v in MALFORMED if v["decoder"] in ("samples", "posture", "summary")]
    # Type errors are only "wrong" for the sample/summary-only decoders, not for decode_posture.
    bad = [v for v in bad if v["name"] != "summary_to_sample_decoder"]
    good = SAMPLES + SUMMARY
    tagged = [(bytes.fromhex(v["hex"]), True, v) for v in good]
    tagged += [(bytes.fromhex(v["hex"]), False, v) for v in bad]
    random.Random(7).shuffle(tagged)
    packets = [raw for raw, _, _ in tagged]

    samples, summaries, rejections = decode_posture(packets)

    assert rejections.total == len(bad)
    expected_counts: dict[str, int] = {}
    for v in bad:
        expected_counts[v["reason"]] = expected_counts.get(v["reason"], 0) + 1
    assert rejections.as_dict() == dict(sorted(expected_counts.items()))
    for index, (_, valid, v) in enumerate(tagged):
        if not valid:
            assert index not in samples.packet_index and index not in summaries.packet_index
        elif v["decoded"]["type"] == 3:
            mask = summaries.packet_index == index
            assert int(mask.sum()) == v["decoded"]["count"]
            records = [r for r, m in zip(record_meanings(summaries), mask, strict=True) if m]
            assert records == v["decoded"]["records"]
        else:
            mask = samples.packet_index == index
            assert sample_meanings(_select(samples, mask)) == v["decoded"]["samples"]


def _select(arrays: SampleArrays, mask: np.ndarray) -> SampleArrays:
    fields = {name: getattr(arrays, name)[mask] for name in arrays.__dataclass_fields__}
    return SampleArrays(**fields)


def test_samples_decoder_rejects_summaries_and_the_reverse() -> None:
    summary = bytes.fromhex(SUMMARY[0]["hex"])
    sample = bytes.fromhex(SAMPLES[0]["hex"])
    _, rej = decode_samples([summary])
    assert rej.counts == {RejectReason.WRONG_TYPE: 1}
    _, rej = decode_summaries([sample])
    assert rej.counts == {RejectReason.WRONG_TYPE: 1}


# --- Rejections bookkeeping ------------------------------------------------------------------
def test_rejections_keep_a_bounded_sample_of_examples(caplog: pytest.LogCaptureFixture) -> None:
    rejections = Rejections(max_examples_per_reason=3)
    for i in range(10):
        rejections.add(RejectReason.TRUNCATED, f"n{i}", bytes([0x11, i]))
    rejections.add(RejectReason.EMPTY, "empty payload", b"")
    assert rejections.counts[RejectReason.TRUNCATED] == 10
    assert rejections.total == 11
    assert [e.detail for e in rejections.examples] == ["n0", "n1", "n2", "empty payload"]

    other = Rejections(max_examples_per_reason=3)
    other.add(RejectReason.TRUNCATED, "late", b"\x11")
    other.add(RejectReason.PERIOD_ZERO, "p", b"\x11")
    rejections.merge(other)
    assert rejections.as_dict() == {"empty": 1, "period_zero": 1, "truncated": 11}
    assert [e.detail for e in rejections.examples][-1] == "p"
    assert "late" not in [e.detail for e in rejections.examples]
    assert rejections.summary() == "13 payloads rejected: empty=1, period_zero=1, truncated=11"

    with caplog.at_level(logging.WARNING, logger="neckline.decode"):
        rejections.log()
    assert "13 payloads rejected" in caplog.text
    assert "rejected (truncated) n0: 2 bytes 1100" in caplog.text


def test_example_hex_is_bounded() -> None:
    rejections = Rejections()
    rejections.add(RejectReason.OVERSIZED, "big", bytes(1000))
    assert rejections.examples[0].length == 1000
    assert len(rejections.examples[0].hex) == 64


# --- properties --------------------------------------------------------------------------------
VALID_VER_TYPES = st.sampled_from([0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17])
payloads = st.one_of(
    st.binary(max_size=600),
    st.builds(lambda vt, rest: bytes([vt]) + rest, VALID_VER_TYPES, st.binary(max_size=600)),
    st.builds(lambda vt, count, rest: bytes([vt, count]) + rest, st.sampled_from([0x11, 0x12,
              0x13]), st.integers(0, 80), st.binary(max_size=560)),
)


@settings(max_examples=300)
@given(st.lists(payloads, max_size=12))
def test_arbitrary_posture_bytes_never_raise_and_every_packet_is_accounted(
    packets: list[bytes],
) -> None:
    samples, summaries, rejections = decode_posture(packets)
    accepted = set(samples.packet_index.tolist()) | set(summaries.packet_index.tolist())
    assert len(accepted) + rejections.total == len(packets)
    s_only, rej_s = decode_samples(packets)
    r_only, rej_r = decode_summaries(packets)
    assert rej_s.total + len(set(s_only.packet_index.tolist())) == len(packets)
    assert rej_r.total + len(set(r_only.packet_index.tolist())) == len(packets)


@settings(max_examples=300)
@given(payloads)
def test_arbitrary_bytes_never_raise_in_single_decoders(raw: bytes) -> None:
    for decoder in (decode_event, decode_status, decode_config, decode_cp_response):
        rejections = Rejections()
        result = decoder(raw, rejections)
        assert (result is None) == (rejections.total == 1)
    assert decode_one("event", bytearray(raw))[1].total in (0, 1)
    assert decode_one("event", memoryview(raw))[1].total in (0, 1)


I16 = st.integers(-32768, 32767)
U32 = st.integers(0, 2**32 - 1)


@st.composite
def sample_packets(draw: st.DrawFn) -> tuple[bytes, dict[str, Any]]:
    ptype = draw(st.sampled_from([1, 2]))
    count = draw(st.integers(1, 71))
    seq, t_ms = draw(U32), draw(U32)
    boot_id, period = draw(st.integers(0, 255)), draw(st.integers(1, 65535))
    samples = draw(st.lists(st.tuples(I16, I16, I16, st.integers(0, 255)),
                            min_size=count, max_size=count))
    raw = struct.pack("<BBIIBH", 0x10 | ptype, count, seq, t_ms, boot_id, period)
    raw += b"".join(struct.pack("<hhhB", *s) for s in samples)
    meaning = {"type": ptype, "seq": seq, "t_ms": t_ms, "boot_id": boot_id, "period": period,
               "samples": samples}
    return raw, meaning


@settings(max_examples=200)
@given(sample_packets())
def test_random_sample_packets_round_trip(packet: tuple[bytes, dict[str, Any]]) -> None:
    raw, m = packet
    arrays, rejections = decode_samples([raw])
    assert rejections.total == 0
    n = len(m["samples"])
    assert arrays.seq.tolist() == [(m["seq"] + i) % 2**32 for i in range(n)]
    assert arrays.t_ms.tolist() == [(m["t_ms"] + i * m["period"]) % 2**32 for i in range(n)]
    assert arrays.boot_id.tolist() == [m["boot_id"]] * n
    assert arrays.period_ms.tolist() == [m["period"]] * n
    assert arrays.backfill.tolist() == [m["type"] == 2] * n
    assert arrays.flags.tolist() == [s[3] & 0x1F for s in m["samples"]]
    for column, name in ((0, "flexion_deg"), (1, "lateral_deg"), (2, "rotation_deg")):
        decoded = [cdeg_of(x) for x in getattr(arrays, name).tolist()]
        assert decoded == [None if s[column] == -32768 else s[column] for s in m["samples"]]


@st.composite
def summary_packets(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, ...]], int]:
    count = draw(st.integers(1, 38))
    first = draw(U32)
    records: list[tuple[int, ...]] = []
    for _ in range(count):
        wear = draw(st.integers(0, 60))
        records.append((draw(U32), draw(st.integers(0, 255)), wear, draw(I16), draw(I16),
                        draw(st.integers(0, wear)), draw(st.integers(0, 255)),
                        draw(st.integers(0, 255))))
    raw = struct.pack("<BBI", 0x13, count, first)
    raw += b"".join(struct.pack("<IBBhhBBB", *r) for r in records)
    return raw, records, first


@settings(max_examples=150)
@given(summary_packets())
def test_random_summary_packets_round_trip(
    packet: tuple[bytes, list[tuple[int, ...]], int],
) -> None:
    raw, records, first = packet
    arrays, rejections = decode_summaries([raw])
    assert rejections.total == 0
    got = arrays.to_records()
    assert [r.index for r in got] == [(first + i) % 2**32 for i in range(len(records))]
    assert [(r.start, r.boot_id, r.wear_s, r.strain_s, r.episodes, int(r.flags)) for r in got] == [
        (r[0], r[1], r[2], r[5], r[6], r[7] & 0x0F) for r in records
    ]
    assert [(r.mean_flexion_cdeg, r.max_flexion_cdeg) for r in got] == [
        (None if r[3] == -32768 else r[3], None if r[4] == -32768 else r[4]) for r in records
    ]


def _concat(parts: list[SampleArrays]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {name: [] for name in SampleArrays.__dataclass_fields__}
    for part in parts:
        for name in out:
            out[name].extend(getattr(part, name).tolist())
    return out


def _as_lists(arrays: SampleArrays) -> dict[str, list[Any]]:
    return _concat([arrays])


@settings(max_examples=100)
@given(st.lists(st.one_of(sample_packets().map(lambda p: p[0]), payloads), max_size=10))
def test_batched_decode_equals_per_packet_decode(packets: list[bytes]) -> None:
    batched, batch_rejections = decode_samples(packets)
    parts = []
    per_packet_rejections = Rejections()
    for index, raw in enumerate(packets):
        arrays, _ = decode_samples([raw], per_packet_rejections)
        fields = {name: getattr(arrays, name) for name in SampleArrays.__dataclass_fields__}
        fields["packet_index"] = np.full(len(arrays), index, dtype=np.int64)
        parts.append(SampleArrays(**fields))
    expected = _concat(parts)
    got = _as_lists(batched)
    for name in ("flexion_deg", "lateral_deg", "rotation_deg"):  # NaN != NaN in lists
        assert np.array_equal(np.asarray(got.pop(name)), np.asarray(expected.pop(name)),
                              equal_nan=True)
    assert got == expected
    assert batch_rejections.counts == per_packet_rejections.counts


# --- the vectors are reproducible --------------------------------------------------------------
def test_vector_generator_reproduces_the_committed_files(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(VECTORS / "make_vectors.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    committed = sorted(p.name for p in VECTORS.glob("*.json"))
    assert sorted(p.name for p in tmp_path.glob("*.json")) == committed
    for name in committed:
        assert (tmp_path / name).read_bytes() == (VECTORS / name).read_bytes(), name
