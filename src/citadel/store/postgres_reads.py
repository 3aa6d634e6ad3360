"""The reading side of the PostgreSQL event store: the log, the head position, records and views.

Each read borrows a pooled connection, outside any transaction. Every query that pages through the log stops
below the oldest transaction still running (``_SAFE``), so it never returns an event after one that may still
commit; ``citadel.store.postgres`` argues why a subscriber can therefore never skip an event. Sealed payloads
are opened here, with the keys read as they are first needed. Waiting for the head to move
(``wait_for_events``) is here too: commits of this process and the notifications of every node's
(``postgres_listener``) wake it, and it polls as the fallback. ``PostgresProjections``
(``postgres_projections``) builds on this class, and ``PostgresEventStore`` (``citadel.store.postgres``) on that.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from citadel.errors import StoreError
from citadel.messages import EventRegistry
from citadel.store.base import DeadLetter, IdempotencyRecord, RecordedEvent, Snapshot
from citadel.store.postgres_batch import INDEX_BITS
from citadel.store.postgres_keys import master_key_ids, read_keys
from citadel.store.postgres_records import dead_letters, idempotency_record, load_snapshot
from citadel.store.postgres_views import PostgresViewReader
from citadel.store.postgres_writer import BROKEN
from citadel.store.sealing import Sealer, request_hash
from citadel.views import View

__all__ = ["HEAD", "READ_ALL", "REPLAY", "PostgresReads"]

_COLUMNS = (
    "position, stream_id, version, event_id, type, schema_version, data, recorded_at, correlation_id, causation_id, "
    "actor"
)
_SAFE = f"(pg_snapshot_xmin(pg_current_snapshot())::text::bigint << {INDEX_BITS})"
READ_ALL = (
    f"SELECT {_COLUMNS} FROM citadel.events WHERE position >= $1 AND position < {_SAFE} ORDER BY position LIMIT $2"  # nosec B608  # validated identifiers, bound values
)
_E_COLUMNS = ", ".join(f"e.{column.strip()}" for column in _COLUMNS.split(","))
# The page's end (the position of its ``limit``-th readable event), and the page's events of some types: every
# row carries the end, and a page without such events is one row of the end and NULLs (none: an empty page).
_READ_ALL_OF = (
    "WITH page AS (SELECT max(position) AS upto FROM (SELECT position FROM citadel.events "  # nosec B608  # validated identifiers, bound values
    f"WHERE position >= $1 AND position < {_SAFE} ORDER BY position LIMIT $2) AS window_) "
    f"SELECT page.upto, {_E_COLUMNS} FROM page LEFT JOIN citadel.events AS e "
    "ON e.position >= $1 AND e.position <= page.upto AND e.type = ANY($3::text[]) ORDER BY e.position"
)
HEAD = f"SELECT coalesce(max(position), 0) FROM citadel.events WHERE position < {_SAFE}"  # nosec B608  # validated identifiers, bound values
_CHAIN_END = """
WITH RECURSIVE up (tail, cause) AS (
    SELECT position, causation_position FROM citadel.events WHERE position > $2 AND causation_position IS NOT NULL
    UNION ALL
    SELECT up.tail, e.causation_position FROM up JOIN citadel.events AS e ON e.position = up.cause
    WHERE up.cause > $1 AND e.causation_position IS NOT NULL
)
SELECT coalesce(max(tail), 0) FROM up WHERE cause <= $1
"""
"""Each reaction's event after ``$2``, walked up its causes (by primary key) while they are reactions' events after
``$1``: those whose walk reaches ``$1`` or before are the chains' events."""
_COUNT_AFTER = f"SELECT count(*) FROM citadel.events WHERE position > $1 AND position < {_SAFE}"  # nosec B608  # constants
_READ_LAST = (
    f"SELECT * FROM (SELECT {_COLUMNS} FROM citadel.events WHERE position < {_SAFE} "  # nosec B608  # constants
    "ORDER BY position DESC LIMIT $1) AS last_ ORDER BY position"
)
REPLAY = f"SELECT {_COLUMNS} FROM citadel.events WHERE position > $1 ORDER BY position LIMIT 1000"  # nosec B608  # constants


class PostgresReads:
    """Reads of ``PostgresEventStore``: events, the head position, idempotency records, snapshots, dead letters,
    checkpoints and views. The attributes below are set by ``PostgresEventStore.__init__`` and ``open``."""

    registry: EventRegistry
    poll_interval: float
    idempotency_ttl: float
    _sealer: Sealer | None
    _pool: Any
    _head: int
    _changed: asyncio.Event
    _view_readers: dict[int, PostgresViewReader]

    @property
    def pool(self) -> Any:
        """The connection pool."""
        if self._pool is None:
            raise StoreError("the event store is not open; call `await store.open()` first")
        return self._pool

    async def _open(self, records: list[RecordedEvent]) -> list[RecordedEvent]:
        """Open sealed payloads (reading the keys not known yet); a no-op without encryption."""
        sealer = self._sealer
        if sealer is None or not records:
            return records
        missing = sealer.missing(sealer.sealed_keys(r.data for r in records))
        if missing:
            async with self.pool.acquire() as connection:
                sealer.learn(await read_keys(connection, missing))
        sealer.open_records(records)
        return records

    def _on_commit(self, position: int) -> None:
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _records(self, rows: Sequence[Any]) -> list[RecordedEvent]:
        registry = self.registry
        return [RecordedEvent(*row, registry=registry) for row in rows]  # type: ignore[misc]

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        return list(await self._read(lambda connection: connection.fetch(sql, *args)))

    async def _read(self, work: Callable[[Any], Any]) -> Any:
        """Run ``work(connection)`` on a pooled connection, translating driver errors."""
        try:
            async with self.pool.acquire() as connection:
                return await work(connection)
        except BROKEN as exc:
            raise StoreError(f"PostgreSQL read failed: {exc}") from exc

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        """Return a stream's events from ``from_version`` on, in version order."""
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM citadel.events WHERE stream_id = $1 AND version >= $2 ORDER BY version",  # nosec B608  # validated identifiers, bound values
            stream_id,
            from_version,
        )
        return await self._open(self._records(rows))

    async def read_all(self, from_position: int = 1, limit: int = 1000) -> list[RecordedEvent]:
        """Return up to ``limit`` events at ``from_position`` or later, in position order, never past an event
        of a transaction that may still commit (see ``citadel.store.postgres``)."""
        return await self._open(self._records(await self._fetch(READ_ALL, from_position, limit)))

    async def read_all_of(
        self, types: Collection[str], from_position: int = 1, limit: int = 1000
    ) -> tuple[list[RecordedEvent], int]:
        """Of the next ``limit`` events at ``from_position`` or later, return those of ``types``, and the position
        read up to (the page as ``read_all`` reads it, filtered in SQL: the others are neither sent nor
        decrypted)."""
        rows = await self._fetch(_READ_ALL_OF, from_position, limit, list(types))
        upto = rows[0][0] if rows else None
        if upto is None:
            return [], from_position - 1
        registry = self.registry
        found = [RecordedEvent(*row[1:], registry=registry) for row in rows if row[1] is not None]  # type: ignore[misc]
        return await self._open(found), int(upto)

    async def stream_version(self, stream_id: str) -> int:
        """Return the stream's version (0 when it has no events)."""
        rows = await self._fetch("SELECT coalesce(max(version), 0) FROM citadel.events WHERE stream_id = $1", stream_id)
        return int(rows[0][0])

    async def head_position(self) -> int:
        """Return the last position a subscriber may read now (see ``citadel.store.postgres``)."""
        rows = await self._fetch(HEAD)
        head = int(rows[0][0])
        self._head = max(self._head, head)
        return head

    async def count_after(self, position: int) -> int:
        """Return how many events after ``position`` a subscriber may read now: those below the bound of
        ``head_position``, so a consumer at the head has none left, even while an older transaction is in flight
        (positions are not dense here, so they are counted by the primary key, never subtracted)."""
        rows = await self._fetch(_COUNT_AFTER, position)
        return int(rows[0][0])

    async def read_last(self, limit: int) -> list[RecordedEvent]:
        """Return the last ``limit`` events a subscriber may read now, in position order."""
        if limit <= 0:
            return []
        return await self._open(self._records(await self._fetch(_READ_LAST, limit)))

    async def last_position(self) -> int:
        """Return the highest committed position, readable or not yet (see ``citadel.store.postgres``)."""
        rows = await self._fetch("SELECT coalesce(max(position), 0) FROM citadel.events")
        return int(rows[0][0])

    async def chain_end(self, start: int, after: int) -> int:
        """Return the highest committed position after ``after`` of an event of a reaction chain that starts at or
        before ``start``, 0 when none is (see ``EventStore.chain_end``); readable by subscribers yet or not."""
        rows = await self._fetch(_CHAIN_END, start, after)
        return int(rows[0][0])

    async def wait_for_events(self, after: int, timeout: float) -> int:
        """Wait until a readable event after ``after`` exists (or ``timeout``); return the head."""
        head = await self.head_position()
        if head > after:
            return head
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(timeout, self.poll_interval)):
                await changed.wait()
        return await self.head_position()

    def request_hash(self, material: bytes) -> str:
        """Return what an idempotency record stores to recognise a command (see ``EventStore.request_hash``)."""
        return request_hash(self._sealer, material)

    async def idempotency_record(self, key: str) -> IdempotencyRecord | None:
        """Return the unexpired outcome for an idempotency key (``forgotten`` when its key is gone), or None."""
        since = time.time() - self.idempotency_ttl
        record: IdempotencyRecord | None = await self._read(
            lambda connection: idempotency_record(connection, self._sealer, key, since)
        )
        return record

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """Return the stream's snapshot (None when there is none, or its key is gone)."""
        snapshot: Snapshot | None = await self._read(lambda c: load_snapshot(c, self._sealer, stream_id))
        return snapshot

    async def dead_letters(self, consumer: str | None = None) -> list[DeadLetter]:
        """Return parked events, oldest first."""
        letters: list[DeadLetter] = await self._read(lambda c: dead_letters(c, self._sealer, consumer))
        return letters

    async def count_dead_letters(self) -> int:
        """Return how many events are parked."""
        rows = await self._fetch("SELECT count(*) FROM citadel.dead_letters")
        return int(rows[0][0])

    async def checkpoint(self, name: str) -> int | None:
        """Return consumer ``name``'s last processed position, or None."""
        rows = await self._fetch("SELECT position FROM citadel.checkpoints WHERE name = $1", name)
        return int(rows[0][0]) if rows else None

    async def master_key_ids(self) -> set[str]:
        """The ids of the master keys that wrap the stored data keys."""
        async with self.pool.acquire() as connection:
            return await master_key_ids(connection)

    def view_reader(self, view: View[Any]) -> PostgresViewReader:
        """Return read access to a view's committed documents."""
        reader = self._view_readers.get(id(view))
        if reader is None:
            reader = self._view_readers[id(view)] = PostgresViewReader(view, self.pool)
        return reader
