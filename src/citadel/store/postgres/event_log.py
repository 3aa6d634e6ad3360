"""The PostgreSQL store's log (``EventLog``): commits through the group-commit writer (``writer``), reads of
streams and of the log, subscriptions, and the head position.

**Why a subscriber can never skip an event.** Positions come from transaction ids, not from a sequence:
every event written by transaction T gets ``position = (xid(T) << 20) + i``, with ``xid(T)`` the full
(64-bit) id of T, taken before its first insert. A reader selects, in one statement with one snapshot S, only
events with ``position < xmin(S) << 20``, that is only events of transactions whose id is below ``xmin(S)``,
the oldest transaction still running when S was taken. Every such transaction had finished before S, so S
sees all of their events and none of them can ever add another. Every event committed afterwards belongs to a
transaction that was running at S or started after it; both have ids of at least ``xmin(S)``, so its position
is above everything the reader returned. A subscriber that resumes after the last position it read therefore
sees every event exactly once, in position order, while writers run concurrently: they lock only the rows they
insert, and never a table. Positions are ordered but not dense. The price is that a writing transaction that
stays open holds back what readers may see (not what writers may write) until it ends.

Live subscribers wake on ``LISTEN``/``NOTIFY`` (one listening connection, re-established after the server
restarts) and poll as the fallback when a notification is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection

from citadel.store.appending import AppendsThroughCommit
from citadel.store.encoding import encode_appends, forgotten_keys
from citadel.store.postgres.base import PostgresBase
from citadel.store.postgres.batch import INDEX_BITS, PgCommit
from citadel.store.records import Commit, CommitResult, RecordedEvent
from citadel.store.subscription import follow
from citadel.store.targets import ProjectionTarget
from citadel.tracing import current_link

__all__ = ["HEAD", "READ_ALL", "REPLAY", "PostgresEventLog"]

_COLUMNS = (
    "position, stream_id, version, event_id, type, schema_version, data, recorded_at, correlation_id, causation_id, "
    "actor, traceparent"
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


class PostgresEventLog(AppendsThroughCommit, PostgresBase):
    """The log of ``PostgresEventStore``."""

    # -- writing ---------------------------------------------------------------------------------------

    async def commit(self, commit: Commit) -> CommitResult:
        """Write a commit atomically, batched with concurrent ones (see ``EventStore.commit``)."""
        sealer = self._sealer
        appends = encode_appends(commit, self.registry, keyed=sealer is not None)
        forget = forgotten_keys(commit, encrypting=sealer is not None)
        future: asyncio.Future[CommitResult] = asyncio.get_running_loop().create_future()
        job = PgCommit(appends, commit.metadata, commit.idempotency, commit.snapshots, future, forget, current_link())
        self.writer.submit(job)
        result = await future
        if forget and sealer is not None:
            sealer.keyring.mark_forgotten(forget)
        return result

    def add_inline_projection(self, projection: ProjectionTarget) -> None:
        """Run ``projection`` in every commit that appends an event it handles."""
        for info in self.registry:
            if projection.handles(info.name):
                self._inline_by_type.setdefault(info.name, []).append(projection)

    def subscribe(self, from_position: int = 1) -> AsyncIterator[RecordedEvent]:
        """Yield every event from ``from_position`` on, then new ones as they commit."""
        return follow(self, from_position)

    # -- reading ---------------------------------------------------------------------------------------

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
        of a transaction that may still commit (see ``citadel.store.postgres.event_log``)."""
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
        """Return the last position a subscriber may read now (see ``citadel.store.postgres.event_log``)."""
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
        """Return the highest committed position, readable or not yet (see ``citadel.store.postgres.event_log``)."""
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
