"""The projection side of the SQLite event store: inline projections, views, checkpoints, leases, dead letters.

Every write here is a job for the store's group-commit writer (``sqlite_writer``): a projection's changes to
its views commit in one transaction with its checkpoint, fenced by its lease when it has one. This class builds
on ``SQLiteReads`` (``sqlite_reads``), and ``SQLiteEventStore`` (``citadel.store.sqlite``) on it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from citadel.store.base import Lease, ProjectionTarget, RecordedEvent
from citadel.store.sqlite_jobs import (
    CallJob,
    ProjectionJob,
    acquire_lease,
    renew_lease,
    reset_checkpoint,
    run_handler,
    save_checkpoint,
    select_events,
)
from citadel.store.sqlite_reads import SQLiteReads
from citadel.store.sqlite_records import park
from citadel.store.sqlite_views import SQLiteViewWriter, view_ddl
from citadel.store.sqlite_writer import GroupCommitWriter, WriteTransaction
from citadel.views import View

__all__ = ["SQLiteProjections"]


class SQLiteProjections(SQLiteReads):
    """Projection writes of ``SQLiteEventStore``, each run by its group-commit writer. The attributes below are
    set by ``SQLiteEventStore.__init__``."""

    _writer: GroupCommitWriter
    _inline: list[ProjectionTarget]
    _inline_by_type: dict[str, list[ProjectionTarget]]
    _view_writers: dict[int, SQLiteViewWriter]

    def _inline_for(self, type_name: str) -> Sequence[ProjectionTarget]:
        return self._inline_by_type.get(type_name, ())

    def _writer_for(self, db: sqlite3.Connection, view: View[Any]) -> SQLiteViewWriter:
        writer = self._view_writers.get(id(view))
        if writer is None:
            writer = self._view_writers[id(view)] = SQLiteViewWriter(view, db)
        return writer

    def add_inline_projection(self, projection: ProjectionTarget) -> None:
        """Run ``projection`` in every commit that appends an event it handles."""
        self._inline.append(projection)
        for info in self.registry:
            if projection.handles(info.name):
                self._inline_by_type.setdefault(info.name, []).append(projection)

    async def ensure_views(self, views: Sequence[View[Any]]) -> None:
        """Create the tables and indexes of ``views`` (idempotent)."""

        def create(tx: WriteTransaction) -> None:
            for view in views:
                for statement in view_ddl(view):
                    tx.db.execute(statement)

        await self._writer.submit(CallJob(create))

    async def apply_projection(
        self,
        projection: ProjectionTarget,
        records: Sequence[RecordedEvent],
        position: int,
        lease: Lease | None = None,
    ) -> None:
        """Apply events and set the checkpoint in one transaction (fenced by ``lease``)."""
        await self._writer.submit(ProjectionJob(projection, records, position, lease))

    async def save_checkpoint(self, name: str, position: int, lease: Lease | None = None) -> None:
        """Set consumer ``name``'s checkpoint (fenced by ``lease``)."""

        def save(tx: WriteTransaction) -> None:
            if lease is not None:
                renew_lease(tx, lease)
            save_checkpoint(tx, name, position)

        await self._writer.submit(CallJob(save))

    async def rewind_checkpoint(self, name: str, position: int = 0) -> None:
        """Move a consumer's checkpoint back and drop its lease, so the next holder replays from there."""
        await self._writer.submit(CallJob(lambda tx: reset_checkpoint(tx, name, position)))

    async def acquire_lease(self, lease: Lease) -> bool:
        """Take or renew a lease; False while another owner holds it."""
        held: bool = await self._writer.submit(CallJob(lambda tx: acquire_lease(tx, lease)))
        return held

    async def release_lease(self, lease: Lease) -> None:
        """Give a lease up so another process can take over at once."""

        def release(tx: WriteTransaction) -> None:
            tx.db.execute("DELETE FROM citadel_leases WHERE name = ? AND owner = ?", (lease.name, lease.owner))

        await self._writer.submit(CallJob(release))

    async def reset_projection(self, projection: ProjectionTarget) -> int:
        """Empty the projection's views, zero its checkpoint and drop its lease; return the head then."""

        def reset(tx: WriteTransaction) -> int:
            for view in projection.views:
                self._writer_for(tx.db, view).clear()
            reset_checkpoint(tx, projection.name)
            return tx.head

        result: int = await self._writer.submit(CallJob(reset))
        return result

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

    async def add_dead_letter(self, consumer: str, record: RecordedEvent, error: str, attempts: int) -> None:
        """Park an event a consumer gave up on (its error text sealed, see ``citadel.store.dead_letters``)."""
        await self._writer.submit(CallJob(lambda tx: park(tx, self._sealer, consumer, record, error, attempts)))

    async def resolve_dead_letter(
        self, letter_id: int, projection: ProjectionTarget | None = None, record: RecordedEvent | None = None
    ) -> bool:
        """Delete a dead letter, applying its event to ``projection`` in the same transaction when given."""

        def resolve(tx: WriteTransaction) -> bool:
            if tx.db.execute("DELETE FROM citadel_dead_letters WHERE id = ?", (letter_id,)).rowcount == 0:
                return False
            if projection is not None and record is not None and projection.handles(record.type):
                run_handler(projection.apply(record, tx))
            return True

        resolved: bool = await self._writer.submit(CallJob(resolve))
        return resolved
