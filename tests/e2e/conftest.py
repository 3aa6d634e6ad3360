from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from shopper import over_http

from citadel import Application
from examples.shop import build_app


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """The shop's SQLite file: a test may stop the shop and start another one on it."""
    return f"sqlite:///{tmp_path / 'shop.db'}"


@pytest.fixture
async def shop(store_url: str) -> AsyncIterator[Application]:
    app = build_app(store=store_url)
    async with app:
        yield app


@pytest.fixture
async def client(shop: Application) -> AsyncIterator[httpx.AsyncClient]:
    async with over_http(shop) as http:
        yield http
