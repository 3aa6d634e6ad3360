"""Encryption at rest (part of ``Keys``): nothing readable in what the store keeps, tampering detected,
subjects forgotten for good, master keys rotated without rewriting a single event.

These tests read the storage behind the store's back through the harness's ``stored_*`` hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from citadel.errors import ConfigurationError, PayloadForgotten, TamperedPayload
from citadel.messages import Event
from citadel.security.encryption import Keyring, MasterKeys
from citadel.store.base import Commit, EventStore, Snapshot, StreamAppend
from citadel.testing.store_suite.harness import Happened, Noted, StoreHarness

__all__ = ["Confided", "EncryptionSuite"]


class Confided(Event, name="suite.Confided", subject="person"):
    person: str
    words: str


SECRET = "correct horse battery staple"  # noqa: S105 - a payload to look for, not a credential


class EncryptionSuite(StoreHarness):
    """Encryption at rest, through the store and behind its back."""

    @contextlib.asynccontextmanager
    async def sealed(self, master: MasterKeys | None = None, **options: Any) -> AsyncIterator[EventStore]:
        """Open a store that encrypts with ``master`` (new keys when None) on this test's storage."""
        keyring = Keyring(master or MasterKeys.generate())
        async with self.opened(keyring=keyring, extra_events=[Confided], **options) as store:
            yield store

    async def test_no_payload_is_readable_in_the_stored_bytes(self, fresh_storage: None) -> None:
        async with self.sealed() as store:
            await store.commit(
                Commit(
                    [StreamAppend("p-1", [Confided(person="ada", words=SECRET), Noted(text="plain words here")])],
                    snapshots=[Snapshot("p-1", 2, 1, b'{"remembered": "a snapshot full of words"}')],
                )
            )
            stored = b"".join((await self.stored_bytes()).values())
            for plaintext in (SECRET, "plain words here", "a snapshot full of words"):
                assert plaintext.encode() not in stored
            first, second = await store.read_stream("p-1")
            assert first.event == Confided(person="ada", words=SECRET)
            assert second.event == Noted(text="plain words here")
            snapshot = await store.load_snapshot("p-1")
            assert snapshot is not None
            assert snapshot.data == b'{"remembered": "a snapshot full of words"}'

    async def test_a_payload_altered_or_moved_to_another_row_fails_with_a_clear_error(
        self, fresh_storage: None
    ) -> None:
        async with self.sealed() as store:
            await store.append("p-1", [Confided(person="ada", words=SECRET)])
            await store.append("p-2", [Confided(person="ada", words="another")])
            original = (await self.stored_payloads("p-1"))[0]
            flipped = bytearray(original)
            flipped[-5] ^= 1  # one bit of the ciphertext
            await self.overwrite_payloads("p-1", bytes(flipped))
            await self.overwrite_payloads("p-2", original)  # p-1's payload, moved into p-2's row
            with pytest.raises(TamperedPayload, match="altered or moved"):
                await store.read_stream("p-1")
            with pytest.raises(TamperedPayload):
                await store.read_stream("p-2")

    async def test_forgetting_a_subject_makes_its_events_unreadable_and_leaves_the_rest(
        self, fresh_storage: None
    ) -> None:
        async with self.sealed() as store:
            await store.append("p-ada", [Confided(person="ada", words=SECRET)])
            await store.append("p-bob", [Confided(person="bob", words="bob's")])
            await store.commit(Commit([StreamAppend("notes", [Noted(text="ada is gone")])], forget=["ada"]))
            ada, bob, note = await store.read_all()
            assert ada.forgotten
            with pytest.raises(PayloadForgotten):
                _ = ada.event
            assert bob.event == Confided(person="bob", words="bob's")
            assert note.event == Noted(text="ada is gone")
            assert SECRET.encode() not in b"".join((await self.stored_bytes()).values())
            with pytest.raises(PayloadForgotten, match="forgotten"):
                await store.append("p-ada", [Confided(person="ada", words="again")])

    async def test_another_process_forgets_too(self, fresh_storage: None) -> None:
        master = MasterKeys.generate()
        async with (
            self.sealed(master) as first,
            self.sealed(master) as second,
        ):
            await first.append("p-ada", [Confided(person="ada", words=SECRET)])
            (record,) = await second.read_stream("p-ada")  # the second store has opened ada's key
            assert record.event.words == SECRET  # type: ignore[attr-defined]
            await first.commit(Commit([], forget=["ada"]))
            await asyncio.sleep(0.25)  # other processes notice forgotten keys within a fraction of a second
            (record,) = await second.read_stream("p-ada")
            assert record.forgotten

    async def test_rotating_the_master_key_rewraps_data_keys_and_rewrites_no_event(self, fresh_storage: None) -> None:
        old = MasterKeys.generate()
        async with self.sealed(old) as store:
            await store.append("p-ada", [Confided(person="ada", words=SECRET), Happened(n=1)])
            before = await self.stored_payloads("p-ada")
            new = old.rotated()
            assert await store.rewrap_keys(new) == 3  # ada's key, the module's and the store's request key
            assert await store.rewrap_keys(new) == 0
            assert await self.stored_payloads("p-ada") == before
        only_new = MasterKeys({new.current: new.keys[new.current]}, new.current)
        async with self.sealed(only_new) as store:  # the old master key is not needed any more
            first, second = await store.read_stream("p-ada")
            assert first.event == Confided(person="ada", words=SECRET)
            assert second.event == Happened(n=1)

    async def test_many_subjects_keep_few_ciphers_and_every_payload_still_opens(
        self, fresh_storage: None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(Keyring, "CIPHERS", 3)
        keyring = Keyring(MasterKeys.generate())
        async with self.opened(keyring=keyring, extra_events=[Confided]) as store:
            people = [f"person-{i}" for i in range(20)]
            await store.commit(
                Commit([StreamAppend(f"p-{p}", [Confided(person=p, words=f"{SECRET} of {p}")]) for p in people])
            )
            for p in reversed(people):  # every key's cipher rebuilt from its kept bytes, in another order
                (record,) = await store.read_stream(f"p-{p}")
                assert record.event == Confided(person=p, words=f"{SECRET} of {p}")
            await store.append("p-person-0", [Confided(person="person-0", words="more")], 1)
            assert len(keyring._ciphers) <= 3
            assert all(keyring.known(f"subject:{p}") for p in people)

    async def test_master_key_ids_names_the_master_keys_that_wrap_the_stored_data_keys(
        self, fresh_storage: None
    ) -> None:
        old = MasterKeys.generate()
        async with self.sealed(old) as store:
            assert await store.master_key_ids() == {old.current}  # the store's own request key
            await store.append("p-ada", [Confided(person="ada", words=SECRET)])
            assert await store.master_key_ids() == {old.current}
        new = old.rotated()
        async with self.sealed(new) as store:  # both keys held: new data keys use new
            await store.append("p-bob", [Confided(person="bob", words="bob's")])
            assert await store.master_key_ids() == {old.current, new.current}
            await store.rewrap_keys(new)
            assert await store.master_key_ids() == {new.current}

    async def test_master_key_ids_leaves_out_the_tombstones_of_forgotten_keys(self, fresh_storage: None) -> None:
        master = MasterKeys.generate()
        async with self.sealed(master) as store:
            await store.commit(Commit([StreamAppend("notes", [Noted(text="nobody yet")])], forget=["ada"]))
            await store.append("p-bob", [Confided(person="bob", words="bob's")])
            assert await store.master_key_ids() == {master.current}

    async def test_a_store_whose_data_keys_need_a_master_key_not_held_refuses_to_open_naming_it(
        self, fresh_storage: None
    ) -> None:
        lost = MasterKeys.generate()
        async with self.sealed(lost) as store:
            await store.append("p-ada", [Confided(person="ada", words=SECRET)])
        replacement = MasterKeys.generate()  # what silently creating a key file would have done

        with pytest.raises(ConfigurationError) as refused:
            async with self.sealed(replacement):
                pass

        message = str(refused.value)
        assert f"the stored data keys need master key {lost.current!r}, which this process does not hold" in message
        assert "master_key_file, CITADEL_MASTER_KEY_FILE" in message
        assert "CITADEL_MASTER_KEY" in message

    async def test_a_store_refused_for_a_missing_master_key_opens_once_the_key_is_given(
        self, fresh_storage: None
    ) -> None:
        lost = MasterKeys.generate()
        async with self.sealed(lost) as store:
            await store.append("p-ada", [Confided(person="ada", words=SECRET)])
        with pytest.raises(ConfigurationError):
            async with self.sealed(MasterKeys.generate()):
                pass

        async with self.sealed(lost) as store:
            (record,) = await store.read_stream("p-ada")
            assert record.event == Confided(person="ada", words=SECRET)

    async def test_a_keyring_cleared_while_a_commit_is_under_way_does_not_fail_the_commit(
        self, fresh_storage: None
    ) -> None:
        """A store's listener clears the keyring when it (re)connects (keys may have been forgotten while it was
        away), which can happen between a batch preparing its keys and sealing with them."""
        keyring = Keyring(MasterKeys.generate())
        async with self.opened(keyring=keyring, extra_events=[Confided]) as store:
            stop = asyncio.Event()

            async def clearing() -> None:
                while not stop.is_set():
                    keyring.clear()
                    await asyncio.sleep(0)

            clearer = asyncio.create_task(clearing())
            try:
                for n in range(40):
                    await store.append(f"p-{n}", [Confided(person=f"p{n % 3}", words=SECRET)])
            finally:
                stop.set()
                await clearer
            assert [r.event for r in await store.read_all()] == [
                Confided(person=f"p{n % 3}", words=SECRET) for n in range(40)
            ]

    async def test_read_last_opens_sealed_payloads_and_marks_a_forgotten_subjects_events(
        self, fresh_storage: None
    ) -> None:
        keyring = Keyring(MasterKeys.generate())
        async with self.opened(keyring=keyring, extra_events=[Confided]) as store:
            await store.append("ada", [Confided(person="ada", words="s1"), Confided(person="ada", words="s2")])
            await store.append("bob", [Confided(person="bob", words="s3")])
            await store.commit(Commit([StreamAppend("notes", [Noted(text="ada is gone")])], forget=["ada"]))

            last = await store.read_last(3)

        assert [(record.stream_id, record.forgotten) for record in last] == [
            ("ada", True),
            ("bob", False),
            ("notes", False),
        ]
        assert [record.event for record in last[1:]] == [Confided(person="bob", words="s3"), Noted(text="ada is gone")]
