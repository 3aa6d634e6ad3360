"""The in-memory event store (``MemoryEventStore``, in ``store``; ``memory://`` URLs), one module per port."""

from __future__ import annotations

from citadel.store.memory.database import MemoryDatabase
from citadel.store.memory.store import MemoryEventStore

__all__ = ["MemoryDatabase", "MemoryEventStore"]
