from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mini import build

from citadel import Application
from citadel.testing import running


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Application]:
    async with running(build(), tmp_path) as started:
        yield started
