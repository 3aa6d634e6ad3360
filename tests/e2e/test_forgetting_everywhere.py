"""Forgetting reaches every copy, end to end over the real NATS server.

A person is registered with a unique email and name and uses the shop (an order, a payment) across three services,
then is forgotten; a second, two-service application exports an event that carries an email and a name, so the
JetStream path of personal data is exercised too (the shop's public events carry no subject's personal data). Every
byte a service keeps is then searched for the email and the name: each SQLite store file (the database, its -wal
and -shm files) or a ``pg_dump`` of each service's own PostgreSQL database, and every message of the JetStream
stream (bodies and headers). Before forgetting the search finds them somewhere; afterwards nowhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import nats
import pytest
from deployments import NATS, SERVICES, Deployment, broker_namespace, drop_namespace, services_on
from shopper import buy, ok, over_http, publish, register, settle

from citadel import Application
from citadel.messaging import wire
from citadel.messaging.nats import NatsBroker
from citadel.security.encryption import is_sealed
from citadel.store.shared_keys import read_data_keys
from tests.backends import POSTGRES
from tests.broker.mailing_app import ForgetAccount, GetRecipient, OpenAccount, Pair, two_services
from tests.broker.test_inbox import eventually, settled

BACKENDS = ("sqlite", "postgres")


class Person:
    """An email and a name no other test uses, and the bytes to search for."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:12]
        self.email = f"forget.{tag}@example.com"
        self.name = f"Ada Forgettable {tag}"

    @property
    def needles(self) -> list[bytes]:
        return [self.email.encode(), self.name.encode()]


class Stores:
    """Where each service of a deployment keeps its data: SQLite files in a folder, or PostgreSQL databases."""

    def __init__(self, backend: str, folder: Path, services: list[str]) -> None:
        self.backend, self.folder = backend, folder
        base = POSTGRES.rpartition("/")[0]
        self.databases = {s: f"citadel_forget_{os.getpid()}_{uuid.uuid4().hex[:6]}_{s}" for s in services}
        self.urls = {
            s: f"{base}/{db}" if backend == "postgres" else f"sqlite:///{folder / s}.db"
            for s, db in self.databases.items()
        }

    async def __aenter__(self) -> Stores:
        if self.backend == "postgres":
            await self._each_database("CREATE DATABASE")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.backend == "postgres":
            await self._each_database("DROP DATABASE IF EXISTS", " WITH (FORCE)")

    async def _each_database(self, statement: str, suffix: str = "") -> None:
        admin = await asyncpg.connect(f"{POSTGRES.rpartition('/')[0]}/postgres")
        try:
            for database in self.databases.values():
                await admin.execute(f'{statement} "{database}"{suffix}')
        finally:
            await admin.close()

    def holding(self, found: dict[str, list[bytes]]) -> set[str]:
        """The services whose stores ``found`` names."""
        by_database = {db: s for s, db in self.databases.items()}
        return {by_database.get(where) or where.partition(".")[0] for where in found}

    async def found(self, needles: list[bytes]) -> dict[str, list[bytes]]:
        """Which needles each store holds anywhere, byte for byte: by file, or by database dump."""
        if self.backend == "sqlite":
            files = sorted(p for p in self.folder.iterdir() if p.name.endswith((".db", ".db-wal", ".db-shm")))
            assert files, "no store file to search"
            contents = {p.name: p.read_bytes() for p in files}
        else:
            contents = {db: await pg_dump(db) for db in self.databases.values()}
        return {
            where: [n for n in needles if n in data]
            for where, data in contents.items()
            if any(n in data for n in needles)
        }


async def pg_dump(database: str) -> bytes:
    process = await asyncio.create_subprocess_exec(
        "pg_dump", "-h", "127.0.0.1", "-U", "postgres", database, stdout=asyncio.subprocess.PIPE
    )
    dump, _ = await process.communicate()
    assert process.returncode == 0, f"pg_dump {database} failed"
    assert dump
    return dump


async def in_the_stream(broker_url: str, needles: list[bytes]) -> dict[int, list[bytes]]:
    """Which needles each message of the events stream holds, in its body or its headers, by sequence."""
    connection = await nats.connect(NATS)
    try:
        js, name = connection.jetstream(), NatsBroker(broker_url).stream
        last = (await js.stream_info(name)).state.last_seq
        found = {}
        for sequence in range(1, last + 1):
            message = await js.get_msg(name, sequence)
            raw = (message.data or b"") + repr(sorted((message.headers or {}).items())).encode()
            if hits := [n for n in needles if n in raw]:
                found[sequence] = hits
        return found
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def clients(deployment: Deployment) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the node that runs users, content and orders, which ``settle`` checks with every node."""
    async with contextlib.AsyncExitStack() as stack:
        nodes = {name: await stack.enter_async_context(over_http(app)) for name, app in deployment.services.items()}
        entry = nodes["shop"]
        entry.nodes = list(nodes.values())  # type: ignore[attr-defined]
        yield entry


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_forgotten_shop_customer_is_in_no_store_and_no_broker_message(backend: str, tmp_path: Path) -> None:
    person, broker = Person(), broker_namespace()
    async with (
        Stores(backend, tmp_path, list(SERVICES)) as stores,
        services_on(stores.urls, broker, encrypted=True) as shop,
        clients(shop) as client,
    ):
        user_id = await register(client, person.email, person.name)
        await buy(client, user_id, await publish(client, 700))
        await settle(client)
        before = await stores.found(person.needles)
        # The shop's public events declare no data subject: by that declaration they carry no personal data.
        assert await in_the_stream(broker, person.needles) == {}

        ok(await client.post("/users/forget-user", json={"user_id": user_id}))
        await settle(client)
        profile = ok(await client.get("/users/user", params={"user_id": user_id}))

        assert before, "before forgetting, the person's email and name are stored somewhere"
        assert (profile["email"], profile["name"], profile["forgotten"]) == (f"forgotten:{user_id}", "", True)
        assert await stores.found(person.needles) == {}
        assert await in_the_stream(broker, person.needles) == {}


async def subject_key(app: Application, account_id: str) -> tuple[str, bytes] | None:
    return (await read_data_keys(app.store, [f"subject:{account_id}"])).get(f"subject:{account_id}")


async def read_from_the_stream(pair: Pair, app: Application) -> bytes | None:
    """What ``app`` reads of the sealed ``AccountOpened`` in JetStream, with the keys it holds or is given."""
    connection = await nats.connect(NATS)
    try:
        js, name = connection.jetstream(), NatsBroker(pair.broker).stream
        last = (await js.stream_info(name)).state.last_seq
        messages = [await js.get_msg(name, sequence) for sequence in range(1, last + 1)]
    finally:
        await connection.close()
    [message] = [m for m in messages if m.subject.endswith(".events.accounts.AccountOpened")]
    assert is_sealed(message.data)
    keys = app.topology.keys
    assert keys is not None
    return await keys.open("accounts", "accounts.AccountOpened", wire.Verified(dict(message.headers)), message.data)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_forgotten_subject_of_a_public_event_is_unreadable_in_every_service_and_in_jetstream(
    backend: str, tmp_path: Path
) -> None:
    person, broker = Person(), broker_namespace()
    try:
        async with (
            Stores(backend, tmp_path, ["accounts", "mailing"]) as stores,
            two_services(stores.urls, broker) as pair,
        ):
            account_id = (await pair.accounts.dispatch(OpenAccount(email=person.email, name=person.name))).account_id
            imported = await eventually(lambda: pair.mailing.query(GetRecipient(account_id=account_id)), bool)
            await settled(pair.mailing)
            before = await stores.found(person.needles)
            sealed_before = await in_the_stream(broker, person.needles)
            readable = [await read_from_the_stream(pair, app) for app in (pair.accounts, pair.mailing)]

            await pair.accounts.dispatch(ForgetAccount(account_id=account_id))
            await eventually(lambda: subject_key(pair.mailing, account_id), lambda k: k == ("", b""))
            await settled(pair.mailing)

            assert imported is not None
            assert imported.email == person.email
            assert stores.holding(before) == {"accounts", "mailing"}, f"both services store them in views: {before}"
            assert sealed_before == {}, "sealed on the wire: not in JetStream in plaintext even before forgetting"
            assert all(r is not None and person.email.encode() in r for r in readable)
            assert await stores.found(person.needles) == {}
            assert await in_the_stream(broker, person.needles) == {}
            assert [await read_from_the_stream(pair, app) for app in (pair.accounts, pair.mailing)] == [None, None]
            assert [await subject_key(app, account_id) for app in (pair.accounts, pair.mailing)] == [("", b"")] * 2
            keys = pair.mailing.topology.keys
            assert keys is not None
            assert await keys.request("accounts", f"subject:{account_id}") is None
            assert (await pair.mailing.store.read_stream("inbox.accounts"))[0].forgotten
            assert (await pair.accounts.store.read_stream(f"account-{account_id}"))[0].forgotten
            assert await pair.mailing.query(GetRecipient(account_id=account_id)) is None
    finally:
        await drop_namespace(broker)
