"""After a subject is forgotten, nothing a store keeps about it can be read, on every backend: idempotency results
and dead letters' error texts are sealed with the subject's key, snapshots with their stream's subject key, request
hashes are HMACs; idempotency records expire and are pruned; SQLite's write-ahead log is emptied of old pages."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from at_rest import found_at_rest, pg_dump, sqlite_files
from suite import POSTGRES, Happened, open_backend

from citadel import Event, IdempotencyConflict
from citadel.messages import encode_json
from citadel.security.encryption import Keyring, MasterKeys, key_id_of
from citadel.store.base import Commit, EventStore, IdempotencyRecord, Snapshot, StreamAppend
from citadel.store.expiry import Pruner

EMAIL, NAME = "ada.lovelace@example.com", "Augusta Ada King"
TTL = 1.0  # seconds an idempotency record lives in the expiry tests: long enough for a slow machine


class Registered(Event, name="suite.Registered", subject="person"):
    person: str
    email: str


@contextlib.asynccontextmanager
async def sealed_store(
    backend: str, directory: Path, master: MasterKeys | None = None, *, fresh: bool = True, **options: Any
) -> AsyncIterator[EventStore]:
    keyring = Keyring(master or MasterKeys.generate())
    async with open_backend(
        backend, directory, keyring=keyring, extra_events=[Registered], fresh=fresh, **options
    ) as store:
        yield store


async def at_rest(backend: str, directory: Path) -> dict[str, bytes]:
    """Every byte the store keeps: the SQLite files, or a dump of the PostgreSQL database."""
    if backend.startswith("sqlite"):
        return sqlite_files(directory / "events.db")
    return {"pg_dump": pg_dump(POSTGRES)}


async def stored_result(backend: str, directory: Path, key: str) -> bytes | None:
    """An idempotency record's result as stored (None: no such row), read behind the store's back."""
    if backend.startswith("sqlite"):
        import sqlite3

        db = sqlite3.connect(directory / "events.db")
        try:
            row = db.execute("SELECT result FROM citadel_idempotency WHERE key = ?", (key,)).fetchone()
            return None if row is None else bytes(row[0])
        finally:
            db.close()
    connection = await asyncpg.connect(POSTGRES)
    try:
        found = await connection.fetchval("SELECT result FROM citadel.idempotency WHERE key = $1", key)
        return None if found is None else bytes(found)
    finally:
        await connection.close()


async def stored_key(backend: str, directory: Path, key: str) -> str:
    """The data key an idempotency record's stored result names."""
    stored = await stored_result(backend, directory, key)
    assert stored is not None
    return key_id_of(stored)


def registration(store: EventStore, key: str = "k-1") -> Commit:
    """Ada's registration, with an idempotency record whose result quotes her email."""
    record = IdempotencyRecord(key, store.request_hash(b"register ada"), encode_json({"email": EMAIL}), module="suite")
    return Commit([StreamAppend("person-ada", [Registered(person="ada", email=EMAIL)])], idempotency=record)


async def test_a_request_hash_is_an_hmac_under_the_stores_own_key_not_the_plain_sha256(
    backend: str, tmp_path: Path
) -> None:
    material = b"users.RegisterUser\x00" + encode_json({"email": EMAIL})
    master = MasterKeys.generate()
    async with sealed_store(backend, tmp_path, master) as store:
        hashed = store.request_hash(material)
        assert hashed != hashlib.sha256(material).hexdigest()
        assert len(hashed) == 64
    async with sealed_store(backend, tmp_path, master, fresh=False) as store:  # the key is stored: same hash
        assert store.request_hash(material) == hashed
    async with open_backend(backend, tmp_path / "plain") as plain:  # no keyring, no secret: a plain hash
        assert plain.request_hash(material) == hashlib.sha256(material).hexdigest()


async def test_an_idempotency_result_is_sealed_with_its_events_subject_key_and_unreadable_once_forgotten(
    backend: str, tmp_path: Path
) -> None:
    async with sealed_store(backend, tmp_path) as store:
        await store.commit(registration(store))
        record = await store.idempotency_record("k-1")
        assert record is not None
        assert not record.forgotten
        assert record.result == encode_json({"email": EMAIL})
        assert await stored_key(backend, tmp_path, "k-1") == "subject:ada"
        assert found_at_rest(await at_rest(backend, tmp_path), [EMAIL]) == []
        await store.commit(Commit([], forget=["ada"]))
        record = await store.idempotency_record("k-1")
        assert record is not None
        assert record.forgotten
        assert record.result == b""


async def test_the_result_of_a_commit_without_events_is_sealed_with_its_modules_key(
    backend: str, tmp_path: Path
) -> None:
    async with sealed_store(backend, tmp_path) as store:
        record = IdempotencyRecord("k-2", "", encode_json({"email": EMAIL}), module="suite")
        await store.commit(Commit([], idempotency=record))
        assert await stored_key(backend, tmp_path, "k-2") == "module:suite"
        assert found_at_rest(await at_rest(backend, tmp_path), [EMAIL]) == []
        opened = await store.idempotency_record("k-2")
        assert opened is not None
        assert opened.result == encode_json({"email": EMAIL})


async def test_an_expired_idempotency_record_is_ignored_and_its_key_can_be_taken_again(
    backend: str, tmp_path: Path
) -> None:
    async with sealed_store(backend, tmp_path, idempotency_ttl=TTL) as store:
        await store.commit(Commit([], idempotency=IdempotencyRecord("k-3", "", b'"first"', module="suite")))
        with pytest.raises(IdempotencyConflict):  # alive: the key is taken
            await store.commit(Commit([], idempotency=IdempotencyRecord("k-3", "", b'"twin"', module="suite")))
        await asyncio.sleep(TTL + 0.1)
        assert await store.idempotency_record("k-3") is None
        await store.commit(
            Commit([StreamAppend("n", [Happened(n=1)])], idempotency=IdempotencyRecord("k-3", "", b'"again"'))
        )
        again = await store.idempotency_record("k-3")
        assert again is not None
        assert again.result == b'"again"'


async def test_expired_idempotency_records_are_pruned_a_bounded_batch_per_transaction(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Pruner, "batch", 2)
    async with sealed_store(backend, tmp_path, idempotency_ttl=TTL) as store:
        for n in range(5):
            await store.commit(Commit([], idempotency=IdempotencyRecord(f"old-{n}", "", b"null", module="suite")))
        await asyncio.sleep(TTL + 0.1)
        await store.commit(Commit([], idempotency=IdempotencyRecord("fresh", "", b"null", module="suite")))
        pruner = store._pruner  # type: ignore[attr-defined]
        passes: list[int] = []
        prune_once = pruner._prune

        async def counted(limit: int) -> int:
            deleted: int = await prune_once(limit)
            passes.append(deleted)
            return deleted

        pruner._prune = counted
        assert await store.prune_idempotency() == 5
        assert passes == [2, 2, 1]  # one transaction each, none longer than the batch
        assert await store.idempotency_record("fresh") is not None
        assert await stored_result(backend, tmp_path, "old-0") is None  # gone, not just hidden


async def test_a_snapshot_whose_commit_appends_only_module_keyed_events_is_sealed_with_the_subject_key(
    backend: str, tmp_path: Path
) -> None:
    async with sealed_store(backend, tmp_path) as store:
        await store.append("person-ada", [Registered(person="ada", email=EMAIL)])
        state = encode_json({"email": EMAIL, "name": NAME})
        await store.commit(
            Commit([StreamAppend("person-ada", [Happened(n=1)])], snapshots=[Snapshot("person-ada", 2, 1, state)])
        )
        snapshot = await store.load_snapshot("person-ada")
        assert snapshot is not None
        assert snapshot.data == state
        await store.commit(Commit([], forget=["ada"]))
        assert await store.load_snapshot("person-ada") is None
        assert found_at_rest(await at_rest(backend, tmp_path), [EMAIL, NAME]) == []


async def test_a_snapshot_in_a_commit_without_events_of_its_stream_is_sealed_with_the_subject_key(
    backend: str, tmp_path: Path
) -> None:
    async with sealed_store(backend, tmp_path) as store:
        await store.append("person-ada", [Registered(person="ada", email=EMAIL)])
        state = encode_json({"email": EMAIL})
        await store.commit(Commit([], snapshots=[Snapshot("person-ada", 1, 1, state)]))
        snapshot = await store.load_snapshot("person-ada")
        assert snapshot is not None
        assert snapshot.data == state
        await store.commit(Commit([], forget=["ada"]))
        assert await store.load_snapshot("person-ada") is None


async def test_a_later_snapshot_keeps_the_subject_key_of_the_one_before(backend: str, tmp_path: Path) -> None:
    async with sealed_store(backend, tmp_path) as store:
        await store.append("person-ada", [Registered(person="ada", email=EMAIL)])
        await store.commit(Commit([], snapshots=[Snapshot("person-ada", 1, 1, b'{"v": 1}')]))
        await store.commit(
            Commit([StreamAppend("person-ada", [Happened(n=2)])], snapshots=[Snapshot("person-ada", 2, 1, b'{"v": 2}')])
        )
        await store.commit(Commit([], forget=["ada"]))
        assert await store.load_snapshot("person-ada") is None


async def test_a_snapshot_of_a_stream_two_subjects_wrote_is_not_written(backend: str, tmp_path: Path) -> None:
    async with sealed_store(backend, tmp_path) as store:
        await store.append("pair", [Registered(person="ada", email=EMAIL), Registered(person="bob", email="b@x.io")])
        await store.commit(Commit([], snapshots=[Snapshot("pair", 2, 1, b'{"both": true}')]))
        assert await store.load_snapshot("pair") is None  # sealed with one, it would outlive the other's forgetting


async def test_a_snapshot_of_a_stream_without_subjects_is_sealed_with_its_modules_key(
    backend: str, tmp_path: Path
) -> None:
    async with sealed_store(backend, tmp_path) as store:
        state = b'{"words": "a tally of many words"}'
        await store.commit(Commit([StreamAppend("tally", [Happened(n=1)])], snapshots=[Snapshot("tally", 1, 1, state)]))
        snapshot = await store.load_snapshot("tally")
        assert snapshot is not None
        assert snapshot.data == state
        assert found_at_rest(await at_rest(backend, tmp_path), ["a tally of many words"]) == []


async def test_a_dead_letters_error_is_sealed_with_its_events_key_and_only_its_class_is_left_once_forgotten(
    backend: str, tmp_path: Path
) -> None:
    async with sealed_store(backend, tmp_path) as store:
        await store.append("person-ada", [Registered(person="ada", email=EMAIL)])
        (record,) = await store.read_stream("person-ada")
        error = f"ValueError: no mailbox for {EMAIL} ({NAME})"
        await store.add_dead_letter("suite.mailer", record, error, 3)
        (letter,) = await store.dead_letters("suite.mailer")
        assert letter.error == error
        assert found_at_rest(await at_rest(backend, tmp_path), [EMAIL, NAME]) == []
        await store.commit(Commit([], forget=["ada"]))
        (letter,) = await store.dead_letters()
        assert letter.error.startswith("ValueError (")
        assert EMAIL not in letter.error
        assert NAME not in letter.error
        assert (letter.consumer, letter.position, letter.event_id, letter.attempts) == (
            "suite.mailer",
            record.position,
            record.event_id,
            3,
        )


class _Parked:
    """A parked message that names no data key (the shape of an inbox's)."""

    position = 7
    event_id = "message-7"


async def test_a_parked_message_without_a_data_key_keeps_only_its_exception_class(backend: str, tmp_path: Path) -> None:
    async with sealed_store(backend, tmp_path) as store:
        await store.add_dead_letter("inbox:people", _Parked(), f"InvalidMessage: {EMAIL} is not a name", 5)  # type: ignore[arg-type]
        (letter,) = await store.dead_letters("inbox:people")
        assert letter.error.startswith("InvalidMessage (")
        assert EMAIL not in letter.error
        assert found_at_rest(await at_rest(backend, tmp_path), [EMAIL]) == []


@pytest.mark.parametrize("sqlite_backend", ["sqlite", "sqlite-thread"])
async def test_a_commit_that_forgets_leaves_the_sqlite_write_ahead_log_empty(
    sqlite_backend: str, tmp_path: Path
) -> None:
    async with sealed_store(sqlite_backend, tmp_path) as store:
        await store.commit(registration(store))
        wal = tmp_path / "events.db-wal"
        assert wal.stat().st_size > 0
        await store.commit(Commit([StreamAppend("notes", [Happened(n=1)])], forget=["ada"]))
        assert wal.stat().st_size == 0  # every frame copied back, and the log started over
        await store.append("notes", [Happened(n=2)])  # and it keeps working
        assert len(await store.read_stream("notes")) == 2


async def test_pruning_and_the_snapshot_key_lookup_use_indexes(backend: str, tmp_path: Path) -> None:
    async with sealed_store(backend, tmp_path):
        pass
    if backend.startswith("sqlite"):
        import sqlite3

        from citadel.store.sqlite_records import _PRUNE

        db = sqlite3.connect(tmp_path / "events.db")
        try:
            plan = " ".join(str(row) for row in db.execute(f"EXPLAIN QUERY PLAN {_PRUNE}", (0.0, 10)))
        finally:
            db.close()
        assert "citadel_idempotency_by_age" in plan, plan
        return
    from citadel.store.postgres_records import _HEADS
    from citadel.store.postgres_records import _PRUNE as PG_PRUNE

    connection = await asyncpg.connect(POSTGRES)
    try:
        await connection.execute("SET enable_seqscan = off")
        for sql, args in ((PG_PRUNE, (0.0, 10)), (_HEADS, (["s1", "s2"],))):
            plan = "\n".join(r[0] for r in await connection.fetch(f"EXPLAIN {sql}", *args))
            assert "Seq Scan" not in plan, plan
        plan = "\n".join(r[0] for r in await connection.fetch(f"EXPLAIN {PG_PRUNE}", 0.0, 10))
        assert "idempotency_by_age" in plan, plan
    finally:
        await connection.close()
