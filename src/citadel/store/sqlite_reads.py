"""The reading side of the SQLite event store: the log, the head position, records and views.

Reads use the store's reader connection on the event loop's thread, which WAL lets proceed while the writer
commits. Sealed payloads are opened here, with the keys read from the file as they are first needed; when
another process forgets keys, every opened key is dropped. The head position and waiting for it to move
(``wait_for_events``) are here too: commits of this process advance it, other processes' are noticed by polling.
``SQLiteProjections`` (``sqlite_projections``) builds on this class, and ``SQLiteEventStore``
(``citadel.store.sqlite``) on that.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Collection
from typing import Any

from citadel.errors import StoreError
from citadel.messages import EventRegistry
from citadel.store.base import DeadLetter, IdempotencyRecord, RecordedEvent, Snapshot
from citadel.store.sealing import Sealer, request_hash
from citadel.store.sqlite_jobs import select_events
from citadel.store.sqlite_keys import master_key_ids, read_keys
from citadel.store.sqlite_records import dead_letters, idempotency_record, load_snapshot
from citadel.store.sqlite_views import SQLiteViewReader
from citadel.views import View

__all__ = ["SQLiteReads"]

_PAGE_END = (
    "SELECT max(position) FROM (SELECT position FROM citadel_events WHERE position >= ? ORDER BY position LIMIT ?)"
)
"""The last position of the page of the log that starts at a position (NULL when there is none)."""
_CHAIN_END = """
WITH RECURSIVE up (tail, cause) AS (
    SELECT position, causation_position FROM citadel_events
    WHERE position > :after AND causation_position IS NOT NULL
    UNION ALL
    SELECT up.tail, e.causation_position FROM up JOIN citadel_events AS e ON e.position = up.cause
    WHERE up.cause > :start AND e.causation_position IS NOT NULL
)
SELECT coalesce(max(tail), 0) FROM up WHERE cause <= :start
"""
"""Each reaction's event after a position, walked up its causes (by primary key) while they are reactions' events
after ``start``: those whose walk reaches ``start`` or before are the chains' events."""


class SQLiteReads:
    """Reads of ``SQLiteEventStore``: events, the head position, idempotency records, snapshots, dead letters,
    checkpoints and views. The attributes below are set by ``SQLiteEventStore.__init__`` and ``open``."""

    registry: EventRegistry
    poll_interval: float
    idempotency_ttl: float
    _sealer: Sealer | None
    _reader: sqlite3.Connection | None
    _head: int
    _changed: asyncio.Event
    _forgotten_generation: int
    _forgotten_checked: float
    _view_readers: dict[int, SQLiteViewReader]

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

    # -- the log ---------------------------------------------------------------------------------------

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        """Return a stream's events from ``from_version`` on, in version order."""
        return self._open(
            select_events(
                self._db,
                "WHERE stream_id = ? AND version >= ? ORDER BY version",
                (stream_id, from_version),
                self.registry,
            )
        )

    async def read_all(self, from_position: int = 1, limit: int = 1000) -> list[RecordedEvent]:
        """Return up to ``limit`` events at ``from_position`` or later, in position order."""
        return self._open(
            select_events(
                self._db, "WHERE position >= ? ORDER BY position LIMIT ?", (from_position, limit), self.registry
            )
        )

    async def read_all_of(
        self, types: Collection[str], from_position: int = 1, limit: int = 1000
    ) -> tuple[list[RecordedEvent], int]:
        """Of the next ``limit`` events at ``from_position`` or later, return those of ``types``, and the position
        read up to (filtered in SQL: the others are neither read nor decrypted).

        Positions only grow with commits, so no event can appear later below the bound read here.
        """
        db = self._db
        head = self._head
        if head >= from_position:
            # Positions have no gaps (a commit takes the ones after the head) and every position up to the head
            # this process has seen is committed: the page's end needs no query.
            upper = min(head, from_position + limit - 1)
        else:  # past what this process has seen: another process may have written more
            upper = db.execute(_PAGE_END, (from_position, limit)).fetchone()[0]
            if upper is None:
                return [], from_position - 1
        wanted = tuple(types)
        if not wanted:
            return [], int(upper)
        marks = ", ".join("?" * len(wanted))
        where = f"WHERE position BETWEEN ? AND ? AND type IN ({marks}) ORDER BY position"
        return self._open(select_events(db, where, (from_position, upper, *wanted), self.registry)), int(upper)

    async def stream_version(self, stream_id: str) -> int:
        """Return the stream's version (0 when it has no events)."""
        row = self._db.execute(
            "SELECT coalesce(max(version), 0) FROM citadel_events WHERE stream_id = ?", (stream_id,)
        ).fetchone()
        return int(row[0])

    def _read_head(self) -> int:
        return int(self._db.execute("SELECT coalesce(max(position), 0) FROM citadel_events").fetchone()[0])

    async def head_position(self) -> int:
        """Return the last committed position, including commits of other processes."""
        head = self._read_head()
        if head > self._head:
            self._on_commit(head)
        return head

    async def count_after(self, position: int) -> int:
        """Return how many committed events come after ``position`` (a count over the primary key's range)."""
        return int(
            self._db.execute("SELECT count(*) FROM citadel_events WHERE position > ?", (position,)).fetchone()[0]
        )

    async def read_last(self, limit: int) -> list[RecordedEvent]:
        """Return the last ``limit`` committed events, in position order."""
        if limit <= 0:
            return []
        where = (
            "WHERE position >= coalesce((SELECT position FROM citadel_events ORDER BY position DESC LIMIT 1 "
            "OFFSET ?), 0) ORDER BY position"
        )
        return self._open(select_events(self._db, where, (limit - 1,), self.registry))

    async def last_position(self) -> int:
        """Return the highest committed position (on SQLite, readable at once: the same as the head)."""
        return await self.head_position()

    async def chain_end(self, start: int, after: int) -> int:
        """Return the highest position after ``after`` of an event of a reaction chain that starts at or before
        ``start``, 0 when none is (see ``EventStore.chain_end``)."""
        return int(self._db.execute(_CHAIN_END, {"start": start, "after": after}).fetchone()[0])

    async def wait_for_events(self, after: int, timeout: float) -> int:
        """Wait until the head passes ``after`` (or ``timeout``); return the head."""
        if self._head > after:
            return self._head
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(timeout, self.poll_interval)):
                await changed.wait()
        if self._head > after or self._reader is None:
            return self._head
        return await self.head_position()  # another process may have written

    # -- records and views -----------------------------------------------------------------------------

    def request_hash(self, material: bytes) -> str:
        """Return what an idempotency record stores to recognise a command (see ``EventStore.request_hash``)."""
        return request_hash(self._sealer, material)

    async def idempotency_record(self, key: str) -> IdempotencyRecord | None:
        """Return the unexpired outcome for an idempotency key (``forgotten`` when its key is gone), or None."""
        self._notice_forgotten(self._db)
        return idempotency_record(self._db, self._sealer, key, time.time() - self.idempotency_ttl)

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """Return the stream's snapshot (None when there is none, or its key is gone)."""
        self._notice_forgotten(self._db)
        return load_snapshot(self._db, self._sealer, stream_id)

    async def dead_letters(self, consumer: str | None = None) -> list[DeadLetter]:
        """Return parked events, oldest first."""
        self._notice_forgotten(self._db)
        return dead_letters(self._db, self._sealer, consumer)

    async def count_dead_letters(self) -> int:
        """Return how many events are parked."""
        return int(self._db.execute("SELECT count(*) FROM citadel_dead_letters").fetchone()[0])

    async def checkpoint(self, name: str) -> int | None:
        """Return consumer ``name``'s last processed position, or None when it has no checkpoint."""
        row = self._db.execute("SELECT position FROM citadel_checkpoints WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])

    async def master_key_ids(self) -> set[str]:
        """The ids of the master keys that wrap the stored data keys."""
        return master_key_ids(self._db)

    def view_reader(self, view: View[Any]) -> SQLiteViewReader:
        """Return read access to a view's committed documents."""
        reader = self._view_readers.get(id(view))
        if reader is None:
            reader = self._view_readers[id(view)] = SQLiteViewReader(view, self._db)
        return reader
