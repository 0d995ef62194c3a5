"""The headache log against the real influxd: CRUD, idempotent and atomic import, the device
marker, and the `neckline headache` commands."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from neckline.cli import main
from neckline.config import InfluxConfig
from neckline.errors import NecklineError
from neckline.headache.device import marker_entry, marker_point
from neckline.headache.influx import InfluxTarget, write_points
from neckline.headache.model import HeadacheEntry
from neckline.headache.store import HeadacheNotFound, HeadacheStore, entry_point
from neckline.influxd import InfluxdState
from neckline.influxql import query, series_values
from neckline.protocol import Event, EventCode, HeadacheMarker, LowBattery


@pytest.fixture
def store(influxd: InfluxdState, influx_db: str) -> HeadacheStore:
    return HeadacheStore(InfluxTarget(influxd.url, InfluxConfig(database=influx_db)))


@pytest.fixture
def cli_env(influxd: InfluxdState, influx_db: str, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("NECKLINE_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("INFLUX_URL", influxd.url)
    monkeypatch.setenv("INFLUX_DB", influx_db)
    monkeypatch.setenv("TZ", "Europe/Berlin")
    return influx_db


def _entry(day: int, hour: int, **kw: object) -> HeadacheEntry:
    onset = datetime(2026, 1, day, hour, tzinfo=UTC)
    fields: dict[str, object] = {"severity": 5, "type": "tension", "source": "cli"}
    fields.update(kw)
    return HeadacheEntry(id=f"t{day}{hour}", onset=onset, **fields)


def test_add_list_edit_delete(store: HeadacheStore) -> None:
    a = _entry(5, 8, end=datetime(2026, 1, 5, 11, tzinfo=UTC), medication="ibuprofen")
    b = _entry(6, 9, type="migraine", aura=True)
    store.add(b)
    store.add(a)
    assert store.list() == [a, b]  # sorted by onset, every field back as written
    with pytest.raises(NecklineError, match="already in the log"):
        store.add(_entry(5, 8, severity=2))
    # Same point, a field removed: the end must really go (fields merge on overwrite).
    edited = a.with_changes(end=None, severity=8, notes="worse")
    store.replace(a, edited)
    assert store.find("t58") == edited
    # The onset moves: a new point, and the old one must be gone.
    moved = edited.with_changes(onset=datetime(2026, 1, 5, 6, 30, tzinfo=UTC))
    store.replace(edited, moved)
    assert [e.onset.hour for e in store.list()] == [6, 9]
    with pytest.raises(NecklineError, match="already in the log"):
        store.replace(moved, moved.with_changes(onset=b.onset))
    store.delete(moved)
    assert store.list() == [b]
    with pytest.raises(HeadacheNotFound):
        store.find("t58")


def test_unique_prefix_lookup(store: HeadacheStore) -> None:
    store.add(_entry(5, 8))
    store.add(_entry(5, 9))
    assert store.find("t58").id == "t58"
    with pytest.raises(NecklineError, match="matches several"):
        store.find("t5")


def test_import_is_idempotent_and_keeps_edits(store: HeadacheStore) -> None:
    batch = [_entry(d, 8, source="import") for d in (5, 6, 7)]
    first = store.import_entries(batch)
    assert len(first.added) == 3 and not first.skipped
    store.replace(batch[0], batch[0].with_changes(severity=9))
    again = store.import_entries(batch)
    assert not again.added and len(again.skipped) == 3
    stored = store.list()
    assert len(stored) == 3
    assert stored[0].severity == 9  # the re-import did not overwrite the edit
    # Same onset minute under another id counts as the same headache.
    twin = HeadacheEntry(id="other", onset=datetime(2026, 1, 6, 8, 0, 30, tzinfo=UTC),
                         severity=1, source="import")
    assert store.import_entries([twin]).skipped[0][1].endswith("(same onset minute)")


def test_failed_import_leaves_nothing_behind(store: HeadacheStore, influx_db: str) -> None:
    # A point whose `type` is an integer makes InfluxDB refuse string `type` values in the same
    # shard (7-day shard groups starting on Thursdays): of the two entries imported below, the
    # one on Monday 5 January conflicts and the one a week later is stored - a partial write
    # that the import must roll back.
    target = store.target
    write_points(target, [entry_point(_entry(1, 1))])
    conflict = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp() * 1000)
    urllib.request.urlopen(urllib.request.Request(
        f"{target.url}/write?db={influx_db}&rp=forever&precision=ms",
        data=f'headache,source=import type=1i,id="bad" {conflict}'.encode()))
    before = series_values(query(target.url, 'SELECT * FROM "forever"."headache"',
                                 db=influx_db))
    with pytest.raises(NecklineError, match="nothing was imported"):
        store.import_entries([_entry(5, 8, source="import"), _entry(12, 8, source="import")])
    after = series_values(query(target.url, 'SELECT * FROM "forever"."headache"', db=influx_db))
    assert after == before
    assert len(store.list()) == 1 and store.unreadable == 1  # the odd point is counted


def test_device_marker_needs_details_and_never_clobbers(store: HeadacheStore) -> None:
    event = Event(EventCode.HEADACHE_MARKER, event_seq=41, boot_id=3, t_ms=123456,
                  data=HeadacheMarker())
    utc_ms = 1767600000123
    point = marker_point("neckline-a1b2c3", event, utc_ms)
    assert point is not None and point.tags == {"source": "device"}
    write_points(store.target, [point])
    (entry,) = store.list()
    assert entry == marker_entry("neckline-a1b2c3", event, utc_ms)
    assert entry.needs_details and entry.severity is None and entry.type == "unknown"
    described = entry.with_changes(severity=6, type="migraine", needs_details=False)
    store.replace(entry, described)
    write_points(store.target, [point])  # the same marker re-sent after a reconnection
    assert store.list() == [described]
    battery = Event(EventCode.LOW_BATTERY, 1, 3, 5, LowBattery(3500, 9))
    assert marker_point("neckline-a1b2c3", battery, utc_ms) is None


def test_headache_commands(cli_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                           ) -> None:
    assert main(["headache", "log", "--onset", "2026-03-29 10:00", "--severity", "6",
                 "--type", "migraine", "--aura", "--notes", "left side"]) == 0
    out = capsys.readouterr().out
    assert "logged:" in out and "2026-03-29 10:00" in out  # shown in local time
    assert main(["headache", "log", "--onset=-3h"]) == 0
    assert "needs details" in capsys.readouterr().out
    assert main(["headache", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["onset"] == "2026-03-29T08:00:00Z"  # 10:00 CEST
    assert listed[1]["needs_details"] is True
    assert main(["headache", "edit", listed[1]["id"][:6], "--severity", "3", "--type",
                 "tension"]) == 0
    assert "updated:" in capsys.readouterr().out
    assert main(["headache", "list", "--needs-details"]) == 0
    assert "no headaches logged that match" in capsys.readouterr().out

    export = tmp_path / "out.csv"
    assert main(["headache", "export", str(export), "--tz", "Europe/Berlin"]) == 0
    assert "+02:00" in export.read_text()
    assert main(["headache", "import", str(export)]) == 0
    assert "imported 0 headache(s)" in capsys.readouterr().out

    diary = tmp_path / "diary.csv"
    diary.write_text("onset,severity,type\n2026-03-28 22:00,4,tension\n"
                     "2026-03-29 02:30,5,tension\n")
    assert main(["headache", "import", str(diary)]) == 1
    err = capsys.readouterr().err
    assert "line 3: 2026-03-29 02:30 does not exist in Europe/Berlin" in err
    assert main(["headache", "import", str(diary), "--tz", "UTC"]) == 0
    assert "imported 2 headache(s)" in capsys.readouterr().out
    assert main(["headache", "import", str(diary), "--tz", "UTC"]) == 0
    assert "imported 0 headache(s)" in capsys.readouterr().out

    assert main(["headache", "delete", listed[0]["id"]]) == 0
    assert main(["headache", "delete", listed[0]["id"]]) == 3
    assert "no headache with id" in capsys.readouterr().err
    assert main(["headache", "log", "--onset", "2099-01-01 10:00", "--severity", "2"]) == 1
    assert "in the future" in capsys.readouterr().err
