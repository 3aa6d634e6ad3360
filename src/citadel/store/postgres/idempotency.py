"""The PostgreSQL store's idempotency records (part of ``EventLog``): a commit stores them with its events
(``batch``); here they are looked up, hashed and pruned once expired (``citadel.store.expiry``)."""

from __future__ import annotations

import time

from citadel.store.postgres.base import PostgresBase
from citadel.store.postgres.records import idempotency_record, prune_idempotency
from citadel.store.records import IdempotencyRecord
from citadel.store.sealing import request_hash

__all__ = ["PostgresIdempotency"]


class PostgresIdempotency(PostgresBase):
    """Idempotency records of ``PostgresEventStore``."""

    def request_hash(self, material: bytes) -> str:
        """Return what an idempotency record stores to recognise a command (see ``EventStore.request_hash``)."""
        return request_hash(self._sealer, material)

    async def idempotency_record(self, key: str) -> IdempotencyRecord | None:
        """Return the unexpired outcome for an idempotency key (``forgotten`` when its key is gone), or None."""
        since = time.time() - self.idempotency_ttl
        record: IdempotencyRecord | None = await self._read(
            lambda connection: idempotency_record(connection, self._sealer, key, since)
        )
        return record

    async def prune_idempotency(self) -> int:
        """Delete expired idempotency records, ``Pruner.batch`` per transaction; return how many."""
        return await self._pruner.prune()

    async def _prune(self, limit: int) -> int:
        before = time.time() - self.idempotency_ttl
        deleted: int = await self._transaction(lambda connection: prune_idempotency(connection, before, limit))
        return deleted
