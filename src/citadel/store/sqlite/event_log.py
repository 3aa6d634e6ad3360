"""The SQLite store's log (``EventLog``): commits through the group-commit writer, reads of streams and of the
log, subscriptions, and the head position.

Positions are assigned by the writer under SQLite's write lock, so they become visible strictly in order and a
subscriber can never skip one. Commits of this process advance the head at once; other processes' are noticed
by polling (``wait_for_events``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Collection

from citadel.store.appending import AppendsThroughCommit
from citadel.store.encoding import encode_appends, forgotten_keys
from citadel.store.records import Commit, CommitResult, RecordedEvent
from citadel.store.sqlite.base import SQLiteBase
from citadel.store.sqlite.jobs import CommitJob, select_events
from citadel.store.subscription import follow
from citadel.store.targets import ProjectionTarget

__all__ = ["SQLiteEventLog"]

log = logging.getLogger("citadel.store")

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


class SQLiteEventLog(AppendsThroughCommit, SQLiteBase):
    """The log of ``SQLiteEventStore``."""

    # -- writing ---------------------------------------------------------------------------------------

    async def commit(self, commit: Commit) -> CommitResult:
        """Write a commit atomically, batched with concurrent ones (see ``EventStore.commit``)."""
        sealer = self._sealer
        appends = encode_appends(commit, self.registry, keyed=sealer is not None)
        forget = forgotten_keys(commit, encrypting=sealer is not None) if commit.forget else ()
        job = CommitJob(
            appends,
            commit.metadata,
            commit.idempotency,
            commit.snapshots,
            self._inline_for,
            self.registry,
            sealer,
            forget,
            self.idempotency_ttl,
        )
        result: CommitResult = await self._writer.submit(job)
        if forget and sealer is not None:
            sealer.keyring.mark_forgotten(forget)
            # The log's older frames still hold what the commit overwrote (the subject's views): empty it.
            if not await self._writer.scrub(self._busy_ms / 1000):
                log.warning("the write-ahead log still holds forgotten data: emptying it is tried again")
        return result

    def add_inline_projection(self, projection: ProjectionTarget) -> None:
        """Run ``projection`` in every commit that appends an event it handles."""
        self._inline.append(projection)
        for info in self.registry:
            if projection.handles(info.name):
                self._inline_by_type.setdefault(info.name, []).append(projection)

    def subscribe(self, from_position: int = 1) -> AsyncIterator[RecordedEvent]:
        """Yield every event from ``from_position`` on, then new ones as they commit."""
        return follow(self, from_position)

    # -- reading ---------------------------------------------------------------------------------------

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
