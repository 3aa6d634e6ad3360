"""The PostgreSQL store's snapshots (``Snapshots``): written by commits (``batch``), read here."""

from __future__ import annotations

from citadel.store.postgres.base import PostgresBase
from citadel.store.postgres.records import load_snapshot
from citadel.store.records import Snapshot

__all__ = ["PostgresSnapshots"]


class PostgresSnapshots(PostgresBase):
    """Snapshots of ``PostgresEventStore``."""

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """Return the stream's snapshot (None when there is none, or its key is gone)."""
        snapshot: Snapshot | None = await self._read(lambda c: load_snapshot(c, self._sealer, stream_id))
        return snapshot
