"""A memory store's write transaction: writes go straight into the database, each with its undo.

The memory store runs a transaction from start to end without giving the event loop a turn (projection
handlers may only await their views' reads, which complete at once), so nothing else sees it half done; a
failure undoes its writes in reverse order, and the database is as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping
from typing import Any, TypeVar

from citadel.store.memory.database import MemoryDatabase
from citadel.store.memory.view_tables import MemoryViewWriter, table_name
from citadel.views import View

__all__ = ["MemoryTransaction"]

K = TypeVar("K")
V = TypeVar("V")
_MISSING: Any = object()


class MemoryTransaction:
    """The writes of one transaction, and how to undo them (``ViewTransaction`` protocol for projections)."""

    def __init__(self, db: MemoryDatabase) -> None:
        self.db = db
        self.now = time.time()
        self.undo: list[Callable[[], None]] = []
        self._writers: dict[int, MemoryViewWriter] = {}

    def writer(self, view: View[Any]) -> MemoryViewWriter:
        """Return the writer of ``view`` in this transaction."""
        found = self._writers.get(id(view))
        if found is None:
            table = self.db.table(table_name(view), view.unique)
            found = self._writers[id(view)] = MemoryViewWriter(view, table, self.undo.append)
        return found

    def set(self, mapping: MutableMapping[K, V], key: K, value: V) -> None:
        """Set ``mapping[key]``, to be restored if the transaction fails."""
        old = mapping.get(key, _MISSING)
        mapping[key] = value
        self.undo.append(lambda: _restore(mapping, key, old))

    def delete(self, mapping: MutableMapping[K, V], key: K) -> bool:
        """Delete ``mapping[key]`` if present (to be restored if the transaction fails); return whether it was."""
        old = mapping.pop(key, _MISSING)
        if old is _MISSING:
            return False
        self.undo.append(lambda: _restore(mapping, key, old))
        return True

    def rollback(self) -> None:
        """Undo every write, newest first."""
        while self.undo:
            self.undo.pop()()


def _restore(mapping: MutableMapping[Any, Any], key: Any, old: Any) -> None:
    if old is _MISSING:
        mapping.pop(key, None)
    else:
        mapping[key] = old
