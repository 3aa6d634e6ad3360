"""View tables in PostgreSQL: one table per view in its module's own schema, ``"<module>"."<view>"``.

Documents are ``jsonb``; declared fields get expression indexes on ``(doc -> 'field')`` and ``find`` filters
with the same expressions, comparing JSON values (so numbers compare as numbers).

Writes inside a store transaction are buffered and sent in order, consecutive writes of the same kind as one
pipelined ``executemany``; a read inside the transaction sends the buffer first, so it sees its own writes.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from typing import Any

import asyncpg
import msgspec

from citadel.errors import ConfigurationError, StoreError, UniqueViolation
from citadel.store.coalescing import TurnBatch
from citadel.store.postgres.broken import BROKEN
from citadel.store.view_documents import ViewDocuments
from citadel.views import View

__all__ = ["PostgresViewReader", "PostgresViewWriter", "ViewBuffer", "apply_handler", "table_name", "view_ddl"]

_encoder = msgspec.json.Encoder()


def table_name(view: View[Any]) -> str:
    """Return the quoted table of a bound view: ``"<module>"."<name>"``."""
    if view.module is None:
        raise ConfigurationError(f"view {view.name!r} is not part of a module; list it in one")
    return f'"{view.module}"."{view.name}"'


def view_ddl(view: View[Any]) -> list[str]:
    """Return the statements that create a view's schema, table and indexes (idempotent)."""
    table = table_name(view)
    statements = [
        f'CREATE SCHEMA IF NOT EXISTS "{view.module}"',
        f"CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, doc JSONB NOT NULL)",
    ]
    for field in view.indexes:
        # The field and then the key: one index scan answers ``find``'s filter in key order and stops at its limit.
        # On the field alone, a table without statistics yet (freshly loaded, not analysed) had the planner walk
        # the whole primary key in order, filtering, for one row (``tests/postgres/test_indexes.py``).
        statements.append(_drop_field_only_index(str(view.module), f"{view.name}__{field}"))  # bound: see table_name
        statements.append(
            f"CREATE INDEX IF NOT EXISTS \"{view.name}__{field}__key\" ON {table} ((doc -> '{field}'), key)"
        )
    for field in view.unique:
        statements.append(
            f"CREATE UNIQUE INDEX IF NOT EXISTS \"{view.name}__{field}__unique\" ON {table} ((doc -> '{field}'))"
        )
    return statements


def _drop_field_only_index(schema: str, name: str) -> str:
    """The statement that drops the index earlier versions made on a field alone, if there is one: found by its
    name and its single key column, so that no index of this version (two columns, or unique) whose name the
    old one equals (after a field named like ``<f>__key``, or PostgreSQL's truncation of long names) is
    dropped. ``schema`` and ``name`` are made of identifiers that ``View`` validates."""
    return (
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid "  # nosec B608  # validated identifiers
        "JOIN pg_namespace AS n ON n.oid = c.relnamespace "
        f"WHERE n.nspname = '{schema}' AND c.relname = '{name}' AND i.indnatts = 1 AND NOT i.indisunique) "
        f'THEN DROP INDEX "{schema}"."{name}"; END IF; END $$'
    )


def _json(value: Any) -> str:
    return _encoder.encode(value).decode()


class _ViewSQL(ViewDocuments):
    def __init__(self, view: View[Any]) -> None:
        super().__init__(view, table_name(view))
        self.select = f"SELECT doc FROM {self.table} WHERE key = $1"  # nosec B608  # validated identifiers, bound values

    def where(self, where: dict[str, Any]) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for field, value in self.filters(where):
            params.append(value if field == "key" else _json(value))
            clauses.append(f"key = ${len(params)}" if field == "key" else f"doc -> '{field}' = ${len(params)}::jsonb")
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def find_sql(self, where: dict[str, Any], limit: int) -> tuple[str, list[Any]]:
        clause, params = self.where(where)
        params.append(limit)
        return f"SELECT doc FROM {self.table}{clause} ORDER BY key LIMIT ${len(params)}", params  # nosec B608  # validated identifiers, bound values


class ViewBuffer:
    """The writes of one store transaction, in order, until ``flush`` sends them."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.ops: list[tuple[str, tuple[Any, ...], View[Any]]] = []
        self.writers: dict[int, PostgresViewWriter] = {}
        self.keep_order = False  # a write that is not about one key (clear) is among the ops

    def writer(self, view: View[Any]) -> PostgresViewWriter:
        """Return the buffered writer of ``view`` (``ViewTransaction`` protocol)."""
        found = self.writers.get(id(view))
        if found is None:
            found = self.writers[id(view)] = PostgresViewWriter(view, self)
        return found

    async def flush(self) -> None:
        """Send the buffered writes, runs of the same statement as one pipelined batch.

        Raises:
            UniqueViolation: a write broke a view's unique field.
        """
        ops, self.ops = self.ops, []
        if len(ops) > 1 and not self.keep_order and not any(op[2].unique for op in ops):
            # Every transaction locks its rows in the same order (view, then key), so two writers updating the
            # same rows wait for each other instead of deadlocking. Writes to different keys commute; a key's
            # own writes keep their order (the sort is stable). Not where a unique field makes keys depend on
            # each other, nor around a clear.
            ops.sort(key=lambda op: (op[2].qualified_name, op[1][0]))
        self.keep_order = False
        start = 0
        while start < len(ops):
            sql, _, view = ops[start]
            end = start
            while end < len(ops) and ops[end][0] == sql:
                end += 1
            try:
                if end - start == 1:
                    await self.connection.execute(sql, *ops[start][1])
                else:
                    await self.connection.executemany(sql, [op[1] for op in ops[start:end]])
            except asyncpg.UniqueViolationError as exc:
                raise UniqueViolation(view.qualified_name, ", ".join(view.unique)) from exc
            start = end


class PostgresViewWriter(_ViewSQL):
    """Buffered writes to one view inside a store transaction."""

    def __init__(self, view: View[Any], buffer: ViewBuffer) -> None:
        super().__init__(view)
        self._buffer = buffer
        table = self.table
        self._put = (
            f"INSERT INTO {table} (key, doc) VALUES ($1, $2::jsonb) ON CONFLICT (key) DO UPDATE SET doc = excluded.doc"  # nosec B608  # validated identifiers, bound values
        )
        self._merge = f"UPDATE {table} SET doc = doc || $2::jsonb WHERE key = $1"  # nosec B608  # validated identifiers, bound values
        self._increment = (
            f"INSERT INTO {table} (key, doc) VALUES ($1, jsonb_build_object($2::text, $3::numeric)) "  # nosec B608  # validated identifiers, bound values
            f"ON CONFLICT (key) DO UPDATE SET doc = jsonb_set({table}.doc, ARRAY[$2::text], "
            f"to_jsonb(coalesce(({table}.doc ->> $2::text)::numeric, 0) + $3::numeric))"
        )
        self._delete = f"DELETE FROM {table} WHERE key = $1"  # nosec B608  # validated identifiers, bound values

    def put(self, key: str, doc: Any) -> None:
        self._buffer.ops.append((self._put, (key, _json(doc)), self.view))

    __setitem__ = put

    def merge(self, key: str, **fields: Any) -> None:
        self._buffer.ops.append((self._merge, (key, _json(fields)), self.view))

    def increment(self, key: str, field: str, by: float = 1) -> None:
        self._buffer.ops.append((self._increment, (key, field, by), self.view))

    def delete(self, key: str) -> None:
        self._buffer.ops.append((self._delete, (key,), self.view))

    __delitem__ = delete

    def clear(self) -> None:
        """Delete every document (used by rebuilds)."""
        self._buffer.keep_order = True
        self._buffer.ops.append((f"DELETE FROM {self.table} WHERE $1::int = 1", (1,), self.view))  # nosec B608  # validated identifiers, bound values

    async def get(self, key: str) -> Any:
        await self._buffer.flush()
        return self.decode(await self._buffer.connection.fetchval(self.select, key))

    async def find(self, *, limit: int = 100, **where: Any) -> list[Any]:
        await self._buffer.flush()
        sql, params = self.find_sql(where, limit)
        return [self.decode(r[0]) for r in await self._buffer.connection.fetch(sql, *params)]


class PostgresViewReader(_ViewSQL):
    """Reads one view's committed documents through the store's pool.

    ``get`` reads are sent together: the keys asked of the view during one turn of the event loop go to the
    database as one query at the start of the next turn (``citadel.store.coalescing``), so that concurrent
    requests reading the same view cost one round trip instead of one each.
    """

    def __init__(self, view: View[Any], pool: Any) -> None:
        super().__init__(view)
        self._pool = pool
        self.select_many = f"SELECT key, doc FROM {self.table} WHERE key = ANY($1::text[])"  # nosec B608  # validated identifiers, bound values
        self.batch: TurnBatch[str, str | None] = TurnBatch(self._read_many, None)

    async def get(self, key: str) -> Any:
        return self.decode(await self.batch.get(key))  # each caller decodes its own copy

    async def _read_many(self, keys: list[str]) -> dict[str, str | None]:
        if len(keys) == 1:
            return {keys[0]: await self._query("fetchval", self.select, keys[0])}
        return dict(await self._query("fetch", self.select_many, keys))

    async def find(self, *, limit: int = 100, **where: Any) -> list[Any]:
        sql, params = self.find_sql(where, limit)
        return [self.decode(r[0]) for r in await self._query("fetch", sql, *params)]

    async def count(self, **where: Any) -> int:
        clause, params = self.where(where)
        return int(await self._query("fetchval", f"SELECT count(*) FROM {self.table}{clause}", *params))  # nosec B608  # validated identifiers, bound values

    async def _query(self, method: str, sql: str, *args: Any) -> Any:
        """Run one read on the pool; a server restarting or a connection lost is a ``StoreError`` (503 with
        ``Retry-After`` at the HTTP edge), never a driver error that would read as a bug."""
        try:
            return await getattr(self._pool, method)(sql, *args)
        except BROKEN as exc:
            raise StoreError(f"PostgreSQL read of view {self.view.qualified_name} failed: {exc}") from exc


async def apply_handler(result: Awaitable[None] | None) -> None:
    """Await a projection handler's result when it is a coroutine."""
    if result is not None and inspect.isawaitable(result):
        await result
