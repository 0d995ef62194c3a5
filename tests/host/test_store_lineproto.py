"""Line-protocol encoding: escaping rules, value types, the vectorised posture encoder, records."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from influxdb_client import Point as ClientPoint
from influxdb_client import WritePrecision

from neckline.store import LineBatch, LineProtocolError, Point, encode_line, encode_posture
from neckline.store.lineproto import split_lines
from neckline.store.records import encode_point, encode_points
from neckline.store.schema import (
    MEASUREMENTS,
    POSTURE_FLOAT_FIELDS,
    POSTURE_INT_FIELDS,
    FieldType,
)
from tests.host.fake_influx2 import ParsedPoint, parse_line

# -- explicit cases -----------------------------------------------------------------------------


def test_escaping_of_every_part_of_a_line() -> None:
    line = encode_line(
        "my meas,x=1",
        {"t k": "a,b=c d", "z": None},
        {"f=1": 1.5, "n": 3, "ok": True, "no": False, "s": 'say "hi" \\ ok', "u": "ü,= "},
        1_700_000_000_123,
    )
    assert line == (
        r"my\ meas\,x=1,t\ k=a\,b\=c\ d "
        r'f\=1=1.5,n=3i,ok=true,no=false,s="say \"hi\" \\ ok",u="ü,= " 1700000000123'
    )


def test_non_finite_fields_are_left_out_and_an_empty_point_is_none() -> None:
    line = encode_line("m", {}, {"a": math.nan, "b": 2.0, "c": math.inf, "d": None}, 5)
    assert line == "m b=2.0 5"
    assert encode_line("m", {}, {"a": math.nan, "b": -math.inf}, 5) is None


def test_numpy_scalars_keep_their_types() -> None:
    line = encode_line("m", {}, {"i": np.int32(-4), "f": np.float32(0.5), "b": np.bool_(True)}, 1)
    assert parse_line(line or "").fields == {"i": -4, "f": 0.5, "b": True}


@pytest.mark.parametrize(
    ("measurement", "tags", "fields", "time_ms", "needle"),
    [
        ("m", {"t": "a\nb"}, {"f": 1}, 1, "contains"),
        ("m", {"t": "a\\"}, {"f": 1}, 1, "backslash"),
        ("m", {"t": ""}, {"f": 1}, 1, "empty"),
        ("m", {"time": "x"}, {"f": 1}, 1, "reserved"),
        ("m", {}, {"time": 1}, 1, "reserved"),
        ("m", {}, {"s": "two\nlines"}, 1, "line breaks"),
        ("m", {}, {"i": 2**63}, 1, "64 bits"),
        ("#m", {}, {"f": 1}, 1, "comment"),
        ("", {}, {"f": 1}, 1, "empty"),
        ("m", {}, {"f": 1}, 2**62, "time range"),
        ("m", {}, {"f": [1]}, 1, "unsupported"),
        ("m", {}, {"f": 1}, 1.5, "integer of milliseconds"),
    ],
)
def test_inputs_without_a_portable_encoding_are_refused(
    measurement: str, tags: dict[str, str], fields: dict[str, object], time_ms: int, needle: str
) -> None:
    with pytest.raises(LineProtocolError, match=needle):
        encode_line(measurement, tags, fields, time_ms)


def test_batch_body_splits_back_into_its_lines() -> None:
    lines = [encode_line("m", {"d": "x y"}, {"s": f"v{i}, \"q\""}, i) or "" for i in range(5)]
    batch = LineBatch.from_lines("raw", lines)
    assert batch.lines == 5
    assert [b.decode() for b in split_lines(batch.body)] == lines
    with pytest.raises(LineProtocolError):
        LineBatch("raw/../x", b"m f=1 1", 1)
    with pytest.raises(LineProtocolError):
        LineBatch("raw", b"", 0)


# -- property tests: encode, parse back; and agree with influxdb-client's Point -----------------

# Printable and beyond (C1 controls, astral planes), minus what has no portable encoding.
_name_chars = st.characters(min_codepoint=32, exclude_characters="\\\x7f", codec="utf-8")
names = st.text(_name_chars, min_size=1, max_size=12).filter(
    lambda s: s not in {"time", "_measurement", "_field", "_time", "_start", "_stop", "_value"}
)
measurements = names.filter(lambda s: not s.startswith("#"))
string_values = st.text(st.characters(exclude_characters="\n\r", codec="utf-8"), max_size=20)
field_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    string_values,
)
times = st.integers(min_value=-9_223_372_036_000, max_value=9_223_372_036_000)


def _finite(fields: dict[str, object]) -> dict[str, object]:
    return {
        k: v for k, v in fields.items() if not (isinstance(v, float) and not math.isfinite(v))
    }


@settings(max_examples=300, deadline=None)
@given(
    measurement=measurements,
    tags=st.dictionaries(names, names, max_size=4),
    fields=st.dictionaries(names, field_values, min_size=1, max_size=6),
    time_ms=times,
)
def test_encoded_lines_parse_back_to_the_same_point(
    measurement: str, tags: dict[str, str], fields: dict[str, object], time_ms: int
) -> None:
    line = encode_line(measurement, tags, fields, time_ms)
    expected = _finite(fields)
    if not expected:
        assert line is None
        return
    assert line is not None and "\n" not in line
    parsed = parse_line(line)
    assert parsed == ParsedPoint(measurement, tags, expected, time_ms)  # type: ignore[arg-type]
    for key, value in expected.items():
        assert type(parsed.fields[key]) is type(value)


@settings(max_examples=200, deadline=None)
@given(
    measurement=measurements,
    tags=st.dictionaries(names, names, max_size=4),
    fields=st.dictionaries(names, field_values, min_size=1, max_size=6),
    time_ms=times,
)
def test_same_meaning_as_influxdb_client_point_serialisation(
    measurement: str, tags: dict[str, str], fields: dict[str, object], time_ms: int
) -> None:
    point = ClientPoint(measurement).time(time_ms, WritePrecision.MS)
    for tag_key, tag_value in tags.items():
        point.tag(tag_key, tag_value)
    for field_key, field_value in fields.items():
        point.field(field_key, field_value)
    theirs = point.to_line_protocol()
    ours = encode_line(measurement, tags, fields, time_ms)
    if not theirs:
        assert ours is None
        return
    assert ours is not None
    assert parse_line(ours) == parse_line(theirs)


# -- vectorised posture encoding ---------------------------------------------------------------

float_cols = hnp.arrays(
    np.float64, st.integers(1, 25),
    elements=st.one_of(
        st.floats(-400, 400), st.just(math.nan), st.just(math.inf), st.floats(-1e300, 1e300)
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), decimals=st.sampled_from([None, 0, 2, 4]))
def test_posture_lines_match_their_values(data: st.DataObject, decimals: int | None) -> None:
    flexion = data.draw(float_cols)
    n = len(flexion)
    same_len = hnp.arrays(np.float64, n, elements=st.one_of(st.floats(-400, 400),
                                                             st.just(math.nan)))
    cols = {
        "flexion": flexion,
        "lateral": data.draw(same_len),
        "rotation": data.draw(same_len),
        "flexion_raw": data.draw(same_len),
        "lateral_raw": data.draw(same_len),
    }
    seq = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, 2**40)))
    time_ms = 1_700_000_000_000 + np.arange(n, dtype=np.int64) * 100
    strain = data.draw(hnp.arrays(np.bool_, n))
    batch = encode_posture(
        "neck line,1", time_ms=time_ms, seq=seq, boot=7, flags=np.arange(n) % 4, worn=1,
        strain=strain, backfill=False, decimals=decimals, **cols,
    )
    assert batch is not None and batch.dest == "raw" and batch.lines == n
    lines = split_lines(batch.body)
    assert len(lines) == n
    for i, raw in enumerate(lines):
        p = parse_line(raw.decode())
        assert p.measurement == "posture" and p.tags == {"device": "neck line,1"}
        assert p.time == time_ms[i]
        assert p.fields["seq"] == seq[i] and p.fields["boot"] == 7
        assert p.fields["flags"] == i % 4 and p.fields["worn"] == 1
        assert p.fields["strain"] == int(strain[i]) and p.fields["backfill"] == 0
        for name in POSTURE_FLOAT_FIELDS:
            value = float(cols[name][i])
            if not math.isfinite(value):
                assert name not in p.fields
                continue
            got = p.fields[name]
            assert isinstance(got, float)
            if decimals is None:
                assert got == value
            else:
                assert abs(got - value) <= 0.5 * 10.0**-decimals + abs(value) * 1e-15


def test_posture_fast_and_slow_rows_use_the_same_format() -> None:
    kw = dict(time_ms=np.array([1, 2]), lateral=[1.0, 1.0], rotation=0.0, flexion_raw=0.0,
              lateral_raw=0.0, seq=np.array([1, 2]), boot=1, flags=0, worn=1, strain=0,
              backfill=0)
    batch = encode_posture("d", flexion=[12.34567, 12.34567], **kw)
    slow = encode_posture("d", flexion=[12.34567, 12.34567], **{**kw, "lateral": [1.0, math.nan]})
    assert batch is not None and slow is not None
    fast_line, slow_line = split_lines(batch.body)[1], split_lines(slow.body)[1]
    assert fast_line.startswith(b"posture,device=d flexion=123457e-4,lateral=10000e-4,")
    assert slow_line.replace(b"flexion=123457e-4,", b"flexion=123457e-4,lateral=10000e-4,") \
        == fast_line


@pytest.mark.parametrize("decimals", [4, 2, 0, None])
def test_posture_rows_missing_angles_encode_as_if_alone(decimals: int | None) -> None:
    # Rows are grouped by which angles they have (off the neck, uncalibrated...): the grouping
    # must not show, every line is what encoding its row alone gives.
    rng = np.random.default_rng(decimals or 9)
    n = 400
    floats = rng.normal(10, 30, (5, n))
    floats[rng.random((5, n)) < 0.3] = np.nan  # missing angles in every combination
    floats[0, :20] = np.inf
    floats[1, 20:25] = 1e14  # too large for the scaled-integer form: the per-row path
    floats[2, 25:30] = -3e12
    cols = {
        "time_ms": 1_767_225_600_000 + np.arange(n) * 40,
        "flexion": floats[0], "lateral": floats[1], "rotation": floats[2],
        "flexion_raw": np.round(floats[3], 2), "lateral_raw": np.round(floats[4], 2),
        "seq": np.arange(n, dtype=np.int64) + (1 << 33), "boot": np.full(n, 3),
        "flags": rng.integers(0, 32, n), "worn": rng.integers(0, 2, n),
        "strain": rng.integers(0, 2, n), "backfill": rng.integers(0, 2, n),
    }
    batch = encode_posture("neckline-x.y", decimals=decimals, **cols)
    assert batch is not None and batch.lines == n
    alone = []
    for i in range(n):
        one = encode_posture("neckline-x.y", decimals=decimals,
                             **{k: v[i : i + 1] for k, v in cols.items()})
        assert one is not None
        alone.append(one.body)
    assert split_lines(batch.body) == alone
    assert b" flexion=" not in alone[0]  # no value: left out
    if decimals in (2, 4):
        assert b"lateral=100000000000000.0," in alone[20]


def test_posture_rejects_bad_columns() -> None:
    base = dict(time_ms=np.array([1, 2]), flexion=0.0, lateral=0.0, rotation=0.0,
                flexion_raw=0.0, lateral_raw=0.0, seq=np.array([1, 2]), boot=1, flags=0,
                worn=1, strain=0, backfill=0)
    assert encode_posture("d", **{**base, "time_ms": np.array([], dtype=np.int64)}) is None
    with pytest.raises(LineProtocolError, match="seq"):
        encode_posture("d", **{**base, "seq": np.array([1.0, 2.0])})
    with pytest.raises(LineProtocolError, match="shape"):
        encode_posture("d", **{**base, "flexion": np.zeros(3)})
    with pytest.raises(LineProtocolError, match="time range"):
        encode_posture("d", **{**base, "time_ms": np.array([1, 2**62])})
    with pytest.raises(LineProtocolError, match="backslash"):
        encode_posture("bad\\device", **base)


# -- schema-checked records -------------------------------------------------------------------


def test_records_coerce_to_the_schema_types() -> None:
    line = encode_point(Point("strain_episode", 1000, {"device": "d"},
                              {"end": 61_000, "duration_s": 60, "peak_flexion": np.float32(30),
                               "mean_flexion": None}))
    parsed = parse_line(line or "")
    assert parsed.fields == {"end": 61_000, "duration_s": 60.0, "peak_flexion": 30.0}
    assert isinstance(parsed.fields["duration_s"], float)
    line = encode_point(Point("headache", 5, {"source": "cli"},
                              {"aura": True, "severity": 3.0, "notes": 'a "b"'}))
    assert parse_line(line or "").fields == {"aura": 1, "severity": 3, "notes": 'a "b"'}


def test_every_measurement_type_is_declared() -> None:
    for spec in MEASUREMENTS.values():
        assert spec.fields and all(isinstance(t, FieldType) for t in spec.fields.values())
    posture = MEASUREMENTS["posture"]
    assert tuple(posture.fields) == POSTURE_FLOAT_FIELDS + POSTURE_INT_FIELDS


def test_bad_records_are_refused_with_reasons_and_the_rest_encoded() -> None:
    points = [
        Point("exposure", 60_000, {"device": "d"}, {"wear_s": 60, "episodes": 1}),
        Point("exposure", 120_000, {"device": "d"}, {"episodes": 1.5}),
        Point("device_event", 1, {"device": "d", "type": "nonsense"}, {"code": 1}),
        Point("device_event", 2, {"device": "d"}, {"code": 1}),
        Point("exposure", 3, {"device": "d", "room": "x"}, {"wear_s": 1.0}),
        Point("exposure", 4, {"device": "d"}, {"colour": 1.0}),
        Point("nope", 5, {}, {"x": 1.0}),
        Point("link", 6, {"device": "d"}, {"rssi": math.nan}),
        Point("link", 7, {"device": "d"}, {"state": "connected", "rssi": -60}),
        Point("exposure", 8, {"device": "d"}, {"wear_s": "lots"}),
    ]
    report = encode_points(points)
    reasons = [why for _, why in report.refused]
    assert len(reasons) == 7
    for needle in ("integer", "not one of", "required", "unknown tag", "unknown field",
                   "unknown measurement", "number"):
        assert any(needle in why for why in reasons), needle
    assert report.empty == 1
    by_dest = {b.dest: b for b in report.batches}
    assert set(by_dest) == {"forever", "raw"}
    assert by_dest["forever"].lines == 1 and by_dest["raw"].lines == 1
    assert parse_line(by_dest["raw"].body.decode()).fields == {"state": "connected", "rssi": -60}
