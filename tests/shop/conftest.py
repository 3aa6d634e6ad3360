from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from citadel import Application
from citadel.testing import running
from examples.shop import build_app


@pytest.fixture
async def shop(store_url: str) -> AsyncIterator[Application]:
    async with running(build_app(secure=False), store=store_url) as app:
        yield app
