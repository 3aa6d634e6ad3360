"""The memory store's data keys (``Keys``): re-wrapping them with a new master key, and which master keys they
need."""

from __future__ import annotations

from citadel.security.encryption import MasterKeys
from citadel.store.memory.base import MemoryBase
from citadel.store.memory.transaction import MemoryTransaction

__all__ = ["MemoryKeys"]


class MemoryKeys(MemoryBase):
    """Key administration of ``MemoryEventStore``."""

    async def rewrap_keys(self, master: MasterKeys) -> int:
        """Re-wrap every data key not wrapped by the current master key, in one transaction; return how many."""

        def rewrap(tx: MemoryTransaction) -> int:
            keys = tx.db.keys
            stale = [(k, m, w) for k, (m, w) in keys.items() if m != master.current and w != b""]
            for key_id, master_id, wrapped in stale:
                tx.set(keys, key_id, master.wrap(key_id, master.unwrap(master_id, key_id, wrapped)))
            return len(stale)

        return self._write(rewrap)

    async def master_key_ids(self) -> set[str]:
        """The ids of the master keys that wrap the stored data keys (tombstones need none)."""
        return {master_id for master_id, _ in self._db.keys.values() if master_id}
