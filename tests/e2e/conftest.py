"""The end-to-end fixtures (tests/e2e/wearer_fixtures.py) for every test in tests/e2e."""

from tests.e2e.wearer_fixtures import host, sim

__all__ = ["host", "sim"]
