"""Encryption at rest, on every backend: nothing readable in the raw bytes, tampering detected, subjects
forgotten for good, master keys rotated without rewriting a single event."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from suite import POSTGRES, Happened, Noted, open_backend

from citadel import ConfigurationError, Event, EventRegistry, PayloadForgotten, TamperedPayload
from citadel.security.encryption import Keyring, MasterKeys
from citadel.store.base import Commit, EventStore, Snapshot, StreamAppend


class Confided(Event, name="suite.Confided", subject="person"):
    person: str
    secret: str


SECRET = "correct horse battery staple"


@contextlib.asynccontextmanager
async def sealed_store(
    backend: str, directory: Path, master: MasterKeys | None = None, *, fresh: bool = True
) -> AsyncIterator[EventStore]:
    keyring = Keyring(master or MasterKeys.generate())
    async with open_backend(backend, directory, keyring=keyring, extra_events=[Confided], fresh=fresh) as store:
        yield store


async def raw_bytes(store: EventStore, backend: str, directory: Path) -> bytes:
    """Everything the store wrote, as the disk (or a backup) holds it."""
    if backend.startswith("sqlite"):
        return b"".join(p.read_bytes() for p in directory.iterdir() if p.name.startswith("events.db"))
    connection = await asyncpg.connect(POSTGRES)
    try:
        rows = await connection.fetch("SELECT data FROM citadel.events UNION ALL SELECT data FROM citadel.snapshots")
        return b"".join(r[0] for r in rows)
    finally:
        await connection.close()


async def raw_rows(backend: str, directory: Path, stream_id: str) -> list[bytes]:
    if backend.startswith("sqlite"):
        import sqlite3

        db = sqlite3.connect(directory / "events.db")
        try:
            return [r[0] for r in db.execute("SELECT data FROM citadel_events WHERE stream_id = ?", (stream_id,))]
        finally:
            db.close()
    connection = await asyncpg.connect(POSTGRES)
    try:
        return [r[0] for r in await connection.fetch("SELECT data FROM citadel.events WHERE stream_id = $1", stream_id)]
    finally:
        await connection.close()


async def overwrite(backend: str, directory: Path, stream_id: str, data: bytes) -> None:
    """Change a stored payload behind the store's back, as an attacker with the disk would."""
    if backend.startswith("sqlite"):
        import sqlite3

        db = sqlite3.connect(directory / "events.db")
        db.execute("UPDATE citadel_events SET data = ? WHERE stream_id = ?", (data, stream_id))
        db.commit()
        db.close()
        return
    connection = await asyncpg.connect(POSTGRES)
    await connection.execute("UPDATE citadel.events SET data = $1 WHERE stream_id = $2", data, stream_id)
    await connection.close()


async def test_no_payload_is_readable_in_the_stored_bytes(backend: str, tmp_path: Path) -> None:
    async with sealed_store(backend, tmp_path) as store:
        await store.commit(
            Commit(
                [StreamAppend("p-1", [Confided(person="ada", secret=SECRET), Noted(text="plain words here")])],
                snapshots=[Snapshot("p-1", 2, 1, b'{"remembered": "a snapshot full of words"}')],
            )
        )
        stored = await raw_bytes(store, backend, tmp_path)
        for plaintext in (SECRET, "plain words here", "a snapshot full of words"):
            assert plaintext.encode() not in stored
        first, second = await store.read_stream("p-1")
        assert first.event == Confided(person="ada", secret=SECRET)
        assert second.event == Noted(text="plain words here")
        snapshot = await store.load_snapshot("p-1")
        assert snapshot is not None
        assert snapshot.data == b'{"remembered": "a snapshot full of words"}'


async def test_a_payload_altered_or_moved_to_another_row_fails_with_a_clear_error(backend: str, tmp_path: Path) -> None:
    async with sealed_store(backend, tmp_path) as store:
        await store.append("p-1", [Confided(person="ada", secret=SECRET)])
        await store.append("p-2", [Confided(person="ada", secret="another")])
        original = (await raw_rows(backend, tmp_path, "p-1"))[0]
        flipped = bytearray(original)
        flipped[-5] ^= 1  # one bit of the ciphertext
        await overwrite(backend, tmp_path, "p-1", bytes(flipped))
        await overwrite(backend, tmp_path, "p-2", original)  # p-1's payload, moved into p-2's row
        with pytest.raises(TamperedPayload, match="altered or moved"):
            await store.read_stream("p-1")
        with pytest.raises(TamperedPayload):
            await store.read_stream("p-2")


async def test_forgetting_a_subject_makes_its_events_unreadable_and_leaves_the_rest(
    backend: str, tmp_path: Path
) -> None:
    async with sealed_store(backend, tmp_path) as store:
        await store.append("p-ada", [Confided(person="ada", secret=SECRET)])
        await store.append("p-bob", [Confided(person="bob", secret="bob's")])
        await store.commit(Commit([StreamAppend("notes", [Noted(text="ada is gone")])], forget=["ada"]))
        ada, bob, note = await store.read_all()
        assert ada.forgotten
        with pytest.raises(PayloadForgotten):
            _ = ada.event
        assert bob.event == Confided(person="bob", secret="bob's")
        assert note.event == Noted(text="ada is gone")
        assert SECRET.encode() not in await raw_bytes(store, backend, tmp_path)
        with pytest.raises(PayloadForgotten, match="forgotten"):
            await store.append("p-ada", [Confided(person="ada", secret="again")])


async def test_another_process_forgets_too(backend: str, tmp_path: Path) -> None:
    master = MasterKeys.generate()
    async with (
        sealed_store(backend, tmp_path, master) as first,
        sealed_store(backend, tmp_path, master, fresh=False) as second,
    ):
        await first.append("p-ada", [Confided(person="ada", secret=SECRET)])
        (record,) = await second.read_stream("p-ada")  # the second store has opened ada's key
        assert record.event.secret == SECRET  # type: ignore[attr-defined]
        await first.commit(Commit([], forget=["ada"]))
        import asyncio

        await asyncio.sleep(0.25)  # other processes notice forgotten keys within a fraction of a second
        (record,) = await second.read_stream("p-ada")
        assert record.forgotten


async def test_rotating_the_master_key_rewraps_data_keys_and_rewrites_no_event(backend: str, tmp_path: Path) -> None:
    old = MasterKeys.generate()
    async with sealed_store(backend, tmp_path, old) as store:
        await store.append("p-ada", [Confided(person="ada", secret=SECRET), Happened(n=1)])
        before = await raw_bytes(store, backend, tmp_path) if backend == "postgres" else None
        new = old.rotated()
        assert await store.rewrap_keys(new) == 3  # ada's key, the module's and the store's request key
        assert await store.rewrap_keys(new) == 0
        if before is not None:
            assert await raw_bytes(store, backend, tmp_path) == before
    only_new = MasterKeys({new.current: new.keys[new.current]}, new.current)
    async with sealed_store(
        backend, tmp_path, only_new, fresh=False
    ) as store:  # the old master key is not needed any more
        first, second = await store.read_stream("p-ada")
        assert first.event == Confided(person="ada", secret=SECRET)
        assert second.event == Happened(n=1)


def test_unregistered_subject_fields_are_refused() -> None:
    from citadel import ConfigurationError

    with pytest.raises(ConfigurationError, match="not one of its fields"):

        class Broken(Event, name="suite.Broken", subject="nobody"):
            who: str

    assert EventRegistry([Confided]).of(Confided).name == "suite.Confided"


async def test_many_subjects_keep_few_ciphers_and_every_payload_still_opens(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Keyring, "CIPHERS", 3)
    keyring = Keyring(MasterKeys.generate())
    async with open_backend(backend, tmp_path, keyring=keyring, extra_events=[Confided]) as store:
        people = [f"person-{i}" for i in range(20)]
        await store.commit(
            Commit([StreamAppend(f"p-{p}", [Confided(person=p, secret=f"{SECRET} of {p}")]) for p in people])
        )
        for p in reversed(people):  # every key's cipher rebuilt from its kept bytes, in another order
            (record,) = await store.read_stream(f"p-{p}")
            assert record.event == Confided(person=p, secret=f"{SECRET} of {p}")
        await store.append("p-person-0", [Confided(person="person-0", secret="more")], 1)
        assert len(keyring._ciphers) <= 3
        assert all(keyring.known(f"subject:{p}") for p in people)


async def test_master_key_ids_names_the_master_keys_that_wrap_the_stored_data_keys(
    backend: str, tmp_path: Path
) -> None:
    old = MasterKeys.generate()
    async with sealed_store(backend, tmp_path, old) as store:
        assert await store.master_key_ids() == {old.current}  # the store's own request key
        await store.append("p-ada", [Confided(person="ada", secret=SECRET)])
        assert await store.master_key_ids() == {old.current}
    new = old.rotated()
    async with sealed_store(backend, tmp_path, new, fresh=False) as store:  # both keys held: new data keys use new
        await store.append("p-bob", [Confided(person="bob", secret="bob's")])
        assert await store.master_key_ids() == {old.current, new.current}
        await store.rewrap_keys(new)
        assert await store.master_key_ids() == {new.current}


async def test_master_key_ids_leaves_out_the_tombstones_of_forgotten_keys(backend: str, tmp_path: Path) -> None:
    master = MasterKeys.generate()
    async with sealed_store(backend, tmp_path, master) as store:
        await store.commit(Commit([StreamAppend("notes", [Noted(text="nobody yet")])], forget=["ada"]))
        await store.append("p-bob", [Confided(person="bob", secret="bob's")])
        assert await store.master_key_ids() == {master.current}


async def test_a_store_whose_data_keys_need_a_master_key_not_held_refuses_to_open_naming_it(
    backend: str, tmp_path: Path
) -> None:
    lost = MasterKeys.generate()
    async with sealed_store(backend, tmp_path, lost) as store:
        await store.append("p-ada", [Confided(person="ada", secret=SECRET)])
    replacement = MasterKeys.generate()  # what silently creating a key file would have done

    with pytest.raises(ConfigurationError) as refused:
        async with sealed_store(backend, tmp_path, replacement, fresh=False):
            pass

    message = str(refused.value)
    assert f"the stored data keys need master key {lost.current!r}, which this process does not hold" in message
    assert "master_key_file, CITADEL_MASTER_KEY_FILE" in message
    assert "CITADEL_MASTER_KEY" in message


async def test_a_store_refused_for_a_missing_master_key_opens_once_the_key_is_given(
    backend: str, tmp_path: Path
) -> None:
    lost = MasterKeys.generate()
    async with sealed_store(backend, tmp_path, lost) as store:
        await store.append("p-ada", [Confided(person="ada", secret=SECRET)])
    with pytest.raises(ConfigurationError):
        async with sealed_store(backend, tmp_path, MasterKeys.generate(), fresh=False):
            pass

    async with sealed_store(backend, tmp_path, lost, fresh=False) as store:
        (record,) = await store.read_stream("p-ada")
        assert record.event == Confided(person="ada", secret=SECRET)


async def test_a_keyring_cleared_while_a_commit_is_under_way_does_not_fail_the_commit(
    backend: str, tmp_path: Path
) -> None:
    """A store's listener clears the keyring when it (re)connects (keys may have been forgotten while it was
    away), which can happen between a batch preparing its keys and sealing with them."""
    keyring = Keyring(MasterKeys.generate())
    async with open_backend(backend, tmp_path, keyring=keyring, extra_events=[Confided]) as store:
        stop = asyncio.Event()

        async def clearing() -> None:
            while not stop.is_set():
                keyring.clear()
                await asyncio.sleep(0)

        clearer = asyncio.create_task(clearing())
        try:
            for n in range(40):
                await store.append(f"p-{n}", [Confided(person=f"p{n % 3}", secret=SECRET)])
        finally:
            stop.set()
            await clearer
        assert [r.event for r in await store.read_all()] == [
            Confided(person=f"p{n % 3}", secret=SECRET) for n in range(40)
        ]
