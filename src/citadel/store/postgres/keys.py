"""The PostgreSQL store's data keys (``Keys``): re-wrapping them with a new master key, and which master keys they
need. The key table itself is read and written by ``key_table``."""

from __future__ import annotations

from citadel.security.encryption import MasterKeys
from citadel.store.postgres.base import PostgresBase
from citadel.store.postgres.key_table import master_key_ids, rewrap_keys

__all__ = ["PostgresKeys"]


class PostgresKeys(PostgresBase):
    """Key administration of ``PostgresEventStore``."""

    async def rewrap_keys(self, master: MasterKeys) -> int:
        """Re-wrap every data key with the current master key, in one transaction."""
        result: int = await self._transaction(lambda connection: rewrap_keys(connection, master))
        return result

    async def master_key_ids(self) -> set[str]:
        """The ids of the master keys that wrap the stored data keys."""
        async with self.pool.acquire() as connection:
            return await master_key_ids(connection)
