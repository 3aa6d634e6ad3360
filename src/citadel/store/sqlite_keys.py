"""The SQLite store's key table beyond the write path: which master keys the stored data keys need, and
re-wrapping them all with a new one."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from citadel.security.encryption import MasterKeys

__all__ = ["master_key_ids", "rewrap_keys"]

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
