"""The memory store's snapshots (``Snapshots``): written by commits (``commits``), read here."""

from __future__ import annotations

from citadel.store.memory.base import MemoryBase
from citadel.store.records import Snapshot

__all__ = ["MemorySnapshots"]


class MemorySnapshots(MemoryBase):
    """Snapshots of ``MemoryEventStore``."""

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """Return the stream's snapshot (None when there is none, or its key is gone)."""
        row = self._db.snapshots.get(stream_id)
        if row is None:
            return None
        snapshot = Snapshot(stream_id, *row)
        if self._sealer is None:
            return snapshot
        self._notice_forgotten()
        self._learn(self._sealer.sealed_keys([snapshot.data]))
        return self._sealer.open_snapshot(snapshot)
