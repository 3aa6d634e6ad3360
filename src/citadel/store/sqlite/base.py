"""What every part of the SQLite event store shares: its attributes, the reader connection, opening sealed
payloads, and waking waiters when the head moves.

Reads use the store's reader connection on the event loop's thread, which WAL lets proceed while the writer
commits. Sealed payloads are opened here, with the keys read from the file as they are first needed; when
another process forgets keys, every opened key is dropped. Each port is a class of its own module built on
``SQLiteBase`` (``event_log``, ``idempotency``, ``snapshots``, ``views``, ``checkpoints``, ``dead_letters``,
``keys``, ``migrations``), and ``SQLiteEventStore`` (``store``) is all of them.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from citadel.errors import StoreError
from citadel.messages import EventRegistry
from citadel.store.expiry import Pruner
from citadel.store.records import RecordedEvent
from citadel.store.sealing import Sealer
from citadel.store.sqlite.group_commit import GroupCommitWriter
from citadel.store.sqlite.key_table import read_keys
from citadel.store.sqlite.view_tables import SQLiteViewReader, SQLiteViewWriter
from citadel.store.targets import ProjectionTarget
from citadel.views import View

__all__ = ["SQLiteBase"]


class SQLiteBase:
    """The state of ``SQLiteEventStore`` that its ports share. The attributes below are set by
    ``SQLiteEventStore.__init__`` and ``open``."""

    registry: EventRegistry
    path: Any
    poll_interval: float
    idempotency_ttl: float
    _busy_ms: int
    _sealer: Sealer | None
    _reader: sqlite3.Connection | None
    _head: int
    _changed: asyncio.Event
    _forgotten_generation: int
    _forgotten_checked: float
    _view_readers: dict[int, SQLiteViewReader]
    _writer: GroupCommitWriter
    _inline: list[ProjectionTarget]
    _inline_by_type: dict[str, list[ProjectionTarget]]
    _view_writers: dict[int, SQLiteViewWriter]
    _pruner: Pruner

    @property
    def _db(self) -> sqlite3.Connection:
        if self._reader is None:
            raise StoreError("the event store is not open; call `await store.open()` first")
        return self._reader

    def _open(self, records: list[RecordedEvent], db: sqlite3.Connection | None = None) -> list[RecordedEvent]:
        """Open sealed payloads (reading the keys not known yet); a no-op without encryption."""
        sealer = self._sealer
        if sealer is None or not records:
            return records
        connection = db if db is not None else self._db
        self._notice_forgotten(connection)
        missing = sealer.missing(sealer.sealed_keys(r.data for r in records))
        if missing:
            sealer.learn(read_keys(connection, missing))
        sealer.open_records(records)
        return records

    def _notice_forgotten(self, db: sqlite3.Connection) -> None:
        """Drop every opened key when another process has forgotten keys (checked at most every 0.2 s)."""
        if self._sealer is None:
            return
        now = time.monotonic()
        if now - self._forgotten_checked < 0.2:
            return
        self._forgotten_checked = now
        generation = db.execute("SELECT value FROM citadel_meta WHERE name = 'forgotten_keys'").fetchone()[0]
        if generation != self._forgotten_generation:
            if self._forgotten_generation >= 0:
                self._sealer.keyring.clear()
            self._forgotten_generation = generation

    def _on_commit(self, head: int) -> None:
        if head > self._head:
            self._head = head
            self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _inline_for(self, type_name: str) -> Sequence[ProjectionTarget]:
        return self._inline_by_type.get(type_name, ())

    def _writer_for(self, db: sqlite3.Connection, view: View[Any]) -> SQLiteViewWriter:
        writer = self._view_writers.get(id(view))
        if writer is None:
            writer = self._view_writers[id(view)] = SQLiteViewWriter(view, db)
        return writer
