"""The memory store's log (``EventLog``): commits, reads of streams and of the log, subscriptions, the head.

Positions are dense (an event's position is its index in the log plus one) and a commit is written whole
before the event loop turns again, so a subscriber can never skip an event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Collection

from citadel.errors import ConcurrencyError
from citadel.store.appending import AppendsThroughCommit
from citadel.store.encoding import EncodedAppend, encode_appends, forgotten_keys
from citadel.store.handlers import run_handler, traced_apply
from citadel.store.memory.base import MemoryBase
from citadel.store.memory.commits import store_extras, store_keys
from citadel.store.memory.database import EventRow
from citadel.store.memory.transaction import MemoryTransaction
from citadel.store.records import AppendResult, Commit, CommitResult, Metadata, RecordedEvent
from citadel.store.subscription import follow
from citadel.store.targets import ProjectionTarget
from citadel.tracing import batch_span, current_link, enabled

__all__ = ["MemoryEventLog"]


class MemoryEventLog(AppendsThroughCommit, MemoryBase):
    """The log of ``MemoryEventStore``."""

    async def commit(self, commit: Commit) -> CommitResult:
        """Write a commit atomically (see ``EventStore.commit``)."""
        sealer = self._sealer
        appends = encode_appends(commit, self.registry, keyed=sealer is not None)
        forget = forgotten_keys(commit, encrypting=sealer is not None) if commit.forget else []
        self._notice_forgotten()
        before = self._db.head

        def write(tx: MemoryTransaction) -> CommitResult:
            result_key = store_keys(tx, sealer, appends, commit.idempotency)
            result = CommitResult(tuple(self._append(tx, append, commit.metadata) for append in appends))
            store_extras(tx, sealer, commit, result.position, result_key, forget, self.idempotency_ttl)
            return result

        if enabled():  # a batch of one, in the caller's turn: linked to its command as the writers' batches are
            with batch_span(1, [link for link in [current_link()] if link is not None], "memory"):
                result = self._write(write)
        else:
            result = self._write(write)
        if forget and sealer is not None:
            sealer.keyring.mark_forgotten(forget)
        if self.database.head > before:
            self.database.notify()
        return result

    def _append(self, tx: MemoryTransaction, append: EncodedAppend, meta: Metadata) -> AppendResult:
        db = tx.db
        positions = db.streams.get(append.stream_id)
        current = 0 if positions is None else len(positions)
        if append.expected_version is not None and append.expected_version != current:
            raise ConcurrencyError(append.stream_id, append.expected_version, current)
        if not append.encoded:
            return AppendResult(append.stream_id, current, 0, 0)
        if positions is None:
            positions = []
            tx.set(db.streams, append.stream_id, positions)
        first = db.head + 1
        for i, ((event_id, name, schema_version, data), event) in enumerate(
            zip(append.encoded, append.events, strict=True)
        ):
            version = current + 1 + i
            if self._sealer is not None:
                data = self._sealer.seal_event(append.keys[i], data, append.stream_id, version, name)
            row: EventRow = (
                db.head + 1,
                append.stream_id,
                version,
                event_id,
                name,
                schema_version,
                data,
                tx.now,
                meta.correlation_id,
                meta.causation_id,
                meta.actor,
                meta.causation_position,
                meta.traceparent,
            )
            db.events.append(row)
            positions.append(row[0])
            tx.undo.append(_pop_from(db.events, positions))
            for projection in self._inline_for(name):
                record = RecordedEvent(*row[:11], registry=self.registry, event=event)
                if enabled():
                    traced_apply(projection, record, tx)
                else:
                    run_handler(projection.apply(record, tx))
        return AppendResult(append.stream_id, current + len(append.encoded), first, db.head)

    def add_inline_projection(self, projection: ProjectionTarget) -> None:
        """Run ``projection`` in every commit that appends an event it handles."""
        for info in self.registry:
            if projection.handles(info.name):
                self._inline_by_type.setdefault(info.name, []).append(projection)

    def subscribe(self, from_position: int = 1) -> AsyncIterator[RecordedEvent]:
        """Yield every event from ``from_position`` on, then new ones as they commit."""
        return follow(self, from_position)

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        """Return a stream's events from ``from_version`` on, in version order."""
        db = self._db
        positions = db.streams.get(stream_id, [])
        return self._records(db.events[p - 1] for p in positions[max(from_version, 1) - 1 :])

    async def read_all(self, from_position: int = 1, limit: int = 1000) -> list[RecordedEvent]:
        """Return up to ``limit`` events at ``from_position`` or later, in position order."""
        start = max(from_position, 1) - 1
        return self._records(self._db.events[start : start + max(limit, 0)])

    async def read_all_of(
        self, types: Collection[str], from_position: int = 1, limit: int = 1000
    ) -> tuple[list[RecordedEvent], int]:
        """Of the next ``limit`` events at ``from_position`` or later, return those of ``types``, and the position
        read up to."""
        start = max(from_position, 1) - 1
        page = self._db.events[start : start + max(limit, 0)]
        if not page:
            return [], from_position - 1
        wanted = set(types)
        return self._records(row for row in page if row[4] in wanted), page[-1][0]

    async def stream_version(self, stream_id: str) -> int:
        """Return the stream's version (0 when it has no events)."""
        return len(self._db.streams.get(stream_id, ()))

    async def head_position(self) -> int:
        """Return the position of the last event."""
        head = self._db.head
        self._on_commit(head)
        return head

    async def count_after(self, position: int) -> int:
        """Return how many events come after ``position``."""
        return max(0, self._db.head - max(position, 0))

    async def read_last(self, limit: int) -> list[RecordedEvent]:
        """Return the last ``limit`` events, in position order."""
        if limit <= 0:
            return []
        return self._records(self._db.events[-limit:])

    async def last_position(self) -> int:
        """Return the position of the last event (readable at once: the same as the head)."""
        return await self.head_position()

    async def chain_end(self, start: int, after: int) -> int:
        """Return the highest position after ``after`` of an event of a reaction chain that starts at or before
        ``start``, 0 when none is (see ``EventStore.chain_end``)."""
        events = self._db.events
        end = 0
        for row in events[max(after, 0) :]:
            cause = row[11]
            while cause > start and events[cause - 1][11]:
                cause = events[cause - 1][11]
            if cause and cause <= start:
                end = row[0]
        return end

    async def wait_for_events(self, after: int, timeout: float) -> int:
        """Wait until the head passes ``after`` (or ``timeout``); return the head."""
        head = await self.head_position()
        if head > after:
            return head
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await changed.wait()
        return self.database.head if self._opened else self._head


def _pop_from(events: list[EventRow], positions: list[int]) -> Callable[[], None]:
    def undo() -> None:
        events.pop()
        positions.pop()

    return undo
