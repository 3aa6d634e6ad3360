from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from examples.shop import build_app

from citadel import Application
from citadel.testing import running


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[Application]:
    async with running(build_app(), tmp_path) as app:
        yield app
