"""The SQLite store's key table: reading, creating and forgetting data keys, the store's own request key, which
master keys the stored data keys need, and re-wrapping them all with a new one."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from citadel.store.sealing import REQUEST_KEY, Sealer, WrappedKey

if TYPE_CHECKING:
    from citadel.security.encryption import MasterKeys
    from citadel.store.sqlite.transaction import WriteTransaction

__all__ = ["ensure_keys", "forget_keys", "master_key_ids", "open_request_key", "read_keys", "rewrap_keys"]

# One index probe per distinct master key (the keys sorted by master key, see ``citadel_keys_by_master``), not
# a scan of every data key: a store may hold one key per person. Tombstones (master_id '') are skipped.
_MASTER_IDS = """
WITH RECURSIVE masters(id) AS (
    SELECT min(master_id) FROM citadel_keys WHERE master_id > ''
    UNION ALL
    SELECT (SELECT min(master_id) FROM citadel_keys WHERE master_id > masters.id) FROM masters
    WHERE masters.id IS NOT NULL
)
SELECT id FROM masters WHERE id IS NOT NULL
"""


def master_key_ids(db: sqlite3.Connection) -> set[str]:
    """The ids of the master keys that wrap the data keys stored in ``db``."""
    return {row[0] for row in db.execute(_MASTER_IDS)}


def rewrap_keys(db: sqlite3.Connection, master: MasterKeys) -> int:
    """Re-wrap every data key not wrapped by ``master``'s current key with it (inside the caller's transaction);
    return how many changed."""
    rows = db.execute(
        "SELECT key_id, master_id, wrapped FROM citadel_keys WHERE master_id != ? AND wrapped != x''",
        (master.current,),
    ).fetchall()
    for key_id, master_id, wrapped in rows:
        new_master, new_wrapped = master.wrap(key_id, master.unwrap(master_id, key_id, wrapped))
        db.execute(
            "UPDATE citadel_keys SET master_id = ?, wrapped = ? WHERE key_id = ?", (new_master, new_wrapped, key_id)
        )
    return len(rows)


def read_keys(db: Any, key_ids: Iterable[str]) -> dict[str, WrappedKey]:
    """The stored (wrapped) data keys among ``key_ids``."""
    ids = list(key_ids)
    found: dict[str, WrappedKey] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        rows = db.execute(f"SELECT key_id, master_id, wrapped FROM citadel_keys WHERE key_id IN ({marks})", chunk)  # nosec B608  # validated identifiers, bound values
        found.update((row[0], (row[1], row[2])) for row in rows)
    return found


def ensure_keys(tx: WriteTransaction, sealer: Sealer, key_ids: set[str]) -> None:
    """Make sure the data keys ``key_ids`` exist and are open, creating the missing ones in this transaction."""
    if not key_ids:
        return
    stored = read_keys(tx.db, key_ids)
    created = key_ids - stored.keys()
    for key_id in created:
        master_id, wrapped = sealer.keyring.create(key_id)
        tx.db.execute(
            "INSERT INTO citadel_keys (key_id, master_id, wrapped, created_at) VALUES (?, ?, ?, ?)",
            (key_id, master_id, wrapped, tx.now),
        )
    if created:
        stored.update(read_keys(tx.db, created))
        tx.undo.append(lambda: sealer.keyring.drop(created))  # these rows vanish if the batch does not commit
    sealer.learn(stored)


def forget_keys(tx: WriteTransaction, key_ids: Sequence[str]) -> None:
    """Replace data keys by tombstones (their payloads become unreadable for good) and tell other processes."""
    tx.db.executemany(
        "INSERT INTO citadel_keys (key_id, master_id, wrapped, created_at) VALUES (?, '', x'', ?) "
        "ON CONFLICT (key_id) DO UPDATE SET master_id = '', wrapped = x''",
        [(key_id, tx.now) for key_id in key_ids],
    )
    tx.db.execute("UPDATE citadel_meta SET value = value + 1 WHERE name = 'forgotten_keys'")


def open_request_key(db: sqlite3.Connection, sealer: Sealer) -> None:
    """Give ``sealer`` the store's request key, creating it on first use (when processes race, the first insert
    wins and each reads it back)."""
    stored = read_keys(db, [REQUEST_KEY])
    if REQUEST_KEY not in stored:
        master_id, wrapped = sealer.keyring.create(REQUEST_KEY)
        db.execute(
            "INSERT INTO citadel_keys (key_id, master_id, wrapped, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key_id) DO NOTHING",
            (REQUEST_KEY, master_id, wrapped, time.time()),
        )
        stored = read_keys(db, [REQUEST_KEY])
    sealer.use_request_key(stored[REQUEST_KEY])
