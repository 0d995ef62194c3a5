"""Configuration loading: file, environment overrides, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from neckline.config import load
from neckline.errors import ConfigError


def test_no_file_means_local_defaults(tmp_path: Path) -> None:
    cfg = load(tmp_path / "absent.toml", env={})
    assert cfg.influx.url is None
    assert not cfg.influx.external
    assert cfg.influx.database == "neckline"
    assert cfg.source is None


def test_file_and_environment_override(tmp_path: Path) -> None:
    path = tmp_path / "neckline.toml"
    path.write_text('[influx]\nurl = "http://10.0.0.5:8086"\ndatabase = "posture"\n')
    cfg = load(path, env={})
    assert cfg.influx.url == "http://10.0.0.5:8086"
    assert cfg.influx.database == "posture"
    assert cfg.source == path
    cfg = load(path, env={"INFLUX_URL": "http://127.0.0.1:9999", "INFLUX_DB": "other"})
    assert cfg.influx.url == "http://127.0.0.1:9999"
    assert cfg.influx.database == "other"


def test_secrets_are_not_in_repr(tmp_path: Path) -> None:
    cfg = load(tmp_path / "absent.toml", env={
        "INFLUX_URL": "http://127.0.0.1:8086", "INFLUX_DIALECT": "v2", "INFLUX_ORG": "me",
        "INFLUX_BUCKET": "neck", "INFLUX_TOKEN": "s3cret-token",
    })
    assert cfg.influx.token == "s3cret-token"
    assert "s3cret-token" not in repr(cfg)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[influx\nurl=", "not valid TOML"),
        ('[influx]\nurl = "localhost:8086"\n', "must look like http://host:8086"),
        ('[influx]\ndialect = "v3"\n', "dialect must be one of"),
        ('[influx]\nurl = "http://h:1"\ndialect = "v2"\n', "needs org, bucket and token"),
        ('[influx]\nport = "8086"\n', "unknown key(s) in [influx]"),
        ("[influx]\ndatabase = 5\n", "must be a string"),
        ('[grafana]\nurl = "x"\n', "unknown section"),
    ],
)
def test_invalid_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "neckline.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load(path, env={})
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_invalid_environment_is_reported_as_such(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="environment: influx url"):
        load(tmp_path / "absent.toml", env={"INFLUX_URL": "nope"})


# --- the service's sections -----------------------------------------------------------------------
def test_every_section_has_defaults_that_load_without_a_file(tmp_path: Path) -> None:
    cfg = load(tmp_path / "absent.toml", env={})
    assert cfg.strain.threshold_cdeg == 2500 and cfg.min_wear_s == 30
    assert cfg.devices.allow == () and cfg.devices.connect_bonded
    assert cfg.store.fsync_interval_s == 0.0 and cfg.store.batch_max_lines == 5000
    assert cfg.logging.level == "info" and cfg.logging.format == "text"
    assert cfg.pipeline.hole_wait_s == 600.0


def test_service_sections_are_read_and_typed(tmp_path: Path) -> None:
    path = tmp_path / "neckline.toml"
    path.write_text(
        'data_dir = "~/neck"\n'
        "[strain]\nthreshold_cdeg = 2000\nhold_s = 30\nmin_wear_s = 45\n"
        '[devices]\nallow = ["c0-de-00-00-00-01"]\n'
        'aliases = {"C0:DE:00:00:00:01" = "alice"}\nconnect_bonded = false\n'
        "[link]\nbackoff_cap = 120\nbackfill_interval = 0\n"
        '[store]\nspool_dir = "/tmp/sp"\nspool_max_mb = 64\nfsync_interval_s = 1\n'
        "[filters]\ncutoff_hz = 1.5\n"
        "[pipeline]\nhole_wait_s = 120\n"
        '[logging]\nlevel = "debug"\nformat = "json"\n'
    )
    cfg = load(path, env={})
    assert cfg.strain.threshold_cdeg == 2000 and cfg.strain.hold_s == 30 and cfg.min_wear_s == 45
    assert cfg.devices.allow == ("C0:DE:00:00:00:01",)
    assert cfg.devices.tag("c0:de:00:00:00:01") == "alice"
    assert cfg.devices.tag("C0:DE:00:00:00:02") == "neckline-c0de00000002"
    assert not cfg.devices.connect_bonded
    assert cfg.link.backoff_cap == 120.0 and isinstance(cfg.link.backoff_cap, float)
    assert cfg.link.settings_kwargs()["backfill_interval"] is None
    assert cfg.store.spool_dir == Path("/tmp/sp") and cfg.store.fsync_interval_s == 1.0
    assert cfg.filters.cutoff_hz == 1.5 and cfg.pipeline.hole_wait_s == 120.0
    assert cfg.logging.format == "json" and cfg.data_dir == Path("~/neck").expanduser()


def test_environment_overrides_for_the_service(tmp_path: Path) -> None:
    path = tmp_path / "neckline.toml"
    path.write_text('[logging]\nlevel = "warning"\n')
    cfg = load(path, env={"NECKLINE_LOG_LEVEL": "debug", "NECKLINE_LOG_FORMAT": "json",
                          "NECKLINE_FSYNC_INTERVAL": "2.5"})
    assert cfg.logging.level == "debug" and cfg.logging.format == "json"
    assert cfg.store.fsync_interval_s == 2.5
    with pytest.raises(ConfigError, match="environment NECKLINE_LOG_FORMAT"):
        load(path, env={"NECKLINE_LOG_FORMAT": "xml"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[strain]\nthreshold_cdeg = 50\n", "[strain] threshold_cdeg must be 100..9000, got 50"),
        ("[strain]\nhysteresis_cdeg = 2600\n", "must be smaller than every threshold"),
        ("[strain]\nhold_s = 1.5\n", "hold_s must be an integer"),
        ("[strain]\nthreshhold_cdeg = 2000\n", "unknown key(s) in [strain]: ['threshhold_cdeg']"),
        ("[strain]\nmin_wear_s = 61\n", "[strain].min_wear_s must be an integer 0..60"),
        ('[devices]\nallow = ["nope"]\n', "not a Bluetooth address: 'nope'"),
        ('[devices]\naliases = {"C0:DE:00:00:00:01" = "al ice"}\n', "must be 1-64 letters"),
        ('[devices]\naliases = {"C0:DE:00:00:00:01" = "a", "C0:DE:00:00:00:02" = "a"}\n',
         "are both called 'a'"),
        ("[devices]\nscan_window_s = 90\n", "scan_window_s must not exceed scan_every_s"),
        ("[link]\nbackoff_cap = 0.5\n", "backoff_cap must not be below backoff_base"),
        ("[link]\nscan_timeout = true\n", "[link].scan_timeout must be a number, got True"),
        ("[link]\nwatchdog = 3\n", "unknown key(s) in [link]: ['watchdog']"),
        ('[store]\nraw_retention = "30"\n', "raw_retention must be an InfluxDB duration"),
        ('[store]\nraw_retention = "30m"\n', "of at least 1h"),
        ("[store]\nspool_max_mb = 0\n", "spool_max_mb must be at least 1"),
        ("[store]\nspool_dir = 5\n", "[store].spool_dir must be a string path"),
        ("[filters]\nspike_window = 2\n", "spike_window must be at least 3"),
        ("[pipeline]\nstatus_interval_s = 0\n", "status_interval_s must be positive"),
        ('[logging]\nlevel = "loud"\n', "level must be one of"),
        ("[logging]\nlevel = 3\n", "[logging].level must be a string"),
        ('strain = "x"\n', "[strain] must be a table"),
    ],
)
def test_invalid_service_settings_name_section_key_and_file(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "neckline.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load(path, env={})
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_link_and_filter_sections_mirror_the_classes_they_configure() -> None:
    from dataclasses import fields

    from neckline.config import FiltersConfig, LinkConfig
    from neckline.filters import FilterConfig
    from neckline.link.settings import LinkSettings

    settings = LinkSettings()
    for f in fields(LinkConfig):
        assert getattr(settings, f.name) == getattr(LinkConfig(), f.name), f.name
    assert LinkSettings(**LinkConfig().settings_kwargs()) == settings
    for f in fields(FiltersConfig):
        assert getattr(FilterConfig(), f.name) == getattr(FiltersConfig(), f.name), f.name


def test_effective_configuration_masks_secrets(tmp_path: Path) -> None:
    from neckline.config import effective

    cfg = load(tmp_path / "absent.toml", env={
        "INFLUX_URL": "http://127.0.0.1:8086", "INFLUX_USERNAME": "me",
        "INFLUX_PASSWORD": "hunter2-password",
    })
    shown = effective(cfg)
    assert shown["influx"]["password"] == "********" and shown["influx"]["username"] == "me"
    assert "hunter2" not in repr(shown)
