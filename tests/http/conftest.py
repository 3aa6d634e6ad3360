from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))

from mini import build

from citadel import Application
from citadel.http import create_asgi


@pytest.fixture
async def application(store_url: str) -> AsyncIterator[Application]:
    app = build(store=store_url)
    async with app:
        yield app


@pytest.fixture
async def client(application: Application) -> AsyncIterator[httpx.AsyncClient]:
    asgi = create_asgi(application, manage_lifecycle=False, default_wait=1.0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(asgi), base_url="http://shop") as http:
        yield http
