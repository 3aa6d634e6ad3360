from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from mini import build

from citadel import Application
from citadel.testing import running


@pytest.fixture
async def app(store_url: str) -> AsyncIterator[Application]:
    async with running(build(), store=store_url) as started:
        yield started
