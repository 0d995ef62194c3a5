"""Both write dialects and the batcher's answer handling, against the local InfluxDB 2.x contract
server (tests/host/fake_influx2.py): auth, 413 splitting, 429/503 Retry-After, 400 rejections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from neckline.backoff import Backoff
from neckline.config import InfluxConfig
from neckline.store import (
    Batcher,
    LineBatch,
    Outcome,
    Point,
    Spool,
    SpoolFull,
    V1Writer,
    V2Writer,
    encode_posture,
    writer_for,
)
from neckline.store.writer import WriteResult, classify, parse_retry_after
from tests.host.fake_influx2 import FakeInflux2

TOKEN = "test-token"
ORG = "neckline-org"


@pytest.fixture
async def fake() -> AsyncIterator[FakeInflux2]:
    server = FakeInflux2(token=TOKEN, org=ORG)
    await server.start()
    yield server
    await server.stop()


class Sleeps:
    """Records the retry delays the batcher asks for, without waiting them out."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0.001)


def _posture(n: int, start_seq: int = 0) -> LineBatch:
    seq = np.arange(start_seq, start_seq + n, dtype=np.int64)
    batch = encode_posture(
        "neckline-a1", time_ms=1_700_000_000_000 + seq * 100, flexion=seq * 0.25,
        lateral=-seq * 0.5, rotation=0.0, flexion_raw=seq * 0.25, lateral_raw=-seq * 0.5,
        seq=seq, boot=3, flags=1, worn=1, strain=seq % 2, backfill=0,
    )
    assert batch is not None
    return batch


def _batcher(tmp_path: Path, writer: V1Writer | V2Writer, sleeps: Sleeps, **kw: int) -> Batcher:
    return Batcher(
        Spool(tmp_path / "spool"), writer, max_delay=0.01, sleep=sleeps,
        backoff=Backoff(base=0.5, cap=4.0), **kw,
    )


async def test_v2_round_trip_with_types_and_destinations(fake: FakeInflux2, tmp_path: Path) -> None:
    writer = V2Writer(fake.url, ORG, TOKEN, {"raw": "neckline/raw", "forever": "neckline/forever"})
    sleeps = Sleeps()
    async with _batcher(tmp_path, writer, sleeps) as batcher:
        batcher.submit(_posture(50))
        batcher.submit_points([
            Point("exposure", 1_700_000_040_000, {"device": "neckline-a1"},
                  {"wear_s": 60, "strain_s": 12.5, "episodes": 1, "source": 1}),
        ])
        assert await batcher.flush(timeout=10)
        status = batcher.status()
    rows = fake.rows("neckline/raw", "posture")
    assert [r["seq"] for r in rows] == list(range(50))
    assert rows[3]["flexion"] == 0.75 and rows[3]["lateral"] == -1.5 and rows[3]["strain"] == 1
    assert rows[3]["time"] == 1_700_000_000_300
    assert fake.field_types[("neckline/raw", "posture", "seq")] == "integer"
    assert fake.field_types[("neckline/raw", "posture", "flexion")] == "float"
    (exposure,) = fake.rows("neckline/forever", "exposure")
    assert exposure["wear_s"] == 60.0 and isinstance(exposure["wear_s"], float)
    assert status.written_points == 51 and status.rejected_points == 0
    assert status.pending_batches == 0 and sleeps.delays == []


async def test_v1_dialect_against_the_2x_compatibility_endpoint(
    fake: FakeInflux2, tmp_path: Path
) -> None:
    token_writer = V1Writer(fake.url, "neckline", token=TOKEN)
    assert (await token_writer.write("raw", _posture(3).body)).status == 204
    basic_writer = V1Writer(fake.url, "neckline", username="me", password=TOKEN,
                            retention_policies={"forever": None})
    assert (await basic_writer.write("forever", _posture(2, 10).body)).status == 204
    bad = await V1Writer(fake.url, "neckline", token="wrong").write("raw", _posture(1).body)
    await token_writer.close()
    await basic_writer.close()
    assert [r["seq"] for r in fake.rows("neckline/raw", "posture")] == [0, 1, 2]
    assert [r["seq"] for r in fake.rows("neckline", "posture")] == [10, 11]
    assert bad.status == 401 and bad.outcome is Outcome.CONFIG
    assert bad.message == "unauthorized access"


async def test_v2_errors_become_typed_results(fake: FakeInflux2) -> None:
    writer = V2Writer(fake.url, ORG, "wrong-token", "neckline")
    result = await writer.write("raw", b"m f=1 1")
    assert (result.status, result.outcome, result.message) == (
        401, Outcome.CONFIG, "unauthorized access")
    await writer.close()
    writer = V2Writer(fake.url, ORG, TOKEN, "no-such-bucket")
    result = await writer.write("raw", b"m f=1 1")
    assert result.status == 404 and result.outcome is Outcome.CONFIG
    fake.fail_next(429, retry_after="7")
    result = await writer.write("raw", b"m f=1 1")
    await writer.close()
    assert result.status == 429 and result.retry_after == 7.0
    assert result.outcome is Outcome.THROTTLED
    port = fake.url.rsplit(":", 1)[1]
    await fake.stop()
    for down in (V2Writer(f"http://127.0.0.1:{port}", ORG, TOKEN, "neckline"),
                 V1Writer(f"http://127.0.0.1:{port}", "neckline")):
        result = await down.write("raw", b"m f=1 1")
        await down.close()
        assert result.status is None and result.outcome is Outcome.UNAVAILABLE
        assert result.message


async def test_retry_after_is_honoured_on_429_and_503(fake: FakeInflux2, tmp_path: Path) -> None:
    fake.fail_next(429, retry_after="3")
    fake.fail_next(503, retry_after="2")
    fake.fail_next(503)  # no Retry-After: back off instead
    sleeps = Sleeps()
    async with _batcher(tmp_path, V2Writer(fake.url, ORG, TOKEN, "neckline"), sleeps) as batcher:
        batcher.submit(_posture(10))
        assert await batcher.flush(timeout=10)
        status = batcher.status()
    assert sleeps.delays[:2] == [3.0, 2.0]
    assert 0.25 <= sleeps.delays[2] <= 0.5, "first back-off step: base, jittered"
    assert fake.statuses == [429, 503, 503, 204]
    assert status.retries == 3 and status.written_points == 10
    assert len(fake.rows("neckline", "posture")) == 10


async def test_retry_after_is_capped(fake: FakeInflux2, tmp_path: Path) -> None:
    fake.fail_next(429, retry_after="86400")
    sleeps = Sleeps()
    writer = V2Writer(fake.url, ORG, TOKEN, "neckline")
    batcher = Batcher(Spool(tmp_path / "s"), writer, max_delay=0.01, sleep=sleeps,
                      retry_after_cap=30.0)
    async with batcher:
        batcher.submit(_posture(2))
        assert await batcher.flush(timeout=10)
    assert sleeps.delays == [30.0]


async def test_413_splits_down_to_single_lines_and_quarantines_the_unsendable(
    fake: FakeInflux2, tmp_path: Path
) -> None:
    fake.max_body_bytes = 2_000
    big = "x" * 3_000
    sleeps = Sleeps()
    async with _batcher(tmp_path, V2Writer(fake.url, ORG, TOKEN, "neckline"), sleeps) as batcher:
        batcher.submit(_posture(40))
        batcher.submit_points([
            Point("device_event", 5, {"device": "d", "type": "calibration"}, {"detail": big}),
            Point("device_event", 6, {"device": "d", "type": "calibration"}, {"detail": "ok"}),
        ])
        assert await batcher.flush(timeout=10)
        status = batcher.status()
        rejected_file = batcher_quarantine(tmp_path)
    assert [r["seq"] for r in fake.rows("neckline", "posture")] == list(range(40))
    assert [r["detail"] for r in fake.rows("neckline", "device_event")] == ["ok"]
    assert status.rejected_points == 1 and status.written_points == 41
    assert fake.statuses.count(413) >= 2
    assert sleeps.delays == [], "a 413 is split, never retried as is"
    text = rejected_file.read_text()
    assert "413" in text and big in text


def batcher_quarantine(tmp_path: Path) -> Path:
    return tmp_path / "spool" / "quarantine" / "rejected.lp"


async def test_400_type_conflicts_are_isolated_counted_and_not_retried(
    fake: FakeInflux2, tmp_path: Path
) -> None:
    good = [f"posture,device=d seq={i}i {1000 + i}" for i in range(20)]
    bad = ["posture,device=d seq=2.5 2000", 'posture,device=d seq="x" 2001']
    lines = good[:7] + bad[:1] + good[7:15] + bad[1:] + good[15:]
    sleeps = Sleeps()
    async with _batcher(tmp_path, V2Writer(fake.url, ORG, TOKEN, "neckline"), sleeps) as batcher:
        batcher.submit(LineBatch.from_lines("raw", lines))
        batcher.submit(LineBatch.from_lines("raw", ["posture,device=d seq=1.5 3000"] * 3))
        assert await batcher.flush(timeout=10)
        status = batcher.status()
    assert sorted(r["seq"] for r in fake.rows("neckline", "posture")) == list(range(20))
    assert status.rejected_points == 5 and status.written_points == 20
    assert status.pending_batches == 0 and sleeps.delays == []
    assert status.last_error is not None and "conflict" in status.last_error
    kept = batcher_quarantine(tmp_path).read_text().splitlines()
    assert sorted(line for line in kept if not line.startswith("#")) == sorted(
        bad + ["posture,device=d seq=1.5 3000"] * 3
    )


async def test_400_parse_error_rejects_only_the_bad_line(fake: FakeInflux2, tmp_path: Path) -> None:
    lines = [f"m,d=x f={i} {i}" for i in range(9)]
    lines[4] = "m,d=x f=not-a-number 4"
    sleeps = Sleeps()
    async with _batcher(tmp_path, V2Writer(fake.url, ORG, TOKEN, "neckline"), sleeps) as batcher:
        batcher.submit(LineBatch.from_lines("raw", lines))
        assert await batcher.flush(timeout=10)
        status = batcher.status()
    assert [r["f"] for r in fake.rows("neckline", "m")] == [0, 1, 2, 3, 5, 6, 7, 8]
    assert status.rejected_points == 1


async def test_auth_failure_keeps_the_data_and_retries(fake: FakeInflux2, tmp_path: Path) -> None:
    fake.fail_next(401, times=3, body={"code": "unauthorized", "message": "unauthorized access"})
    sleeps = Sleeps()
    async with _batcher(tmp_path, V2Writer(fake.url, ORG, TOKEN, "neckline"), sleeps) as batcher:
        batcher.submit(_posture(5))
        assert await batcher.flush(timeout=10)
        status = batcher.status()
    assert len(sleeps.delays) == 3
    for attempt, delay in enumerate(sleeps.delays):  # base 0.5 doubling, jittered down by <= 1/2
        ceiling = min(4.0, 0.5 * 2**attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert status.rejected_points == 0 and status.written_points == 5
    assert status.last_error is not None and "401" in status.last_error


async def test_writer_for_builds_the_configured_dialect(fake: FakeInflux2) -> None:
    v2 = writer_for(InfluxConfig(url=fake.url, dialect="v2", org=ORG, bucket="neckline",
                                 token=TOKEN), fake.url)
    v1 = writer_for(InfluxConfig(url=fake.url, database="neckline", retention_policy="raw",
                                 token=TOKEN), fake.url)
    assert isinstance(v2, V2Writer) and isinstance(v1, V1Writer)
    assert (await v2.write("forever", b"m f=1 1")).status == 204
    assert (await v1.write("forever", b"m f=2 2")).status == 204
    await v1.close()
    await v2.close()
    assert fake.rows("neckline", "m")[0]["f"] == 1.0
    assert fake.rows("neckline/raw", "m")[0]["f"] == 2.0


def test_classification_and_retry_after_parsing() -> None:
    assert classify(204) is Outcome.OK
    assert classify(413) is Outcome.TOO_LARGE
    assert classify(400, "partial write: field type conflict dropped=1") is Outcome.BAD_DATA
    assert classify(400, "bucket not specified") is Outcome.CONFIG
    assert classify(400, "failure writing points to database: partial write") is Outcome.BAD_DATA
    assert classify(422, "points beyond retention policy dropped=3") is Outcome.BAD_DATA
    assert classify(500, "retention policy not found: x") is Outcome.UNAVAILABLE
    assert classify(404) is Outcome.CONFIG and classify(None) is Outcome.UNAVAILABLE
    assert WriteResult(400, "partial write: x dropped=12").dropped == 12
    assert parse_retry_after("5") == 5.0 and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("-3") == 0.0


async def test_full_spool_refuses_while_the_server_is_down_and_loses_nothing_stored(
    fake: FakeInflux2, tmp_path: Path
) -> None:
    down = V2Writer("http://127.0.0.1:9", ORG, TOKEN, "neckline")  # discard port: refused
    sleeps = Sleeps()
    batcher = Batcher(Spool(tmp_path / "spool", max_bytes=20_000), down, max_delay=0.0,
                      sleep=sleeps, backoff=Backoff(base=0.5, cap=4.0))
    await batcher.start()
    accepted = 0
    with pytest.raises(SpoolFull):
        for i in range(1000):
            batcher.submit(_posture(10, i * 10))
            accepted += 10
            await asyncio.sleep(0)
    status = batcher.status()
    assert status.refused_points == 10 and status.pending_lines == accepted
    assert status.written_points == 0 and status.retries >= 1
    assert status.last_error is not None and status.consecutive_failures >= 1
    assert await batcher.close(timeout=0.2) is False

    async with _batcher(tmp_path, V2Writer(fake.url, ORG, TOKEN, "neckline"), Sleeps()) as again:
        assert again.status().pending_lines == accepted
        assert await again.flush(timeout=10)
    assert [r["seq"] for r in fake.rows("neckline", "posture")] == list(range(accepted))
