from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))

from mini import build

from citadel import Application


@pytest.fixture
async def application(store_url: str) -> AsyncIterator[Application]:
    app = build(store=store_url)
    async with app:
        yield app
