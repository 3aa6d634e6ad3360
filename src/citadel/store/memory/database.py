"""What a memory store keeps: the tables of one database, held in plain dicts and lists.

A ``MemoryDatabase`` plays the part of a database file: two ``MemoryEventStore`` objects given the same one see
each other's writes, as two processes on one SQLite file do (and a store closed and opened again finds its data).
Payloads are kept as a SQLite or PostgreSQL store keeps them (sealed when the store encrypts); the rows are
plain tuples, so nothing here holds a decoded event or a reference to a caller's object.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from citadel.store.memory.view_tables import MemoryTable

__all__ = ["EventRow", "MemoryDatabase"]

EventRow = tuple[int, str, int, str, str, int, bytes, float, str | None, str | None, str | None, int, str | None]
"""``(position, stream_id, version, event_id, type, schema_version, data, recorded_at, correlation_id,
causation_id, actor, causation_position)``; a position is its row's index in the log plus one."""


class MemoryDatabase:
    """The tables of one in-memory database, shared by the stores opened on it."""

    def __init__(self) -> None:
        self.events: list[EventRow] = []
        self.streams: dict[str, list[int]] = {}
        """Each stream's positions, in version order."""
        self.idempotency: dict[str, tuple[str, bytes, int, float]] = {}
        """key -> (request hash, result, position, recorded at)."""
        self.snapshots: dict[str, tuple[int, int, bytes]] = {}
        """stream id -> (version, state version, data)."""
        self.checkpoints: dict[str, int] = {}
        self.leases: dict[str, tuple[str, float]] = {}
        """name -> (owner, expires at)."""
        self.dead_letters: dict[int, tuple[Any, ...]] = {}
        """id -> the row of ``citadel.store.dead_letters.LETTER_COLUMNS``."""
        self.next_letter = 1
        self.keys: dict[str, tuple[str, bytes]] = {}
        """data key id -> (master key id, wrapped key); ``("", b"")`` is a forgotten key's tombstone."""
        self.forgotten_generation = 0
        """Counts commits that forgot keys, so that every store on this database drops the keys it opened."""
        self.tables: dict[str, MemoryTable] = {}
        self.module_versions: dict[str, int] = {}
        self._modules: sqlite3.Connection | None = None
        self.listeners: set[Callable[[int], None]] = set()
        """Called with the new head after every commit that appended events (each open store's wake-up)."""

    @property
    def head(self) -> int:
        """The position of the last event (0: none)."""
        return len(self.events)

    def modules(self) -> sqlite3.Connection:
        """The in-memory SQLite database that modules' own migration steps run in (they are SQL)."""
        if self._modules is None:
            self._modules = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        return self._modules

    def table(self, name: str, unique: tuple[str, ...]) -> MemoryTable:
        """The view table ``name``, created (empty) on first use."""
        found = self.tables.get(name)
        if found is None:
            found = self.tables[name] = MemoryTable(unique)
        return found

    def notify(self) -> None:
        """Tell every store on this database that the head moved."""
        head = self.head
        for listener in list(self.listeners):
            listener(head)

    def at_rest(self) -> bytes:
        """Every byte the database holds, concatenated: what a dump of a database file would show."""
        parts: list[bytes] = []
        for row in self.events:
            parts.extend(_bytes(value) for value in row)
        for request_hash, result, _, _ in self.idempotency.values():
            parts += [request_hash.encode(), result]
        parts.extend(data for _, _, data in self.snapshots.values())
        for letter in self.dead_letters.values():
            parts.extend(_bytes(value) for value in letter)
        for key_id, (master_id, wrapped) in self.keys.items():
            parts += [key_id.encode(), master_id.encode(), wrapped]
        for name, table in self.tables.items():
            parts.append(name.encode())
            for key, (raw, _) in table.docs.items():
                parts += [key.encode(), raw]
        return b"\x00".join(parts)


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return b"" if value is None else str(value).encode()
