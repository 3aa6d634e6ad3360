"""The shop over HTTP, on each storage backend (``store_url`` comes from ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from shopper import over_http

from citadel import Application
from examples.shop import build_app


@pytest.fixture
async def shop(store_url: str) -> AsyncIterator[Application]:
    app = build_app(store=store_url)
    async with app:
        yield app


@pytest.fixture
async def client(shop: Application) -> AsyncIterator[httpx.AsyncClient]:
    async with over_http(shop) as http:
        yield http
