"""A retry of a command whose idempotency record belongs to a forgotten person is refused with 410 Gone: running it
again would register the person who asked to be forgotten anew, and its first result can no longer be read."""

from __future__ import annotations

import httpx

from citadel.http import create_asgi
from citadel.security.encryption import Keyring, MasterKeys
from citadel.testing import running
from examples.shop import build_app
from examples.shop.users.contract import ForgetUser


async def test_a_retry_after_the_person_was_forgotten_is_410_and_writes_nothing(store_url: str) -> None:
    app = build_app(store=store_url, secure=False, keyring=Keyring(MasterKeys.generate()))
    async with running(app, store=store_url):
        transport = httpx.ASGITransport(create_asgi(app, manage_lifecycle=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
            register = {"email": "gone@example.com", "name": "Gone"}
            first = await client.post("/users/register-user", json=register, headers={"idempotency-key": "k-1"})
            assert first.status_code == 200, first.text
            await app.dispatch(ForgetUser(user_id=first.json()["user_id"]))
            head = await app.store.head_position()

            retry = await client.post("/users/register-user", json=register, headers={"idempotency-key": "k-1"})

            assert retry.status_code == 410, retry.text
            assert retry.headers["content-type"] == "application/problem+json"
            assert retry.json()["type"] == "urn:citadel:problem:forgotten"
            assert "gone@example.com" not in retry.text
            assert await app.store.head_position() == head
