"""After a subject is forgotten, nothing a store keeps about it can be read (part of ``Keys``): idempotency results
and dead letters' error texts are sealed with the subject's key, snapshots with their stream's subject key, request
hashes are HMACs; idempotency records expire and are pruned.

These tests read the storage behind the store's back through the harness's ``stored_*`` hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from citadel.errors import IdempotencyConflict
from citadel.messages import Event, encode_json
from citadel.security.encryption import Keyring, MasterKeys, key_id_of
from citadel.store.base import Commit, EventStore, IdempotencyRecord, Snapshot, StreamAppend
from citadel.store.expiry import Pruner
from citadel.testing.store_suite.harness import Happened, StoreHarness, found_at_rest

__all__ = ["ForgettingSuite", "Registered"]


EMAIL, NAME = "ada.lovelace@example.com", "Augusta Ada King"
TTL = 1.0  # seconds an idempotency record lives in the expiry tests: long enough for a slow machine


class Registered(Event, name="suite.Registered", subject="person"):
    person: str
    email: str


def registration(store: EventStore, key: str = "k-1") -> Commit:
    """Ada's registration, with an idempotency record whose result quotes her email."""
    record = IdempotencyRecord(key, store.request_hash(b"register ada"), encode_json({"email": EMAIL}), module="suite")
    return Commit([StreamAppend("person-ada", [Registered(person="ada", email=EMAIL)])], idempotency=record)


class _Parked:
    """A parked message that names no data key (the shape of an inbox's)."""

    position = 7
    event_id = "message-7"


class ForgettingSuite(StoreHarness):
    """What a store keeps beside the log, once its subject is forgotten."""

    @contextlib.asynccontextmanager
    async def keyed(self, master: MasterKeys | None = None, **options: Any) -> AsyncIterator[EventStore]:
        """Open a store that encrypts with ``master`` (new keys when None) on this test's storage."""
        keyring = Keyring(master or MasterKeys.generate())
        async with self.opened(keyring=keyring, extra_events=[Registered], **options) as store:
            yield store

    async def stored_key(self, key: str) -> str:
        """The data key an idempotency record's stored result names."""
        stored = await self.stored_idempotency_result(key)
        assert stored is not None
        return key_id_of(stored)

    async def test_a_request_hash_is_an_hmac_under_the_stores_own_key_not_the_plain_sha256(
        self, fresh_storage: None
    ) -> None:
        material = b"users.RegisterUser\x00" + encode_json({"email": EMAIL})
        master = MasterKeys.generate()
        async with self.keyed(master) as store:
            hashed = store.request_hash(material)
            assert hashed != hashlib.sha256(material).hexdigest()
            assert len(hashed) == 64
        async with self.keyed(master) as store:  # the key is stored: same hash
            assert store.request_hash(material) == hashed
        await self.empty_storage()
        async with self.opened() as plain:  # no keyring, no secret: a plain hash
            assert plain.request_hash(material) == hashlib.sha256(material).hexdigest()

    async def test_an_idempotency_result_is_sealed_with_its_events_subject_key_and_unreadable_once_forgotten(
        self, fresh_storage: None
    ) -> None:
        async with self.keyed() as store:
            await store.commit(registration(store))
            record = await store.idempotency_record("k-1")
            assert record is not None
            assert not record.forgotten
            assert record.result == encode_json({"email": EMAIL})
            assert await self.stored_key("k-1") == "subject:ada"
            assert found_at_rest(await self.stored_bytes(), [EMAIL]) == []
            await store.commit(Commit([], forget=["ada"]))
            record = await store.idempotency_record("k-1")
            assert record is not None
            assert record.forgotten
            assert record.result == b""

    async def test_the_result_of_a_commit_without_events_is_sealed_with_its_modules_key(
        self, fresh_storage: None
    ) -> None:
        async with self.keyed() as store:
            record = IdempotencyRecord("k-2", "", encode_json({"email": EMAIL}), module="suite")
            await store.commit(Commit([], idempotency=record))
            assert await self.stored_key("k-2") == "module:suite"
            assert found_at_rest(await self.stored_bytes(), [EMAIL]) == []
            opened = await store.idempotency_record("k-2")
            assert opened is not None
            assert opened.result == encode_json({"email": EMAIL})

    async def test_an_expired_idempotency_record_is_ignored_and_its_key_can_be_taken_again(
        self, fresh_storage: None
    ) -> None:
        async with self.keyed(idempotency_ttl=TTL) as store:
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
        self, fresh_storage: None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(Pruner, "batch", 2)
        async with self.keyed(idempotency_ttl=TTL) as store:
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
            assert await self.stored_idempotency_result("old-0") is None  # gone, not just hidden

    async def test_a_snapshot_whose_commit_appends_only_module_keyed_events_is_sealed_with_the_subject_key(
        self, fresh_storage: None
    ) -> None:
        async with self.keyed() as store:
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
            assert found_at_rest(await self.stored_bytes(), [EMAIL, NAME]) == []

    async def test_a_snapshot_in_a_commit_without_events_of_its_stream_is_sealed_with_the_subject_key(
        self, fresh_storage: None
    ) -> None:
        async with self.keyed() as store:
            await store.append("person-ada", [Registered(person="ada", email=EMAIL)])
            state = encode_json({"email": EMAIL})
            await store.commit(Commit([], snapshots=[Snapshot("person-ada", 1, 1, state)]))
            snapshot = await store.load_snapshot("person-ada")
            assert snapshot is not None
            assert snapshot.data == state
            await store.commit(Commit([], forget=["ada"]))
            assert await store.load_snapshot("person-ada") is None

    async def test_a_later_snapshot_keeps_the_subject_key_of_the_one_before(self, fresh_storage: None) -> None:
        async with self.keyed() as store:
            await store.append("person-ada", [Registered(person="ada", email=EMAIL)])
            await store.commit(Commit([], snapshots=[Snapshot("person-ada", 1, 1, b'{"v": 1}')]))
            await store.commit(
                Commit(
                    [StreamAppend("person-ada", [Happened(n=2)])], snapshots=[Snapshot("person-ada", 2, 1, b'{"v": 2}')]
                )
            )
            await store.commit(Commit([], forget=["ada"]))
            assert await store.load_snapshot("person-ada") is None

    async def test_a_snapshot_of_a_stream_two_subjects_wrote_is_not_written(self, fresh_storage: None) -> None:
        async with self.keyed() as store:
            await store.append(
                "pair", [Registered(person="ada", email=EMAIL), Registered(person="bob", email="b@x.io")]
            )
            await store.commit(Commit([], snapshots=[Snapshot("pair", 2, 1, b'{"both": true}')]))
            assert await store.load_snapshot("pair") is None  # sealed with one, it would outlive the other's forgetting

    async def test_a_snapshot_of_a_stream_without_subjects_is_sealed_with_its_modules_key(
        self, fresh_storage: None
    ) -> None:
        async with self.keyed() as store:
            state = b'{"words": "a tally of many words"}'
            await store.commit(
                Commit([StreamAppend("tally", [Happened(n=1)])], snapshots=[Snapshot("tally", 1, 1, state)])
            )
            snapshot = await store.load_snapshot("tally")
            assert snapshot is not None
            assert snapshot.data == state
            assert found_at_rest(await self.stored_bytes(), ["a tally of many words"]) == []

    async def test_a_dead_letters_error_is_sealed_with_its_events_key_and_only_its_class_is_left_once_forgotten(
        self, fresh_storage: None
    ) -> None:
        async with self.keyed() as store:
            await store.append("person-ada", [Registered(person="ada", email=EMAIL)])
            (record,) = await store.read_stream("person-ada")
            error = f"ValueError: no mailbox for {EMAIL} ({NAME})"
            await store.add_dead_letter("suite.mailer", record, error, 3)
            (letter,) = await store.dead_letters("suite.mailer")
            assert letter.error == error
            assert found_at_rest(await self.stored_bytes(), [EMAIL, NAME]) == []
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

    async def test_a_parked_message_without_a_data_key_keeps_only_its_exception_class(
        self, fresh_storage: None
    ) -> None:
        async with self.keyed() as store:
            await store.add_dead_letter("inbox:people", _Parked(), f"InvalidMessage: {EMAIL} is not a name", 5)  # type: ignore[arg-type]
            (letter,) = await store.dead_letters("inbox:people")
            assert letter.error.startswith("InvalidMessage (")
            assert EMAIL not in letter.error
            assert found_at_rest(await self.stored_bytes(), [EMAIL]) == []
