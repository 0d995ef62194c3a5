"""Headache CSV import/export: tolerant formats, every error with its line, time zones and DST."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from neckline.headache.csvio import (
    HeadacheCsvError,
    read_headache_csv,
    read_headache_text,
    write_headache_csv,
)
from neckline.headache.model import EntryError, HeadacheEntry, clean_text, onset_id
from neckline.headache.timeparse import (
    TimeOptions,
    TimeParseError,
    parse_cli_time,
    parse_time,
    zone,
)
from neckline.sim.files import write_headache_csv as write_sim_headaches
from neckline.sim.headache import Diary

BERLIN = zone("Europe/Berlin")


def test_minimal_file_with_z_times_is_read() -> None:
    parsed = read_headache_text("onset,severity,type\n2026-01-05T08:00:00Z,5,migraine\n",
                                TimeOptions())
    (entry,) = parsed.entries
    assert entry.onset == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    assert (entry.severity, entry.type, entry.source) == (5, "migraine", "import")
    assert entry.id == onset_id(entry.onset)
    assert parsed.lines == [2]


def test_simulator_headache_file_imports(tmp_path: Path) -> None:
    import numpy as np

    diary = Diary(np.array([1767600000, 1767700000 - 40], dtype=np.int64),
                  np.array([3, 8], dtype=np.int8), np.array(["tension", "other"]))
    path = tmp_path / "h.csv"
    write_sim_headaches(path, diary)
    parsed = read_headache_csv(path, TimeOptions())
    assert [e.onset_ms // 1000 for e in parsed.entries] == diary.onset_epoch_s.tolist()
    assert [e.type for e in parsed.entries] == ["tension", "other"]


def test_common_formats_semicolons_bom_aliases_and_extra_columns() -> None:
    text = ("\ufeffStart;Intensity;Kind;Meds;Comment;Mood\n"
            "2026-02-03 07:15;4;Tension-type;ibuprofen;\"woke up\nwith it\";meh\n"
            "04.02.2026 18:30;6;migraine;;;\n"
            "2026/02/05 9:05 pm;2;;;;\n")
    parsed = read_headache_text(text, TimeOptions(tz=UTC))
    a, b, c = parsed.entries
    assert a.onset == datetime(2026, 2, 3, 7, 15, tzinfo=UTC)
    assert (a.type, a.medication, a.notes) == ("tension", "ibuprofen", "woke up / with it")
    assert b.onset == datetime(2026, 2, 4, 18, 30, tzinfo=UTC)
    assert c.onset == datetime(2026, 2, 5, 21, 5, tzinfo=UTC) and c.type == "unknown"
    assert parsed.ignored_columns == ["Mood"]
    assert parsed.lines == [2, 4, 5]  # the quoted note spans lines 2-3


def test_every_bad_row_is_reported_with_its_line_and_nothing_is_returned() -> None:
    text = ("onset,severity,type\n"
            "2026-01-05 08:00,5,migraine\n"
            "2026-01-06 08:00,11,tension\n"
            "\n"
            "yesterday,3,tension\n"
            "2026-01-07,3,tension\n"
            "2026-01-08 08:00,3,cluster\n"
            "2026-01-05 08:00:30,4,other\n")
    with pytest.raises(HeadacheCsvError) as info:
        read_headache_text(text, TimeOptions(), "diary.csv")
    lines = [e.line for e in info.value.errors]
    assert lines == [3, 5, 6, 7, 8]
    message = str(info.value)
    assert "nothing was imported" in message
    assert "line 3: severity must be a whole number 0-10" in message
    assert "line 6: '2026-01-07' has no time of day" in message
    assert "line 8: another headache starts in the same minute (line 2)" in message


def test_missing_required_columns_and_foreign_files() -> None:
    with pytest.raises(HeadacheCsvError, match="missing column"):
        read_headache_text("time,wear_s,strain_s\n2026-01-05T08:00:00Z,60,0\n", TimeOptions())
    with pytest.raises(HeadacheCsvError, match="empty"):
        read_headache_text("\n\n", TimeOptions())


def test_not_utf8_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("onset,severity,type,notes\n2026-01-05 08:00,5,migraine,Kopfweh übel\n"
                     .encode("latin-1"))
    with pytest.raises(HeadacheCsvError, match="line 2: not UTF-8"):
        read_headache_csv(path, TimeOptions())


def test_local_times_across_the_spring_dst_change() -> None:
    # Berlin moves from UTC+1 to UTC+2 at 02:00 local on 2026-03-29.
    text = ("onset,severity,type\n"
            "2026-03-28 10:00,5,migraine\n"
            "2026-03-29 01:30,5,migraine\n"
            "2026-03-29 10:00,5,migraine\n"
            "2026-03-29T10:00:00+01:00,5,tension\n")
    parsed = read_headache_text(text, TimeOptions(tz=BERLIN))
    assert [e.onset.strftime("%d %H:%M") for e in parsed.entries] == [
        "28 09:00", "29 00:30", "29 08:00", "29 09:00"]
    with pytest.raises(HeadacheCsvError, match="line 2: 2026-03-29 02:30 does not exist"):
        read_headache_text("onset,severity,type\n2026-03-29 02:30,5,migraine\n",
                           TimeOptions(tz=BERLIN))


def test_repeated_hour_in_autumn_is_refused_unless_chosen() -> None:
    text = "onset,severity,type\n2026-10-25 02:30,5,migraine\n"
    with pytest.raises(HeadacheCsvError, match="happens twice"):
        read_headache_text(text, TimeOptions(tz=BERLIN))
    early = read_headache_text(text, TimeOptions(tz=BERLIN, ambiguous="earlier")).entries[0]
    late = read_headache_text(text, TimeOptions(tz=BERLIN, ambiguous="later")).entries[0]
    assert early.onset == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert late.onset == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)


def test_slashed_dates_take_their_order_from_the_file() -> None:
    dmy = "onset,severity,type\n03/04/2026 10:00,5,migraine\n29/04/2026 10:00,4,tension\n"
    parsed = read_headache_text(dmy, TimeOptions())
    assert parsed.date_order == "dmy"
    assert parsed.entries[0].onset.date().isoformat() == "2026-04-03"
    mdy = "onset,severity,type\n03/04/2026 10:00,5,migraine\n04/29/2026 10:00,4,tension\n"
    assert read_headache_text(mdy, TimeOptions()).entries[0].onset.month == 3
    with pytest.raises(HeadacheCsvError, match="day/month or month/day"):
        read_headache_text("onset,severity,type\n03/04/2026 10:00,5,migraine\n", TimeOptions())
    both = "onset,severity,type\n29/04/2026 10:00,5,migraine\n04/30/2026 10:00,4,tension\n"
    with pytest.raises(HeadacheCsvError, match="day-first on line 2 but month-first on line 3"):
        read_headache_text(both, TimeOptions())
    forced = read_headache_text("onset,severity,type\n03/04/2026 10:00,5,migraine\n",
                                TimeOptions(date_order="mdy"))
    assert forced.entries[0].onset.month == 3


def test_export_round_trips_through_import_in_utc_and_local_time() -> None:
    entries = [
        HeadacheEntry(id="h1", onset=datetime(2026, 3, 29, 0, 30, tzinfo=UTC), severity=7,
                      type="migraine", end=datetime(2026, 3, 29, 5, 0, tzinfo=UTC), aura=True,
                      medication="triptan, 50 mg", notes='said "ouch"', source="cli"),
        HeadacheEntry(id="h2", onset=datetime(2026, 3, 30, 12, 0, tzinfo=UTC), severity=None,
                      needs_details=True, source="device"),
    ]
    for tz in (UTC, BERLIN):
        out = io.StringIO()
        assert write_headache_csv(out, entries, tz) == 2
        back = read_headache_text(out.getvalue(), TimeOptions(tz=UTC)).entries
        assert back == entries


def test_entry_rules() -> None:
    onset = datetime(2026, 1, 5, 8, tzinfo=UTC)
    with pytest.raises(EntryError, match="severity"):
        HeadacheEntry(id="a", onset=onset)
    with pytest.raises(EntryError, match="end lies before"):
        HeadacheEntry(id="a", onset=onset, severity=2, end=datetime(2026, 1, 5, 7, tzinfo=UTC))
    with pytest.raises(EntryError, match="type"):
        HeadacheEntry(id="a", onset=onset, severity=2, type="cluster")
    with pytest.raises(EntryError, match="id"):
        HeadacheEntry(id="a b", onset=onset, severity=2)
    assert clean_text("one\r\ntwo\nthree ") == "one / two / three"
    assert onset_id(onset) == onset_id(datetime(2026, 1, 5, 8, 0, 40, tzinfo=UTC))
    assert onset_id(onset) != onset_id(datetime(2026, 1, 5, 8, 1, tzinfo=UTC))


def test_command_line_times() -> None:
    now = datetime(2026, 3, 30, 12, 0, tzinfo=UTC)  # 14:00 in Berlin (CEST)
    opts = TimeOptions(tz=BERLIN)
    assert parse_cli_time("now", opts, now) == now
    assert parse_cli_time("-90m", opts, now) == datetime(2026, 3, 30, 10, 30, tzinfo=UTC)
    assert parse_cli_time("2h ago", opts, now) == datetime(2026, 3, 30, 10, 0, tzinfo=UTC)
    assert parse_cli_time("09:15", opts, now) == datetime(2026, 3, 30, 7, 15, tzinfo=UTC)
    # Yesterday was still winter time at 01:30 local: UTC+1.
    assert parse_cli_time("yesterday 01:30", opts, now) == datetime(2026, 3, 29, 0, 30,
                                                                     tzinfo=UTC)
    with pytest.raises(TimeParseError):
        parse_cli_time("soon", opts, now)
    with pytest.raises(TimeParseError, match="unknown time zone"):
        zone("Mars/Olympus")
    assert parse_time("2026-01-05 8:00 am", TimeOptions()) == datetime(2026, 1, 5, 8,
                                                                       tzinfo=UTC)
