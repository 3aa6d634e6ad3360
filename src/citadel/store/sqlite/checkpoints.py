"""The SQLite store's checkpoints and leases (``Checkpoints``).

Every write here is a job for the store's group-commit writer (``writer``): a projection's changes to its views
commit in one transaction with its checkpoint, fenced by its lease when it has one.
"""

from __future__ import annotations

from collections.abc import Sequence

from citadel.store.records import Lease, RecordedEvent
from citadel.store.sqlite.base import SQLiteBase
from citadel.store.sqlite.jobs import (
    CallJob,
    ProjectionJob,
    acquire_lease,
    renew_lease,
    reset_checkpoint,
    save_checkpoint,
)
from citadel.store.sqlite.transaction import WriteTransaction
from citadel.store.targets import ProjectionTarget

__all__ = ["SQLiteCheckpoints"]


class SQLiteCheckpoints(SQLiteBase):
    """Checkpoints and leases of ``SQLiteEventStore``."""

    async def checkpoint(self, name: str) -> int | None:
        """Return consumer ``name``'s last processed position, or None when it has no checkpoint."""
        row = self._db.execute("SELECT position FROM citadel_checkpoints WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])

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

    async def reset_projection(self, projection: ProjectionTarget) -> int:
        """Empty the projection's views, zero its checkpoint and drop its lease; return the head then."""

        def reset(tx: WriteTransaction) -> int:
            for view in projection.views:
                self._writer_for(tx.db, view).clear()
            reset_checkpoint(tx, projection.name)
            return tx.head

        result: int = await self._writer.submit(CallJob(reset))
        return result

    async def acquire_lease(self, lease: Lease) -> bool:
        """Take or renew a lease; False while another owner holds it."""
        held: bool = await self._writer.submit(CallJob(lambda tx: acquire_lease(tx, lease)))
        return held

    async def release_lease(self, lease: Lease) -> None:
        """Give a lease up so another process can take over at once."""

        def release(tx: WriteTransaction) -> None:
            tx.db.execute("DELETE FROM citadel_leases WHERE name = ? AND owner = ?", (lease.name, lease.owner))

        await self._writer.submit(CallJob(release))
