"""A store's data keys as services share them: read the wrapped keys of given ids, and keep a key that another
service gave (``citadel.messaging.keyshare``). Forgetting needs nothing here: ``Commit(forget=...)`` deletes keys.

Every backend keeps its keys in one table (``citadel_keys`` in SQLite, ``citadel.keys`` in PostgreSQL, a dict of
the memory store's database), a tombstone (an empty wrapped key) where a key was forgotten. A kept key never
replaces a stored one, tombstones included: a forgotten subject's key does not come back.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Collection
from typing import Any

from citadel.errors import ConfigurationError, StoreError
from citadel.store.memory import MemoryEventStore
from citadel.store.sealing import WrappedKey
from citadel.store.sqlite import SQLiteEventStore

__all__ = ["keep_data_key", "read_data_keys"]

_BUSY_MS = 30_000


async def read_data_keys(store: object, key_ids: Collection[str]) -> dict[str, WrappedKey]:
    """The stored data keys among ``key_ids``, as ``(master key id, wrapped key)``; a forgotten one as ``("", b"")``.

    Raises:
        ConfigurationError: the store is none of SQLite, PostgreSQL and memory.
        StoreError: the database failed.
    """
    if not key_ids:
        return {}
    if isinstance(store, MemoryEventStore):
        keys = store.database.keys
        return {key_id: keys[key_id] for key_id in key_ids if key_id in keys}
    if isinstance(store, SQLiteEventStore):
        return await asyncio.to_thread(_sqlite, store, _read_sqlite, list(key_ids))
    pool = _pool(store)
    async with pool.acquire() as connection:
        rows = await connection.fetch(
            "SELECT key_id, master_id, wrapped FROM citadel.keys WHERE key_id = ANY($1::text[])", list(key_ids)
        )
    return {row[0]: (row[1], bytes(row[2])) for row in rows}


async def keep_data_key(store: object, key_id: str, master_id: str, wrapped: bytes) -> WrappedKey:
    """Store the data key ``key_id`` (wrapped by this store's master key ``master_id``) unless a key or a tombstone
    of that id is stored already; return what is stored now.

    Raises:
        ConfigurationError: the store is none of SQLite, PostgreSQL and memory.
        StoreError: the database failed.
    """
    if not key_id.startswith("subject:"):  # a store's own keys (a module's, its hashing key) are never received
        raise ConfigurationError(f"only a data subject's key may come from another service, not {key_id[:80]!r}")
    if isinstance(store, MemoryEventStore):
        return store.database.keys.setdefault(key_id, (master_id, wrapped))
    if isinstance(store, SQLiteEventStore):
        return await asyncio.to_thread(_sqlite, store, _keep_sqlite, key_id, master_id, wrapped)
    pool = _pool(store)
    async with pool.acquire() as connection:
        await connection.execute(
            "INSERT INTO citadel.keys (key_id, master_id, wrapped) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            key_id,
            master_id,
            wrapped,
        )
        row = await connection.fetchrow("SELECT master_id, wrapped FROM citadel.keys WHERE key_id = $1", key_id)
    return (row[0], bytes(row[1]))


def _pool(store: object) -> Any:
    from citadel.store.postgres import PostgresEventStore  # here: asyncpg only for a PostgreSQL store

    if isinstance(store, PostgresEventStore):
        return store.pool
    raise ConfigurationError(
        f"sharing data keys between services needs a SQLite, PostgreSQL or memory store, not {store!r}"
    )


def _sqlite(store: SQLiteEventStore, work: Any, *args: Any) -> Any:
    """Run ``work(db, *args)`` on a connection of its own to the store's file (the store's are busy elsewhere)."""
    try:
        db = sqlite3.connect(store.path, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {store.path}: {exc}") from exc
    try:
        db.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
        db.execute("PRAGMA secure_delete = ON")
        return work(db, *args)
    except sqlite3.Error as exc:
        raise StoreError(f"the data keys of {store.path} cannot be read or written: {exc}") from exc
    finally:
        db.close()


def _read_sqlite(db: sqlite3.Connection, key_ids: list[str]) -> dict[str, WrappedKey]:
    found: dict[str, WrappedKey] = {}
    for start in range(0, len(key_ids), 500):
        chunk = key_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        query = f"SELECT key_id, master_id, wrapped FROM citadel_keys WHERE key_id IN ({marks})"  # nosec B608  # placeholders only
        found.update({row[0]: (row[1], bytes(row[2])) for row in db.execute(query, chunk)})
    return found


def _keep_sqlite(db: sqlite3.Connection, key_id: str, master_id: str, wrapped: bytes) -> WrappedKey:
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(
            "INSERT INTO citadel_keys (key_id, master_id, wrapped, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key_id) DO NOTHING",
            (key_id, master_id, wrapped, time.time()),
        )
        row = db.execute("SELECT master_id, wrapped FROM citadel_keys WHERE key_id = ?", (key_id,)).fetchone()
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return (row[0], bytes(row[1]))
