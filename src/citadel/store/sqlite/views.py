"""The SQLite store's views (``ViewStore``): their tables (``view_tables``), committed reads, and rebuilding an
inline projection in one transaction of the group-commit writer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from citadel.store.sqlite.base import SQLiteBase
from citadel.store.sqlite.jobs import CallJob, run_handler, select_events
from citadel.store.sqlite.transaction import WriteTransaction
from citadel.store.sqlite.view_tables import SQLiteViewReader, view_ddl
from citadel.store.targets import ProjectionTarget
from citadel.views import View

__all__ = ["SQLiteViews"]


class SQLiteViews(SQLiteBase):
    """Views of ``SQLiteEventStore``."""

    async def ensure_views(self, views: Sequence[View[Any]]) -> None:
        """Create the tables and indexes of ``views`` (idempotent)."""

        def create(tx: WriteTransaction) -> None:
            for view in views:
                for statement in view_ddl(view):
                    tx.db.execute(statement)

        await self._writer.submit(CallJob(create))

    def view_reader(self, view: View[Any]) -> SQLiteViewReader:
        """Return read access to a view's committed documents."""
        reader = self._view_readers.get(id(view))
        if reader is None:
            reader = self._view_readers[id(view)] = SQLiteViewReader(view, self._db)
        return reader

    async def rebuild_inline(
        self, projection: ProjectionTarget, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Empty and replay an inline projection in one transaction (no commit can interleave)."""
        loop = asyncio.get_running_loop()

        def rebuild(tx: WriteTransaction) -> int:
            for view in projection.views:
                self._writer_for(tx.db, view).clear()
            position, target = 0, tx.head
            while position < target:
                records = self._open(
                    select_events(tx.db, "WHERE position > ? ORDER BY position LIMIT 1000", (position,), self.registry),
                    tx.db,
                )
                if not records:
                    break
                for record in records:
                    if projection.handles(record.type):
                        run_handler(projection.apply(record, tx))
                position = records[-1].position
                if progress is not None:
                    loop.call_soon_threadsafe(progress, position, target)
            return position

        result: int = await self._writer.submit(CallJob(rebuild))
        return result
