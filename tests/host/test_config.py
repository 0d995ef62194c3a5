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
