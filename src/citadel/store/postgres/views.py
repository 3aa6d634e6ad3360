"""The PostgreSQL store's views (``ViewStore``): their schemas and tables (``view_tables``), committed reads, and
rebuilding an inline projection in one transaction that holds concurrent commits back."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from citadel.store.postgres.base import PostgresBase
from citadel.store.postgres.event_log import REPLAY
from citadel.store.postgres.key_table import read_keys
from citadel.store.postgres.view_tables import PostgresViewReader, ViewBuffer, apply_handler, view_ddl
from citadel.store.targets import ProjectionTarget
from citadel.views import View

__all__ = ["PostgresViews"]


class PostgresViews(PostgresBase):
    """Views of ``PostgresEventStore``."""

    async def ensure_views(self, views: Sequence[View[Any]]) -> None:
        """Create the schemas, tables and indexes of ``views`` (idempotent, safe for concurrent nodes)."""

        async def create(connection: Any) -> None:
            await connection.execute("SELECT pg_advisory_xact_lock($1)", 0x43495442)
            for view in views:
                for statement in view_ddl(view):
                    await connection.execute(statement)

        await self._transaction(create)

    def view_reader(self, view: View[Any]) -> PostgresViewReader:
        """Return read access to a view's committed documents."""
        reader = self._view_readers.get(id(view))
        if reader is None:
            reader = self._view_readers[id(view)] = PostgresViewReader(view, self.pool)
        return reader

    async def rebuild_inline(
        self, projection: ProjectionTarget, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Empty and replay an inline projection in one transaction that excludes concurrent commits."""

        async def rebuild(connection: Any) -> int:
            # Writers append with row locks only; a share lock on the log makes them wait for the rebuild.
            await connection.execute("LOCK TABLE citadel.events IN SHARE MODE")
            buffer = ViewBuffer(connection)
            for view in projection.views:
                buffer.writer(view).clear()
            target = int(await connection.fetchval("SELECT coalesce(max(position), 0) FROM citadel.events"))
            position = 0
            while position < target:
                rows = await connection.fetch(REPLAY, position)
                if not rows:
                    break
                records = self._records(rows)
                if self._sealer is not None:
                    missing = self._sealer.missing(self._sealer.sealed_keys(r.data for r in records))
                    self._sealer.learn(await read_keys(connection, missing))
                    self._sealer.open_records(records)
                for record in records:
                    if projection.handles(record.type):
                        await apply_handler(projection.apply(record, buffer))
                await buffer.flush()
                position = rows[-1][0]
                if progress is not None:
                    progress(position, target)
            return position

        result: int = await self._transaction(rebuild)
        return result
