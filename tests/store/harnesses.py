"""How the conformance suite (``citadel.testing.store_suite``) reaches each backend of this repository: the
store to build, how to empty its storage, and its bytes at rest."""

from __future__ import annotations

import sqlite3
from typing import Any

import asyncpg

from citadel.messages import EventRegistry
from citadel.store.memory import MemoryDatabase, MemoryEventStore
from citadel.store.postgres import PostgresEventStore
from citadel.store.sqlite import SQLiteEventStore
from citadel.testing.store_suite import StoreHarness
from tests.backends import POSTGRES, reset_postgres
from tests.store.at_rest import pg_dump, sqlite_files

__all__ = ["MemoryHarness", "PostgresHarness", "SQLiteHarness", "SQLiteThreadHarness"]


class SQLiteHarness(StoreHarness):
    """SQLite, batches written on the event loop; a new file for each empty storage."""

    writer = "loop"
    files = 0

    async def empty_storage(self) -> None:
        self.files += 1
        self.path = self.tmp_path / f"events-{self.files}.db"

    def create_store(self, registry: EventRegistry, **options: Any) -> SQLiteEventStore:
        return SQLiteEventStore(self.path, registry, writer=self.writer, **options)

    async def stored_bytes(self) -> dict[str, bytes]:
        return sqlite_files(self.path)

    def _query(self, sql: str, *params: Any) -> list[Any]:
        db = sqlite3.connect(self.path)
        try:
            rows = db.execute(sql, params).fetchall()
            db.commit()
            return rows
        finally:
            db.close()

    async def stored_payloads(self, stream_id: str) -> list[bytes]:
        rows = self._query("SELECT data FROM citadel_events WHERE stream_id = ? ORDER BY version", stream_id)
        return [bytes(row[0]) for row in rows]

    async def overwrite_payloads(self, stream_id: str, data: bytes) -> None:
        self._query("UPDATE citadel_events SET data = ? WHERE stream_id = ?", data, stream_id)

    async def stored_idempotency_result(self, key: str) -> bytes | None:
        rows = self._query("SELECT result FROM citadel_idempotency WHERE key = ?", key)
        return bytes(rows[0][0]) if rows else None


class SQLiteThreadHarness(SQLiteHarness):
    """SQLite, batches written on a writer thread."""

    writer = "thread"


class PostgresHarness(StoreHarness):
    """PostgreSQL, on the test database, every schema dropped for each empty storage."""

    async def empty_storage(self) -> None:
        await reset_postgres(POSTGRES)

    def create_store(self, registry: EventRegistry, **options: Any) -> PostgresEventStore:
        return PostgresEventStore(POSTGRES, registry, **options)

    async def stored_bytes(self) -> dict[str, bytes]:
        return {"pg_dump": pg_dump(POSTGRES)}

    async def _query(self, sql: str, *params: Any) -> list[Any]:
        connection = await asyncpg.connect(POSTGRES)
        try:
            return list(await connection.fetch(sql, *params))
        finally:
            await connection.close()

    async def stored_payloads(self, stream_id: str) -> list[bytes]:
        rows = await self._query("SELECT data FROM citadel.events WHERE stream_id = $1 ORDER BY version", stream_id)
        return [bytes(row[0]) for row in rows]

    async def overwrite_payloads(self, stream_id: str, data: bytes) -> None:
        await self._query("UPDATE citadel.events SET data = $1 WHERE stream_id = $2", data, stream_id)

    async def stored_idempotency_result(self, key: str) -> bytes | None:
        rows = await self._query("SELECT result FROM citadel.idempotency WHERE key = $1", key)
        return bytes(rows[0][0]) if rows else None


class MemoryHarness(StoreHarness):
    """The in-memory store, a new database for each empty storage."""

    async def empty_storage(self) -> None:
        self.database = MemoryDatabase()

    def create_store(self, registry: EventRegistry, **options: Any) -> MemoryEventStore:
        return MemoryEventStore(registry, database=self.database, **options)

    async def stored_bytes(self) -> dict[str, bytes]:
        return {"memory": self.database.at_rest()}

    async def stored_payloads(self, stream_id: str) -> list[bytes]:
        events = self.database.events
        return [events[p - 1][6] for p in self.database.streams.get(stream_id, [])]

    async def overwrite_payloads(self, stream_id: str, data: bytes) -> None:
        events = self.database.events
        for p in self.database.streams.get(stream_id, []):
            row = events[p - 1]
            events[p - 1] = (*row[:6], data, *row[7:])  # type: ignore[assignment]

    async def stored_idempotency_result(self, key: str) -> bytes | None:
        row = self.database.idempotency.get(key)
        return None if row is None else row[1]
