"""The memory store's idempotency records (part of ``EventLog``): a commit stores them with its events
(``commits``); here they are looked up, hashed and pruned once expired (``citadel.store.expiry``)."""

from __future__ import annotations

import time

from citadel.store.memory.base import MemoryBase
from citadel.store.memory.transaction import MemoryTransaction
from citadel.store.records import IdempotencyRecord
from citadel.store.sealing import request_hash

__all__ = ["MemoryIdempotency"]


class MemoryIdempotency(MemoryBase):
    """Idempotency records of ``MemoryEventStore``."""

    def request_hash(self, material: bytes) -> str:
        """Return what an idempotency record stores to recognise a command (see ``EventStore.request_hash``)."""
        return request_hash(self._sealer, material)

    async def idempotency_record(self, key: str) -> IdempotencyRecord | None:
        """Return the unexpired outcome for an idempotency key (``forgotten`` when its key is gone), or None."""
        row = self._db.idempotency.get(key)
        if row is None or row[3] < time.time() - self.idempotency_ttl:
            return None
        record = IdempotencyRecord(key, row[0], row[1], row[2])
        if self._sealer is None:
            return record
        self._notice_forgotten()
        self._learn(self._sealer.sealed_keys([record.result]))
        return self._sealer.open_result(record)

    async def prune_idempotency(self) -> int:
        """Delete expired idempotency records, ``Pruner.batch`` per transaction; return how many."""
        return await self._pruner.prune()

    async def _prune(self, limit: int) -> int:
        before = time.time() - self.idempotency_ttl

        def prune(tx: MemoryTransaction) -> int:
            records = tx.db.idempotency
            expired = sorted((row[3], key) for key, row in records.items() if row[3] < before)[:limit]
            for _, key in expired:
                tx.delete(records, key)
            return len(expired)

        return self._write(prune)
