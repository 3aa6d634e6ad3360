"""The SQLite store's snapshots (``Snapshots``): written by commits (``jobs.CommitJob``), read here."""

from __future__ import annotations

from citadel.store.records import Snapshot
from citadel.store.sqlite.base import SQLiteBase
from citadel.store.sqlite.records import load_snapshot

__all__ = ["SQLiteSnapshots"]


class SQLiteSnapshots(SQLiteBase):
    """Snapshots of ``SQLiteEventStore``."""

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """Return the stream's snapshot (None when there is none, or its key is gone)."""
        self._notice_forgotten(self._db)
        return load_snapshot(self._db, self._sealer, stream_id)
