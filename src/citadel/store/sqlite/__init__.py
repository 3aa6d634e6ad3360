"""The embedded SQLite event store (``SQLiteEventStore``, in ``store``), one module per port."""

from __future__ import annotations

from citadel.store.sqlite.store import SQLiteEventStore

__all__ = ["SQLiteEventStore"]
