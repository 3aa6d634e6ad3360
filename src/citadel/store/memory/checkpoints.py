"""The memory store's checkpoints and leases (``Checkpoints``): a projection's page is applied in one transaction
with its checkpoint, fenced by its lease when it has one."""

from __future__ import annotations

from collections.abc import Sequence

from citadel.errors import LeaseLost
from citadel.store.handlers import run_handler
from citadel.store.memory.base import MemoryBase
from citadel.store.memory.transaction import MemoryTransaction
from citadel.store.records import Lease, RecordedEvent
from citadel.store.targets import ProjectionTarget

__all__ = ["MemoryCheckpoints"]


class MemoryCheckpoints(MemoryBase):
    """Checkpoints and leases of ``MemoryEventStore``."""

    async def checkpoint(self, name: str) -> int | None:
        """Return consumer ``name``'s last processed position, or None when it has no checkpoint."""
        return self._db.checkpoints.get(name)

    async def apply_projection(
        self,
        projection: ProjectionTarget,
        records: Sequence[RecordedEvent],
        position: int,
        lease: Lease | None = None,
    ) -> None:
        """Apply events and set the checkpoint in one transaction (fenced by ``lease``)."""

        def apply(tx: MemoryTransaction) -> None:
            if lease is not None:
                _renew(tx, lease)
            for record in records:
                if projection.handles(record.type):
                    run_handler(projection.apply(record, tx))
            _save(tx, projection.name, position)

        self._write(apply)

    async def save_checkpoint(self, name: str, position: int, lease: Lease | None = None) -> None:
        """Move consumer ``name``'s checkpoint forward (fenced by ``lease``)."""

        def save(tx: MemoryTransaction) -> None:
            if lease is not None:
                _renew(tx, lease)
            _save(tx, name, position)

        self._write(save)

    async def rewind_checkpoint(self, name: str, position: int = 0) -> None:
        """Move a consumer's checkpoint back and drop its lease, so the next holder replays from there."""
        self._write(lambda tx: _reset(tx, name, position))

    async def reset_projection(self, projection: ProjectionTarget) -> int:
        """Empty the projection's views, zero its checkpoint and drop its lease; return the head then."""

        def reset(tx: MemoryTransaction) -> int:
            for view in projection.views:
                tx.writer(view).clear()
            _reset(tx, projection.name, 0)
            return tx.db.head

        return self._write(reset)

    async def acquire_lease(self, lease: Lease) -> bool:
        """Take or renew a lease; False while another owner holds an unexpired one."""

        def acquire(tx: MemoryTransaction) -> bool:
            held = tx.db.leases.get(lease.name)
            if held is not None and held[0] != lease.owner and held[1] >= tx.now:
                return False
            tx.set(tx.db.leases, lease.name, (lease.owner, tx.now + lease.ttl))
            return True

        return self._write(acquire)

    async def release_lease(self, lease: Lease) -> None:
        """Give a lease up so another process can take over at once."""

        def release(tx: MemoryTransaction) -> None:
            held = tx.db.leases.get(lease.name)
            if held is not None and held[0] == lease.owner:
                tx.delete(tx.db.leases, lease.name)

        self._write(release)


def _renew(tx: MemoryTransaction, lease: Lease) -> None:
    """Extend ``lease`` if its owner still holds it; else raise ``LeaseLost`` (before anything is written)."""
    held = tx.db.leases.get(lease.name)
    if held is None or held[0] != lease.owner:
        raise LeaseLost(lease.name)
    tx.set(tx.db.leases, lease.name, (lease.owner, tx.now + lease.ttl))


def _save(tx: MemoryTransaction, name: str, position: int) -> None:
    """Move a checkpoint forward (never back: a late write of an older position is ignored)."""
    current = tx.db.checkpoints.get(name)
    if current is None or position > current:
        tx.set(tx.db.checkpoints, name, position)


def _reset(tx: MemoryTransaction, name: str, position: int) -> None:
    """Set a checkpoint back to ``position`` and drop its lease."""
    tx.set(tx.db.checkpoints, name, position)
    tx.delete(tx.db.leases, name)
