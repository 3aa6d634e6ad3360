"""The log port: streams and the global log, appends and commits, subscriptions, the head, and idempotency.

Idempotency records belong here rather than in a port of their own: a command's record is written by
``commit`` in the same transaction as its events, and a taken key refuses the whole commit
(``IdempotencyConflict``), so only the backend that writes the log can keep them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from typing import TYPE_CHECKING, Protocol

from citadel.store.ports.lifecycle import Lifecycle

if TYPE_CHECKING:
    from citadel.messages import Event, EventRegistry
    from citadel.store.records import AppendResult, Commit, CommitResult, IdempotencyRecord, Metadata, RecordedEvent
    from citadel.store.targets import ProjectionTarget

__all__ = ["EventLog"]


class EventLog(Lifecycle, Protocol):
    """The log of every stream. All methods but ``subscribe`` and ``request_hash`` are coroutines.

    Reads return ``RecordedEvent`` objects in version (stream) or position (log) order. Positions grow with
    every commit but need not be dense (PostgreSQL's are not), so lag is ``count_after``, never a difference.
    """

    registry: EventRegistry

    async def append(
        self,
        stream_id: str,
        events: Sequence[Event],
        expected_version: int | None = None,
        metadata: Metadata | None = None,
    ) -> AppendResult:
        """Append events to one stream.

        Raises:
            ConcurrencyError: ``expected_version`` is not the stream's version.
        """

    async def commit(self, commit: Commit) -> CommitResult:
        """Write a commit atomically (every append, its inline projections, idempotency, snapshots).

        Raises:
            ConcurrencyError: one of the appends expected another version; nothing is written.
            IdempotencyConflict: the commit's idempotency key is already stored (with any payload).
        """

    def add_inline_projection(self, projection: ProjectionTarget) -> None:
        """Run ``projection`` inside every commit that appends an event it handles (call before ``open``)."""

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        """Return the stream's events from ``from_version`` on, in version order ([] if none)."""

    async def read_all(self, from_position: int = 1, limit: int = 1000) -> list[RecordedEvent]:
        """Return up to ``limit`` events of the log at ``from_position`` or later, in position order."""

    async def read_all_of(
        self, types: Collection[str], from_position: int = 1, limit: int = 1000
    ) -> tuple[list[RecordedEvent], int]:
        """Of the next ``limit`` events at ``from_position`` or later, return those of ``types`` (stored names),
        and the position read up to (``from_position - 1`` when there was nothing to read).

        The same page as ``read_all``, but the events of other types are neither returned nor decrypted: a
        consumer that handles a few types does not pay for the whole log.
        """

    def subscribe(self, from_position: int = 1) -> AsyncIterator[RecordedEvent]:
        """Yield every event from ``from_position`` on: first those stored, then new ones as they commit."""

    async def stream_version(self, stream_id: str) -> int:
        """Return the stream's current version (``NO_STREAM`` when it has no events)."""

    async def head_position(self) -> int:
        """Return the position of the last committed event (0 for an empty store)."""

    async def count_after(self, position: int) -> int:
        """Return how many events after ``position`` subscribers may read now (up to ``head_position``)."""

    async def read_last(self, limit: int) -> list[RecordedEvent]:
        """Return the last ``limit`` events subscribers may read now, in position order."""

    async def last_position(self) -> int:
        """Return the highest position committed so far, which subscribers may not be able to read yet
        (PostgreSQL: while an older transaction is still in flight)."""

    async def chain_end(self, start: int, after: int) -> int:
        """Return the highest committed position after ``after`` of an event written by a reaction chain that starts
        at or before ``start`` (its ``causation_position`` is one, or an event of the chain), 0 when none is."""

    async def wait_for_events(self, after: int, timeout: float) -> int:
        """Wait until an event after position ``after`` is committed or ``timeout`` passes; return the head."""

    def request_hash(self, material: bytes) -> str:
        """Return what an idempotency record stores to recognise a command (``material``: its name and payload):
        an HMAC-SHA256 under the store's own key when it encrypts, so a guessed payload cannot be confirmed."""

    async def idempotency_record(self, key: str) -> IdempotencyRecord | None:
        """Return the stored outcome of the command dispatched with ``key``, or None (also once it expired)."""

    async def prune_idempotency(self) -> int:
        """Delete expired idempotency records, a bounded number per transaction; return how many."""
