"""The PostgreSQL store's key table beyond the write path: which master keys the stored data keys need, and
re-wrapping them all with a new one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from citadel.security.encryption import MasterKeys

__all__ = ["master_key_ids", "rewrap_keys"]

# One index probe per distinct master key (``keys_by_master``), not a scan of every data key: a store may hold
# one key per person. Tombstones (master_id '') are skipped.
_MASTER_IDS = """
WITH RECURSIVE masters(id) AS (
    SELECT min(master_id) FROM citadel.keys WHERE master_id > ''
    UNION ALL
    SELECT (SELECT min(master_id) FROM citadel.keys WHERE master_id > masters.id) FROM masters
    WHERE masters.id IS NOT NULL
)
SELECT id FROM masters WHERE id IS NOT NULL
"""


async def master_key_ids(connection: Any) -> set[str]:
    """The ids of the master keys that wrap the stored data keys."""
    return {row[0] for row in await connection.fetch(_MASTER_IDS)}


async def rewrap_keys(connection: Any, master: MasterKeys) -> int:
    """Re-wrap every data key not wrapped by ``master``'s current key with it (inside the caller's transaction,
    the rows locked); return how many changed."""
    rows = await connection.fetch(
        "SELECT key_id, master_id, wrapped FROM citadel.keys WHERE master_id != $1 AND wrapped != ''::bytea FOR UPDATE",
        master.current,
    )
    for key_id, master_id, wrapped in rows:
        new_master, new_wrapped = master.wrap(key_id, master.unwrap(master_id, key_id, wrapped))
        await connection.execute(
            "UPDATE citadel.keys SET master_id = $2, wrapped = $3 WHERE key_id = $1", key_id, new_master, new_wrapped
        )
    return len(rows)
