"""The memory store's views (``ViewStore``): tables of documents (``view_tables``), committed reads, and
rebuilding an inline projection in one transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from citadel.store.handlers import run_handler
from citadel.store.memory.base import MemoryBase
from citadel.store.memory.transaction import MemoryTransaction
from citadel.store.memory.view_tables import MemoryViewReader, table_name
from citadel.store.targets import ProjectionTarget
from citadel.views import View

__all__ = ["MemoryViews"]


class MemoryViews(MemoryBase):
    """Views of ``MemoryEventStore``."""

    async def ensure_views(self, views: Sequence[View[Any]]) -> None:
        """Create the tables of ``views`` (idempotent)."""
        for view in views:
            self._db.table(table_name(view), view.unique)

    def view_reader(self, view: View[Any]) -> MemoryViewReader:
        """Return read access to a view's committed documents."""
        return MemoryViewReader(view, self._db.table(table_name(view), view.unique))

    async def rebuild_inline(
        self, projection: ProjectionTarget, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Empty and replay an inline projection in one transaction (no commit can interleave)."""
        loop = asyncio.get_running_loop()

        def rebuild(tx: MemoryTransaction) -> int:
            for view in projection.views:
                tx.writer(view).clear()
            position, target = 0, tx.db.head
            while position < target:
                records = self._records(tx.db.events[position : position + 1000])
                for record in records:
                    if projection.handles(record.type):
                        run_handler(projection.apply(record, tx))
                position = records[-1].position
                if progress is not None:
                    loop.call_soon(progress, position, target)
            return position

        return self._write(rebuild)
