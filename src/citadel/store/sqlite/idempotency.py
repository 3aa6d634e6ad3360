"""The SQLite store's idempotency records (part of ``EventLog``): a commit stores them with its events
(``jobs.CommitJob``); here they are looked up, hashed and pruned once expired (``citadel.store.expiry``)."""

from __future__ import annotations

import time

from citadel.store.records import IdempotencyRecord
from citadel.store.sealing import request_hash
from citadel.store.sqlite.base import SQLiteBase
from citadel.store.sqlite.jobs import CallJob
from citadel.store.sqlite.records import idempotency_record, prune_idempotency

__all__ = ["SQLiteIdempotency"]


class SQLiteIdempotency(SQLiteBase):
    """Idempotency records of ``SQLiteEventStore``. ``_pruner`` is set by ``SQLiteEventStore.__init__``."""

    def request_hash(self, material: bytes) -> str:
        """Return what an idempotency record stores to recognise a command (see ``EventStore.request_hash``)."""
        return request_hash(self._sealer, material)

    async def idempotency_record(self, key: str) -> IdempotencyRecord | None:
        """Return the unexpired outcome for an idempotency key (``forgotten`` when its key is gone), or None."""
        self._notice_forgotten(self._db)
        return idempotency_record(self._db, self._sealer, key, time.time() - self.idempotency_ttl)

    async def prune_idempotency(self) -> int:
        """Delete expired idempotency records, ``Pruner.batch`` per transaction; return how many."""
        return await self._pruner.prune()

    async def _prune(self, limit: int) -> int:
        before = time.time() - self.idempotency_ttl
        deleted: int = await self._writer.submit(CallJob(lambda tx: prune_idempotency(tx, before, limit)))
        return deleted
