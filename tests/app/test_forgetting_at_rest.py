"""Forgetting a person through an application leaves their email and name nowhere at rest, on every backend: not
in the events, the snapshot, the command's idempotency record, the dead letter or the view row; not in the
SQLite database file nor in its -wal and -shm files; not in a ``pg_dump``."""

from __future__ import annotations

import asyncio
import sqlite3

import asyncpg
import pytest
from people import ForgetPerson, People, RegisterPerson, Registration, RenamePerson, build

from citadel import Application, PayloadForgotten
from citadel.context import DispatchContext
from citadel.messaging.consumer import RetryPolicy
from citadel.security.encryption import Keyring, MasterKeys, key_id_of
from citadel.store.url import sqlite_path
from citadel.testing import running, settle
from tests.backends import POSTGRES
from tests.store.at_rest import found_at_rest, pg_dump, sqlite_files

EMAIL, NAME = "grace.hopper@example.com", "Grace Brewster Hopper"
KEPT = "kept.person@example.com"
TTL = 1.0  # seconds an idempotency record lives in the expiry tests: long enough for a slow machine


def at_rest(store_url: str) -> dict[str, bytes]:
    """Every byte the store keeps: the SQLite database and its -wal and -shm files, or a dump of PostgreSQL."""
    database = sqlite_path(store_url)
    return sqlite_files(database) if database is not None else {"pg_dump": pg_dump(POSTGRES)}


def people(**options: object) -> Application:
    return build(keyring=Keyring(MasterKeys.generate()), **options)


async def register_grace(app: Application) -> Registration:
    """Grace, registered and renamed (a snapshot comes with the third event), every registration dead-lettered."""
    app.consumers["people.mailer"].retry = RetryPolicy(max_attempts=1, base_delay=0.001)
    await app.dispatch(RegisterPerson(email=KEPT, name="Kept Person"))
    grace: Registration = await app.dispatch(
        RegisterPerson(email=EMAIL, name=NAME), DispatchContext(idempotency_key="register-grace")
    )
    assert grace.email == EMAIL  # the result quotes her, on purpose
    await app.dispatch(RenamePerson(person_id=grace.person_id, name=NAME))
    for n in range(3):
        await app.dispatch(RegisterPerson(email=f"later-{n}@example.com", name=f"Later Person {n}"))
    await settle(app)
    return grace


async def test_a_forgotten_persons_email_and_name_are_nowhere_at_rest(store_url: str) -> None:
    app = people()
    async with running(app, store=store_url):
        grace = await register_grace(app)
        letters = await app.store.dead_letters("people.mailer")
        assert any(EMAIL in letter.error for letter in letters)  # readable while she is known
        await app.dispatch(ForgetPerson(person_id=grace.person_id))

        stream = f"person-{grace.person_id}"
        assert [r.forgotten for r in await app.store.read_stream(stream)] == [True, True, False]
        assert await app.store.load_snapshot(stream) is None  # taken with the forgetting, sealed with her key
        record = await app.store.idempotency_record("register-grace")
        assert record is not None
        assert record.forgotten
        row = await app.view_reader(People.people).get(grace.person_id)
        assert row is not None
        assert row.email == f"forgotten:{grace.person_id}"
        letters = await app.store.dead_letters("people.mailer")
        assert len(letters) == 5
        assert all(EMAIL not in letter.error and NAME not in letter.error for letter in letters)

        stored = at_rest(store_url)
        assert found_at_rest(stored, [EMAIL, NAME]) == []
        assert found_at_rest(stored, [KEPT]) != []  # the search finds what is there: the kept person's row
    assert found_at_rest(at_rest(store_url), [EMAIL, NAME]) == []  # and after the store closed


async def stored_snapshot(store_url: str, stream_id: str) -> tuple[int, bytes] | None:
    """A stream's snapshot row as stored, ``(version, data)``, read behind the store's back."""
    database = sqlite_path(store_url)
    if database is not None:
        db = sqlite3.connect(database)
        try:
            row = db.execute("SELECT version, data FROM citadel_snapshots WHERE stream_id = ?", (stream_id,)).fetchone()
        finally:
            db.close()
    else:
        connection = await asyncpg.connect(POSTGRES)
        try:
            row = await connection.fetchrow(
                "SELECT version, data FROM citadel.snapshots WHERE stream_id = $1", stream_id
            )
        finally:
            await connection.close()
    return None if row is None else (int(row[0]), bytes(row[1]))


async def test_the_snapshot_the_forgetting_commit_takes_is_sealed_with_the_persons_key(store_url: str) -> None:
    app = people()
    async with running(app, store=store_url):
        grace = await register_grace(app)
        stream = f"person-{grace.person_id}"
        assert await stored_snapshot(store_url, stream) is None  # two events: none yet
        await app.dispatch(ForgetPerson(person_id=grace.person_id))  # the third: its commit takes one
        stored = await stored_snapshot(store_url, stream)
        assert stored is not None
        assert stored[0] == 3
        assert key_id_of(stored[1]) == f"subject:{grace.person_id}"  # not the forgetting event's module key
        assert await app.store.load_snapshot(stream) is None


async def test_a_retry_whose_result_was_about_a_forgotten_person_is_refused_and_writes_nothing(
    store_url: str,
) -> None:
    app = people()
    async with running(app, store=store_url):
        grace = await register_grace(app)
        await app.dispatch(ForgetPerson(person_id=grace.person_id))
        head = await app.store.last_position()
        with pytest.raises(PayloadForgotten, match="not run twice"):
            await app.dispatch(
                RegisterPerson(email=EMAIL, name=NAME), DispatchContext(idempotency_key="register-grace")
            )
        assert await app.store.last_position() == head
        assert found_at_rest(at_rest(store_url), [EMAIL, NAME]) == []


async def test_an_expired_idempotency_record_is_not_replayed_and_is_pruned(store_url: str) -> None:
    app = people(idempotency_ttl=TTL)
    async with running(app, store=store_url):
        grace: Registration = await app.dispatch(RegisterPerson(email=EMAIL, name=NAME))
        rename = RenamePerson(person_id=grace.person_id, name="Amazing Grace")
        retry = DispatchContext(idempotency_key="rename-grace")
        first = await app.execute(rename, retry)
        assert (await app.execute(rename, retry)).replayed
        await asyncio.sleep(TTL + 0.1)
        again = await app.execute(rename, retry)
        assert not again.replayed
        assert again.position != first.position
        assert await app.store.stream_version(f"person-{grace.person_id}") == 3
        await asyncio.sleep(TTL + 0.1)
        assert await app.store.idempotency_record("rename-grace") is None
        assert await app.store.prune_idempotency() == 1
