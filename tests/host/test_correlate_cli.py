"""`neckline correlate` end to end: files, JSON keys, the HTML report, InfluxDB in and out."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from neckline.analysis.correlation import Headaches, correlate
from neckline.analysis.exposure import (
    from_arrays,
    read_exposure_csv,
    read_exposure_influx,
    read_exposure_text,
)
from neckline.analysis.report import render_html
from neckline.analysis.summary import summary_text
from neckline.cli import main
from neckline.config import InfluxConfig
from neckline.errors import NecklineError
from neckline.headache.influx import InfluxTarget, write_points
from neckline.influxd import InfluxdState
from neckline.influxql import query, series_values
from neckline.sim import HeadacheConfig, simulate_person
from neckline.sim.files import write_exposure_csv, write_headache_csv
from neckline.store import Point

WINDOW_KEYS = ["window", "odds_ratio", "ci_low", "ci_high", "p_adjusted", "n_cases"]
CAUSAL = re.compile(r"\b(causes|caused by|triggers|triggered|is the reason|leads to)\b", re.I)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("correlate")
    cfg = HeadacheConfig(rate_per_week=3.0, log_or_per_hour=math.log(4.0))
    person = simulate_person(11, days=168, headache=cfg)
    write_exposure_csv(root / "exposure.csv", person.observed)
    write_headache_csv(root / "headaches.csv", person.diary)
    return root / "exposure.csv", root / "headaches.csv"


def _offline(files: tuple[Path, Path], *extra: str) -> list[str]:
    return ["correlate", "--exposure", str(files[0]), "--headaches", str(files[1]),
            "--tz", "UTC", *extra]


def test_json_has_exactly_the_promised_keys(files: tuple[Path, Path],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_offline(files, "--json")) == 0
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data["sufficient"], bool)
    assert [w["window"] for w in data["windows"]] == ["2-6h", "6-12h", "12-24h", "24-48h"]
    for w in data["windows"]:
        assert list(w) == WINDOW_KEYS
        assert isinstance(w["n_cases"], int)
    planted = data["windows"][1]
    assert planted["p_adjusted"] < 0.05 and planted["ci_low"] > 1
    assert data["prodrome"]["window"] == "0-2h"
    assert data["prodrome"]["label"] == "possibly reverse causation"
    assert all("case_windows_excluded" in d for d in data["window_details"])


def test_windows_and_type_options(files: tuple[Path, Path],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_offline(files, "--json", "--windows", "3-9,9-15", "--type", "migraine")) == 0
    data = json.loads(capsys.readouterr().out)
    assert [w["window"] for w in data["windows"]] == ["3-9h", "9-15h"]
    assert data["headache_types"] == ["migraine"]
    assert 0 < data["headaches"] < data["headaches_total"]
    assert main(_offline(files, "--json", "--windows", "0-2,6-12")) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["prodrome"] is None
    # In the family, 0-2 h is tested and adjusted like the others: nothing calls it apart.
    assert main(_offline(files, "--windows", "0-2,6-12")) == 0
    out = capsys.readouterr().out
    assert "possibly reverse causation" not in out and "not adjusted" not in out
    report = files[0].parent / "family.html"
    assert main(_offline(files, "--windows", "0-2,6-12", "--html", str(report))) == 0
    capsys.readouterr()
    assert "reported apart" not in report.read_text(encoding="utf-8")
    assert main(_offline(files, "--windows", "12-6")) == 1
    assert "0 <= start < end" in capsys.readouterr().err


def test_terminal_tables(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_offline(files)) == 0
    out = capsys.readouterr().out
    assert "Odds ratio per hour of sustained strain" in out
    assert "possibly reverse causation" in out
    assert "Dose-response" in out and "headache-free days" in out
    assert "Verdict:" in out


def test_html_report_is_self_contained_with_three_plots(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.html"
    assert main(_offline(files, "--html", str(report))) == 0
    html = report.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    for ident in ("plot-timeline", "plot-lag-profile", "plot-dose-response"):
        assert html.count(f'<svg id="{ident}"') == 1
    assert not re.search(r"(https?:)?//[a-z0-9]", html, re.I)
    assert "<script" not in html and "<link" not in html and "src=" not in html
    timeline = re.search(r'<svg id="plot-timeline".*?</svg>', html, re.S)
    assert timeline is not None and timeline.group().count("headache (") > 20
    assert "@media print" in html


def test_offline_mode_errors(files: tuple[Path, Path], tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["correlate", "--exposure", str(files[0])]) == 1
    assert "needs both" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("time,wear_s,strain_s\n2026-01-05T08:00:00Z,60,10\n2026-01-05T08:01:30Z,x,1\n")
    assert main(["correlate", "--exposure", str(bad), "--headaches", str(files[1])]) == 1
    assert "line 3" in capsys.readouterr().err


def test_exposure_csv_reader() -> None:
    text = ("time,wear_s,strain_s,strain_load,extra\n"
            "2026-01-05T08:00:00Z,60,20,1.5,a\n"
            "2026-01-05T08:03:00Z,30,40,0,b\n"  # strain above wear: dropped and counted
            "2026-01-05T08:04:00Z,,,,c\n"  # no wear figure: no data
            "2026-01-05T08:05:00Z,12,,,d\n")  # worn too little to score: missing, not bad
    series = read_exposure_text(text)
    assert series.start_min * 60 == 1767600000 and len(series) == 1
    assert series.rejected == 1 and series.rows == 1 and series.unscored == 1
    with pytest.raises(NecklineError, match="missing column"):
        read_exposure_text("onset,severity,type\n")
    with pytest.raises(NecklineError, match="line 3: minute also on line 2"):
        read_exposure_text("time,wear_s,strain_s\n2026-01-05T08:00:00Z,60,0\n"
                           "2026-01-05T08:00:00Z,60,0\n")


def test_summary_never_claims_causation(files: tuple[Path, Path]) -> None:
    series = read_exposure_csv(files[0])
    from neckline.headache.csvio import read_headache_csv
    from neckline.headache.timeparse import TimeOptions

    h = Headaches.from_entries(read_headache_csv(files[1], TimeOptions()).entries)
    texts = [summary_text(correlate(series, h))]
    quiet = simulate_person(3, days=28, headache=HeadacheConfig(rate_per_week=1.0))
    texts.append(summary_text(correlate(
        from_arrays(quiet.observed.start, quiet.observed.wear_s, quiet.observed.strain_s),
        Headaches(quiet.diary.onset_epoch_s, tuple(quiet.diary.kind.tolist())))))
    for text in texts:
        assert text and not CAUSAL.search(text)
    assert "not proof of cause and effect" in texts[0]
    assert texts[1].startswith("Not enough data yet:")
    assert render_html(correlate(series, h)).count("not enough data yet") <= 1


def test_influx_mode_reads_the_log_and_stores_results(
    influxd: InfluxdState, influx_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("NECKLINE_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("INFLUX_URL", influxd.url)
    monkeypatch.setenv("INFLUX_DB", influx_db)
    person = simulate_person(6, days=28, headache=HeadacheConfig(rate_per_week=3.0))
    obs = person.observed
    minutes = obs.minute_epoch_s
    target = InfluxTarget(influxd.url, InfluxConfig(database=influx_db))
    points = [Point("exposure", int(minutes[i]) * 1000, {"device": "dev-1"},
                    {"wear_s": float(obs.wear_s[i]), "strain_s": float(obs.strain_s[i])})
              for i in np.flatnonzero(obs.wear_s > 0)]
    # Minutes the host did not score (worn a little, strain left out): missing data, which
    # changes nothing below, and counted apart from impossible rows.
    off = np.flatnonzero(obs.wear_s == 0)[:5]
    points += [Point("exposure", int(minutes[i]) * 1000, {"device": "dev-1"}, {"wear_s": 9.0})
               for i in off]
    write_points(target, points)
    read = read_exposure_influx(target)
    assert (read.unscored, read.rejected) == (len(off), 0)
    diary = tmp_path / "diary.csv"
    write_headache_csv(diary, person.diary)
    assert main(["headache", "import", str(diary)]) == 0
    capsys.readouterr()
    assert main(["correlate", "--tz", "UTC", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["headaches"] == len(person.diary)
    offline = correlate(from_arrays(obs.start, obs.wear_s, obs.strain_s),
                        Headaches(person.diary.onset_epoch_s, tuple(person.diary.kind.tolist())))
    assert [w["n_cases"] for w in data["windows"]] == [r.n_cases for r in offline.windows]
    assert main(["correlate", "--tz", "UTC", "--json", "--device", "dev-1", "--no-save"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert one["windows"] == data["windows"]
    assert main(["correlate", "--tz", "UTC", "--json", "--device", "other", "--no-save"]) == 0
    assert json.loads(capsys.readouterr().out)["days_of_wear"] == 0
    stored = series_values(query(influxd.url, 'SELECT * FROM "forever"."correlation"',
                                 db=influx_db))
    assert sorted(row["window"] for row in stored) == sorted(
        ["0-2h", "2-6h", "6-12h", "12-24h", "24-48h"])
    assert {row["sufficient"] for row in stored} == {0}
    assert {row["window"]: row["alternative"] for row in stored} == {
        "0-2h": "two-sided", "2-6h": "greater", "6-12h": "greater", "12-24h": "greater",
        "24-48h": "greater"}
