"""The PostgreSQL store's key table: reading and creating data keys, the store's own request key, which master
keys the stored data keys need, and re-wrapping them all with a new one."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from citadel.store.sealing import REQUEST_KEY, Sealer, WrappedKey

if TYPE_CHECKING:
    from citadel.security.encryption import MasterKeys

__all__ = ["ensure_keys", "master_key_ids", "open_request_key", "read_keys", "rewrap_keys"]

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


async def read_keys(connection: Any, key_ids: Iterable[str]) -> dict[str, WrappedKey]:
    """The stored (wrapped) data keys among ``key_ids``."""
    rows = await connection.fetch(
        "SELECT key_id, master_id, wrapped FROM citadel.keys WHERE key_id = ANY($1::text[])", list(key_ids)
    )
    return {row[0]: (row[1], row[2]) for row in rows}


async def ensure_keys(connection: Any, sealer: Sealer, key_ids: set[str]) -> None:
    """Make sure the data keys exist and are open. New keys are committed on their own, before the batch
    that needs them: when two nodes race to create one, both read back and use the one that won."""
    missing = sealer.missing(key_ids)
    if not missing:
        return
    stored = await read_keys(connection, missing)
    created = missing - stored.keys()
    if created:
        wrapped = {key_id: sealer.keyring.create(key_id) for key_id in created}
        await connection.executemany(
            "INSERT INTO citadel.keys (key_id, master_id, wrapped) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            [(key_id, master_id, data) for key_id, (master_id, data) in wrapped.items()],
        )
        stored.update(await read_keys(connection, created))
    sealer.learn(stored)


async def open_request_key(connection: Any, sealer: Sealer) -> None:
    """Give ``sealer`` the store's request key, creating it on first use (when nodes race, the first insert wins
    and each reads it back)."""
    stored = await read_keys(connection, [REQUEST_KEY])
    if REQUEST_KEY not in stored:
        master_id, wrapped = sealer.keyring.create(REQUEST_KEY)
        await connection.execute(
            "INSERT INTO citadel.keys (key_id, master_id, wrapped) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            REQUEST_KEY,
            master_id,
            wrapped,
        )
        stored = await read_keys(connection, [REQUEST_KEY])
    sealer.use_request_key(stored[REQUEST_KEY])
