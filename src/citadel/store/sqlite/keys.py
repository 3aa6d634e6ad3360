"""The SQLite store's data keys (``Keys``): re-wrapping them with a new master key, and which master keys they
need. The key table itself is read and written by ``key_table``."""

from __future__ import annotations

from citadel.security.encryption import MasterKeys
from citadel.store.sqlite.base import SQLiteBase
from citadel.store.sqlite.jobs import CallJob
from citadel.store.sqlite.key_table import master_key_ids, rewrap_keys

__all__ = ["SQLiteKeys"]


class SQLiteKeys(SQLiteBase):
    """Key administration of ``SQLiteEventStore``."""

    async def rewrap_keys(self, master: MasterKeys) -> int:
        """Re-wrap every data key with the current master key, in one transaction."""
        result: int = await self._writer.submit(CallJob(lambda tx: rewrap_keys(tx.db, master)))
        return result

    async def master_key_ids(self) -> set[str]:
        """The ids of the master keys that wrap the stored data keys."""
        return master_key_ids(self._db)
