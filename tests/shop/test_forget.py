"""Forgetting a person (crypto-shredding): their events stay in the log, unreadable for good."""

from __future__ import annotations

import asyncpg
import pytest

from citadel import NotFound
from citadel.security.encryption import Keyring, MasterKeys
from citadel.testing import running
from examples.shop import build_app
from examples.shop.users.contract import ForgetUser, GetUser, RegisterUser, UserProfile
from tests.backends import POSTGRES

EMAIL, NAME = "grace.hopper@example.com", "Grace Brewster Hopper"


async def stored_bytes(store_url: str) -> bytes:
    """The event store's payloads (events and snapshots) as stored, read behind the store's back."""
    if store_url.startswith("sqlite:///"):
        import sqlite3

        db = sqlite3.connect(store_url.removeprefix("sqlite:///"))
        try:
            rows = db.execute("SELECT data FROM citadel_events UNION ALL SELECT data FROM citadel_snapshots")
            return b"".join(r[0] for r in rows)
        finally:
            db.close()
    connection = await asyncpg.connect(POSTGRES)
    try:
        rows = await connection.fetch("SELECT data FROM citadel.events UNION ALL SELECT data FROM citadel.snapshots")
        return b"".join(r[0] for r in rows)
    finally:
        await connection.close()


async def test_a_registered_persons_email_and_name_never_reach_the_disk_in_plaintext(store_url: str) -> None:
    keys = MasterKeys.generate()
    async with running(build_app(store=store_url, secure=False, keyring=Keyring(keys)), store=store_url) as app:
        await app.dispatch(RegisterUser(email=EMAIL, name=NAME))
    stored = await stored_bytes(store_url)
    assert EMAIL.encode() not in stored
    assert NAME.encode() not in stored


async def test_a_forgotten_person_is_shown_as_forgotten_and_their_data_is_gone(store_url: str) -> None:
    keys = MasterKeys.generate()
    async with running(build_app(store=store_url, secure=False, keyring=Keyring(keys)), store=store_url) as app:
        user_id = (await app.dispatch(RegisterUser(email=EMAIL, name=NAME))).user_id
        await app.dispatch(ForgetUser(user_id=user_id))
        assert await app.query(GetUser(user_id=user_id)) == UserProfile(
            user_id=user_id, email=f"forgotten:{user_id}", name="", roles=[], forgotten=True
        )
        registered = (await app.store.read_stream(f"user-{user_id}"))[0]
        assert registered.forgotten
        # the email is free again: a person may come back as someone new
        assert (await app.dispatch(RegisterUser(email=EMAIL, name=NAME))).user_id != user_id


async def test_a_rebuild_after_forgetting_gives_the_same_views(store_url: str) -> None:
    keys = MasterKeys.generate()
    async with running(build_app(store=store_url, secure=False, keyring=Keyring(keys)), store=store_url) as app:
        kept = (await app.dispatch(RegisterUser(email="kept@example.com", name="Kept"))).user_id
        gone = (await app.dispatch(RegisterUser(email=EMAIL, name=NAME))).user_id
        await app.dispatch(ForgetUser(user_id=gone))
        before = [await app.query(GetUser(user_id=u)) for u in (kept, gone)]
        await app.rebuild_projection("users.Users")
        assert [await app.query(GetUser(user_id=u)) for u in (kept, gone)] == before


async def test_forgetting_someone_unknown_is_not_found(store_url: str) -> None:
    keys = MasterKeys.generate()
    async with running(build_app(store=store_url, secure=False, keyring=Keyring(keys)), store=store_url) as app:
        with pytest.raises(NotFound):
            await app.dispatch(ForgetUser(user_id="nobody"))
