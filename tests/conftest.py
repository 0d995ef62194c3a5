"""Fixtures shared by every test: a real influxd on loopback, started by Neckline's own launcher."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from neckline.influxd import InfluxdState, temporary_influxd
from neckline.influxql import query

pytest_plugins = ["tests.vble_fixtures"]

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

_db_counter = itertools.count()


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxdState]:
    """One private influxd 1.6.7 for the whole test session, in a temporary directory."""
    with temporary_influxd(tmp_path_factory.mktemp("influxd")) as state:
        yield state


@pytest.fixture
def influx_db(influxd: InfluxdState) -> Iterator[str]:
    """A fresh, empty database on the session's influxd; dropped afterwards."""
    name = f"test_{next(_db_counter)}"
    query(influxd.url, f'CREATE DATABASE "{name}"')
    yield name
    query(influxd.url, f'DROP DATABASE "{name}"')


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared` beside the checkout; tests that need it skip cleanly when it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not present beside the checkout")
    return SHARED
