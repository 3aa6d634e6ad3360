"""A shop with a purchase made (register, publish, order, invoice, pay) on an encrypting SQLite store, and clients
of its console over ASGI: an administrator's, a member's, and an anonymous one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from citadel import Application
from citadel.http import create_asgi
from citadel.http.auth import bearer_authenticator
from citadel.security import TokenVerifier
from citadel.security.encryption import Keyring, MasterKeys
from examples.shop import build_app
from tests.e2e.shopper import SECRET, buy, can_read, publish, register, settle, token

ORIGIN = "http://shop"
EMAIL = "ada.console@example.com"
ADMIN = {"authorization": f"Bearer {token('ops', 'admin')}"}
MEMBER = {"authorization": f"Bearer {token('ann', 'member')}"}
SAME_ORIGIN = {"origin": ORIGIN, "sec-fetch-site": "same-origin"}


@dataclass
class Shop:
    """The running shop, its console's client (no credentials by default) and the purchase's ids."""

    app: Application
    client: httpx.AsyncClient
    user_id: str
    content_id: str
    order_id: str


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[Shop]:
    app = build_app(store=f"sqlite:///{tmp_path / 'shop.db'}", keyring=Keyring(MasterKeys.generate()))
    asgi = create_asgi(app, manage_lifecycle=False, authenticate=bearer_authenticator(TokenVerifier(secret=SECRET)))
    transport = httpx.ASGITransport(asgi, raise_app_exceptions=False)
    async with app:
        async with httpx.AsyncClient(transport=transport, base_url=ORIGIN, headers=ADMIN) as admin:
            user_id = await register(admin, EMAIL, "Ada")
            content_id = await publish(admin, 700, "Notes")
            placed = await buy(admin, user_id, content_id)
            assert await can_read(admin, user_id, content_id, expected=True)
            await settle(admin)
        async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as client:
            yield Shop(app, client, user_id, content_id, placed.order_id)
