"""What every part of the PostgreSQL event store shares: its attributes, the pool, reads and transactions that
translate driver errors, opening sealed payloads, and waking waiters.

Each read borrows a pooled connection, outside any transaction; each write other than a commit runs in a
transaction of its own (``_transaction``). Each port is a class of its own module built on ``PostgresBase``
(``event_log``, ``idempotency``, ``snapshots``, ``views``, ``checkpoints``, ``dead_letters``, ``keys``,
``migrations``), and ``PostgresEventStore`` (``store``) is all of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from citadel.errors import StoreError
from citadel.messages import EventRegistry
from citadel.store.expiry import Pruner
from citadel.store.postgres.broken import BROKEN
from citadel.store.postgres.key_table import read_keys
from citadel.store.postgres.view_tables import PostgresViewReader
from citadel.store.postgres.writer import PostgresWriter
from citadel.store.records import RecordedEvent
from citadel.store.sealing import Sealer
from citadel.store.targets import ProjectionTarget

__all__ = ["PostgresBase"]


class PostgresBase:
    """The state of ``PostgresEventStore`` that its ports share. The attributes below are set by
    ``PostgresEventStore.__init__`` and ``open``."""

    registry: EventRegistry
    dsn: str
    poll_interval: float
    idempotency_ttl: float
    _sealer: Sealer | None
    _pool: Any
    _head: int
    _changed: asyncio.Event
    _view_readers: dict[int, PostgresViewReader]
    _inline_by_type: dict[str, list[ProjectionTarget]]
    _writer: PostgresWriter | None
    _pruner: Pruner

    @property
    def pool(self) -> Any:
        """The connection pool."""
        if self._pool is None:
            raise StoreError("the event store is not open; call `await store.open()` first")
        return self._pool

    @property
    def writer(self) -> PostgresWriter:
        """The group-commit writer (its ``transactions`` counter shows batching)."""
        if self._writer is None:
            raise StoreError("the event store is not open; call `await store.open()` first")
        return self._writer

    async def _open(self, records: list[RecordedEvent]) -> list[RecordedEvent]:
        """Open sealed payloads (reading the keys not known yet); a no-op without encryption."""
        sealer = self._sealer
        if sealer is None or not records:
            return records
        missing = sealer.missing(sealer.sealed_keys(r.data for r in records))
        if missing:
            async with self.pool.acquire() as connection:
                sealer.learn(await read_keys(connection, missing))
        sealer.open_records(records)
        return records

    def _on_commit(self, position: int) -> None:
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _inline_for(self, type_name: str) -> Sequence[ProjectionTarget]:
        return self._inline_by_type.get(type_name, ())

    def _records(self, rows: Sequence[Any]) -> list[RecordedEvent]:
        registry = self.registry
        return [RecordedEvent(*row, registry=registry) for row in rows]  # type: ignore[misc]

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        return list(await self._read(lambda connection: connection.fetch(sql, *args)))

    async def _read(self, work: Callable[[Any], Any]) -> Any:
        """Run ``work(connection)`` on a pooled connection, translating driver errors."""
        try:
            async with self.pool.acquire() as connection:
                return await work(connection)
        except BROKEN as exc:
            raise StoreError(f"PostgreSQL read failed: {exc}") from exc

    async def _transaction(self, work: Callable[[Any], Any]) -> Any:
        """Run ``work(connection)`` in its own transaction, translating driver errors."""
        try:
            async with self.pool.acquire() as connection, connection.transaction():
                return await work(connection)
        except BROKEN as exc:
            raise StoreError(f"PostgreSQL write failed: {exc}") from exc
