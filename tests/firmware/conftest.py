from __future__ import annotations

import pytest

from tests.firmware.mp import micropython_binary


@pytest.fixture(scope="session")
def micropython() -> str:
    binary = micropython_binary()
    if binary is None:
        pytest.fail("the micropython unix port is missing; `make test` installs it")
    return binary
