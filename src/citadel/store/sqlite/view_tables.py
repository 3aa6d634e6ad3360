"""View tables in SQLite: one ``WITHOUT ROWID`` table per view, named ``<module>__<view>``.

Documents are stored as JSON text so that declared fields can be indexed with ``json_extract`` expressions;
``find`` filters with the very same expressions, so SQLite uses those indexes.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from citadel.errors import ConfigurationError, UniqueViolation
from citadel.store.view_documents import ViewDocuments
from citadel.views import View

__all__ = ["SQLiteViewReader", "SQLiteViewWriter", "table_name", "view_ddl"]

_encoder = msgspec.json.Encoder()
_HELD_LIMIT = 2**31
"""Largest increment held back: a batch's sum of such increments cannot leave SQLite's 64-bit integers."""


def table_name(view: View[Any]) -> str:
    """Return the table of a bound view: ``<module>__<name>``."""
    if view.module is None:
        raise ConfigurationError(f"view {view.name!r} is not part of a module; list it in one")
    return f"{view.module}__{view.name}"


def _field(field: str) -> str:
    return f"json_extract(doc, '$.{field}')"


def view_ddl(view: View[Any]) -> list[str]:
    """Return the statements that create a view's table and indexes (idempotent)."""
    table = table_name(view)
    statements = [f'CREATE TABLE IF NOT EXISTS "{table}" (key TEXT PRIMARY KEY, doc TEXT NOT NULL) WITHOUT ROWID']
    for field in view.indexes:
        statements.append(f'CREATE INDEX IF NOT EXISTS "{table}__{field}" ON "{table}" ({_field(field)})')
    for field in view.unique:
        statements.append(
            f'CREATE UNIQUE INDEX IF NOT EXISTS "{table}__{field}__unique" ON "{table}" ({_field(field)})'
        )
    return statements


class _ViewSQL(ViewDocuments):
    """Prepared SQL text, decoding and the reads shared by a view's reader and writer."""

    def __init__(self, view: View[Any], connection: sqlite3.Connection) -> None:
        super().__init__(view, table_name(view))
        self._db = connection
        self.select = f'SELECT doc FROM "{self.table}" WHERE key = ?'  # nosec B608  # validated identifiers, bound values

    def where(self, where: dict[str, Any]) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for field, value in self.filters(where):
            clauses.append("key = ?" if field == "key" else f"{_field(field)} = ?")
            params.append(value)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    async def get(self, key: str) -> Any:
        row = self._db.execute(self.select, (key,)).fetchone()
        return None if row is None else self.decode(row[0])

    async def find(self, *, limit: int = 100, **where: Any) -> list[Any]:
        clause, params = self.where(where)
        rows = self._db.execute(f'SELECT doc FROM "{self.table}"{clause} ORDER BY key LIMIT ?', (*params, limit))  # nosec B608  # validated identifiers, bound values
        return [self.decode(r[0]) for r in rows]


class SQLiteViewWriter(_ViewSQL):
    """Writes to one view on the writer connection, inside the current transaction.

    Whole-number increments of plainly named fields are held back and summed by key and field until the batch's
    transaction is about to commit (``flush``): a counter that a batch's events bump a hundred times costs one
    statement, not a hundred (a count stored as a float of 2**53 or more would round differently).
    Anything else done to the view (a read, put, merge, delete or clear) writes the held increments first, so it
    sees and keeps their order; a view with unique fields never holds any (a unique field's violation must fail
    the write that caused it).
    """

    def __init__(self, view: View[Any], connection: sqlite3.Connection) -> None:
        super().__init__(view, connection)
        table = self.table
        # Upsert on the key only: INSERT OR REPLACE would silently delete rows that clash on a unique field.
        self._put = f'INSERT INTO "{table}" (key, doc) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET doc = excluded.doc'  # nosec B608  # validated identifiers, bound values
        self._merge = f'UPDATE "{table}" SET doc = json_patch(doc, ?) WHERE key = ?'  # nosec B608  # validated identifiers, bound values
        self._delete = f'DELETE FROM "{table}" WHERE key = ?'  # nosec B608  # validated identifiers, bound values
        self._increment = (
            f'INSERT INTO "{table}" (key, doc) VALUES (?1, json_object(?2, ?3)) '  # nosec B608  # validated identifiers, bound values
            "ON CONFLICT (key) DO UPDATE SET doc = json_set(doc, ?4, coalesce(json_extract(doc, ?4), 0) + ?3)"
        )
        self._holds = not view.unique
        self._counts: dict[tuple[str, str], int] = {}
        """Held increments: (key, field) -> the sum of the whole-number increments not written yet."""

    def flush(self) -> None:
        """Write the held increments (if any) into the current transaction."""
        counts = self._counts
        if counts:
            self._counts = {}
            rows = [(key, field, by, f"$.{field}") for (key, field), by in counts.items()]
            self._db.executemany(self._increment, rows)

    def discard(self) -> None:
        """Drop the held increments (their transaction, or the job that made them, was rolled back)."""
        self._counts.clear()

    def _run(self, sql: str, params: tuple[Any, ...]) -> None:
        self.flush()
        try:
            self._db.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc):
                raise UniqueViolation(self.view.qualified_name, ", ".join(self.view.unique)) from exc
            raise

    def put(self, key: str, doc: Any) -> None:
        self._run(self._put, (key, _encoder.encode(doc).decode()))

    __setitem__ = put

    def merge(self, key: str, **fields: Any) -> None:
        # json_patch deletes keys set to null; store explicit nulls by replacing the field instead.
        if any(v is None for v in fields.values()):
            # Paths are bound like values: field names never become SQL text.
            sets = ", ".join("?, json(?)" for _ in fields)
            params = [p for name, v in fields.items() for p in (f"$.{name}", _encoder.encode(v).decode())]
            self._run(f'UPDATE "{self.table}" SET doc = json_set(doc, {sets}) WHERE key = ?', (*params, key))  # nosec B608
            return
        self._run(self._merge, (_encoder.encode(fields).decode(), key))

    def increment(self, key: str, field: str, by: float = 1) -> None:
        # Held: whole numbers (floats are added in order: their sums depend on it), far from SQLite's 64-bit limit,
        # of plainly named fields (ASCII identifiers: JSON paths that need no quoting; another field goes at once,
        # so that its errors, a bad path, stay where they were).
        if (
            self._holds
            and type(by) is int
            and -_HELD_LIMIT <= by <= _HELD_LIMIT
            and field.isidentifier()
            and field.isascii()
        ):
            counts = self._counts
            counted = (key, field)
            counts[counted] = counts.get(counted, 0) + by
            return
        self._run(self._increment, (key, field, by, f"$.{field}"))

    def delete(self, key: str) -> None:
        self._run(self._delete, (key,))

    __delitem__ = delete

    def clear(self) -> None:
        """Delete every document (used by rebuilds)."""
        self.discard()  # what a clear deletes anyway
        self._db.execute(f'DELETE FROM "{self.table}"')  # nosec B608  # validated identifiers, bound values

    async def get(self, key: str) -> Any:
        self.flush()
        return await super().get(key)

    async def find(self, *, limit: int = 100, **where: Any) -> list[Any]:
        self.flush()
        return await super().find(limit=limit, **where)


class SQLiteViewReader(_ViewSQL):
    """Reads one view's committed documents through a reader connection."""

    async def count(self, **where: Any) -> int:
        clause, params = self.where(where)
        row = self._db.execute(f'SELECT count(*) FROM "{self.table}"{clause}', params).fetchone()  # nosec B608  # validated identifiers, bound values
        return int(row[0])
