"""The event store port: what every backend provides, and the records it stores.

A stream is the ordered history of one entity (``order-42``); versions count its events from 1. The log is
the ordered history of every stream together; a global position counts it from 1. An append names the
version it expects the stream to be at (``NO_STREAM`` for a new stream, ``None`` for any) and fails with
``ConcurrencyError`` when the stream has moved on.

A ``Commit`` is the unit a backend writes atomically: appends to one or more streams, the inline projections
they trigger, the command's idempotency record and snapshots.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

import msgspec

from citadel.errors import PayloadForgotten
from citadel.store.targets import ProjectionTarget, ViewTransaction

if TYPE_CHECKING:
    from citadel.messages import Event, EventRegistry
    from citadel.security.encryption import MasterKeys
    from citadel.views import View, ViewReader

__all__ = [
    "NO_STREAM",
    "AppendResult",
    "Commit",
    "CommitResult",
    "DeadLetter",
    "EventStore",
    "IdempotencyRecord",
    "Lease",
    "Metadata",
    "ProjectionTarget",
    "RecordedEvent",
    "Snapshot",
    "StreamAppend",
    "ViewTransaction",
]

NO_STREAM: Final = 0
"""Expected version of a stream that must not exist yet."""


class Metadata(msgspec.Struct, frozen=True, gc=False):
    """Who and what caused an append; stored on each of its events."""

    correlation_id: str | None = None
    causation_id: str | None = None
    actor: str | None = None
    causation_position: int = 0
    """The position of the event a process manager reacted to with this command; 0: none of this log."""


class RecordedEvent:
    """An event as stored: the domain event plus where, when and why it was recorded.

    ``event`` is decoded from ``data`` on first access, through the store's registry (so subscribers that
    skip a type never pay for decoding it).
    """

    __slots__ = (
        "_event",
        "_registry",
        "actor",
        "causation_id",
        "correlation_id",
        "data",
        "event_id",
        "forgotten",
        "key_id",
        "position",
        "recorded_at",
        "schema_version",
        "stream_id",
        "type",
        "version",
    )

    def __init__(
        self,
        position: int,
        stream_id: str,
        version: int,
        event_id: str,
        type: str,
        schema_version: int,
        data: bytes,
        recorded_at: float,
        correlation_id: str | None,
        causation_id: str | None,
        actor: str | None,
        registry: EventRegistry | None = None,
        event: Event | None = None,
    ) -> None:
        self.position = position
        self.stream_id = stream_id
        self.version = version
        self.event_id = event_id
        self.type = type
        self.schema_version = schema_version
        self.data = data
        self.recorded_at = recorded_at
        self.correlation_id = correlation_id
        self.causation_id = causation_id
        self.actor = actor
        self._registry = registry
        self._event = event
        self.forgotten = False
        self.key_id: str | None = None  # the data key its payload was sealed with (set when opened)

    @property
    def event(self) -> Event:
        """The decoded (and, for old versions, upcast) domain event.

        Raises:
            UnknownEventType: the stored type name is not registered.
            InvalidMessage: the payload does not decode.
            PayloadForgotten: the event's subject was forgotten (``forgotten`` tells without raising).
        """
        if self._event is None:
            if self.forgotten:
                raise PayloadForgotten(f"event {self.position} of {self.stream_id!r}: its subject was forgotten")
            if self._registry is None:
                raise LookupError("this record was read without an event registry; decode it yourself")
            self._event = self._registry.decode(self.type, self.schema_version, self.data)
        return self._event

    def __repr__(self) -> str:
        return (
            f"RecordedEvent(position={self.position}, stream_id={self.stream_id!r}, "
            f"version={self.version}, type={self.type!r})"
        )


class StreamAppend(msgspec.Struct, frozen=True, gc=False):
    """Events to add to one stream, at the version the stream is expected to be at (None: any)."""

    stream_id: str
    events: Sequence[Event]
    expected_version: int | None = None


class IdempotencyRecord(msgspec.Struct, frozen=True, gc=False):
    """The stored outcome of a command dispatched with an idempotency key. ``module`` ran the command (its data key
    seals the result of a command that appended nothing); ``forgotten``: read back, its result's key was deleted."""

    key: str
    request_hash: str
    result: bytes
    position: int = 0
    module: str = ""
    forgotten: bool = False


class Snapshot(msgspec.Struct, frozen=True, gc=False):
    """A stream's folded state at ``version``, encoded, tagged with the state's schema version."""

    stream_id: str
    version: int
    state_version: int
    data: bytes


class Commit(msgspec.Struct, frozen=True, gc=False):
    """Everything one command writes, atomically; ``forget`` names data subjects whose keys it deletes."""

    appends: Sequence[StreamAppend]
    metadata: Metadata = msgspec.field(default_factory=Metadata)
    idempotency: IdempotencyRecord | None = None
    snapshots: Sequence[Snapshot] = ()
    forget: Sequence[str] = ()


class AppendResult(msgspec.Struct, frozen=True, gc=False):
    """Where an append landed: the stream's new version and the global positions of its events."""

    stream_id: str
    version: int
    first_position: int
    last_position: int


class CommitResult(msgspec.Struct, frozen=True, gc=False):
    """The results of a commit's appends; ``position`` is the last position it wrote (0 if none)."""

    appends: Sequence[AppendResult] = ()

    @property
    def position(self) -> int:
        """The global position of the commit's last event, or 0 when it wrote no event."""
        position = 0
        for append in self.appends:
            if append.last_position > position:
                position = append.last_position
        return position


class DeadLetter(msgspec.Struct, frozen=True, gc=False):
    """An event a consumer gave up on after retries, with the last error."""

    id: int
    consumer: str
    position: int
    event_id: str
    error: str
    attempts: int
    recorded_at: float


class Lease(msgspec.Struct, frozen=True, gc=False):
    """The right of ``owner`` (one process) to run consumer ``name``, for ``ttl`` seconds after each renewal."""

    name: str
    owner: str
    ttl: float = 5.0


class EventStore(Protocol):
    """The backend-neutral event store. All methods are coroutines; ``open`` before use.

    Reads return ``RecordedEvent`` objects in version (stream) or position (log) order.
    """

    registry: EventRegistry

    async def open(self) -> None:
        """Connect, create or migrate the schema, start background writers."""

    async def close(self) -> None:
        """Finish pending writes and release every resource."""

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

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """Return the stream's latest snapshot, or None."""

    def add_inline_projection(self, projection: ProjectionTarget) -> None:
        """Run ``projection`` inside every commit that appends an event it handles (call before ``open``)."""

    async def ensure_views(self, views: Sequence[View[Any]]) -> None:
        """Create (or migrate) the tables of ``views``."""

    async def migrate_module(self, module: str, steps: Sequence[str]) -> int:
        """Run ``module``'s pending migration steps in order, each atomically with the module's recorded
        version (a failing step leaves nothing of itself); return that version. ``{table:name}`` in a step is
        the module's table ``name``: ``"<module>"."<name>"`` in PostgreSQL, ``"<module>__<name>"`` in SQLite.

        Raises:
            StoreError: the database records more steps than given (the code is older than the data).
        """

    def view_reader(self, view: View[Any]) -> ViewReader[Any]:
        """Return read access to a view's committed documents."""

    async def checkpoint(self, name: str) -> int | None:
        """Return the last position consumer ``name`` has processed, or None when it has no checkpoint."""

    async def apply_projection(
        self,
        projection: ProjectionTarget,
        records: Sequence[RecordedEvent],
        position: int,
        lease: Lease | None = None,
    ) -> None:
        """Apply ``records`` to ``projection`` and move its checkpoint to ``position``, in one transaction.

        With a ``lease``, the same transaction renews it, or fails with ``LeaseLost`` (writing nothing)
        when another owner holds it: two processes can never both apply a page.
        """

    async def save_checkpoint(self, name: str, position: int, lease: Lease | None = None) -> None:
        """Move consumer ``name``'s checkpoint forward to ``position`` (an older position changes nothing;
        only ``reset_projection`` moves it back). Fenced by ``lease`` like ``apply_projection``."""

    async def rewind_checkpoint(self, name: str, position: int = 0) -> None:
        """Move consumer ``name``'s checkpoint back to ``position`` and drop its lease, so that whichever process
        runs it next replays from there (an operator's tool: process managers replay idempotently)."""

    async def rewrap_keys(self, master: MasterKeys) -> int:
        """Re-wrap every stored data key with ``master``'s current key (no event is rewritten); return how many
        changed. ``master`` must still hold the keys that wrapped them."""

    async def master_key_ids(self) -> set[str]:
        """Return the ids of the master keys that wrap the stored data keys (forgotten keys need none); a store
        opened with a keyring refuses to open when its master keys miss one of them."""

    async def acquire_lease(self, lease: Lease) -> bool:
        """Take or renew ``lease``; False while another owner holds an unexpired one."""

    async def release_lease(self, lease: Lease) -> None:
        """Give ``lease`` up at once (if held by its owner), so another process can take over."""

    async def reset_projection(self, projection: ProjectionTarget) -> int:
        """Empty the projection's views, set its checkpoint to 0 and drop its lease, in one transaction;
        return the head position then. Whichever process holds the consumer next replays from zero."""

    async def rebuild_inline(
        self, projection: ProjectionTarget, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Empty an inline projection's views and replay the whole log into them in one transaction, so no
        commit (of any process) interleaves; return the position reached. ``progress(done, total)`` is called
        on the event loop as pages are applied."""

    async def add_dead_letter(self, consumer: str, record: RecordedEvent, error: str, attempts: int) -> None:
        """Park an event that ``consumer`` failed to process ``attempts`` times."""

    async def dead_letters(self, consumer: str | None = None) -> list[DeadLetter]:
        """Return the parked events, oldest first, optionally of one consumer only."""

    async def count_dead_letters(self) -> int:
        """Return how many events are parked (one cheap read, for readiness probes)."""

    async def resolve_dead_letter(
        self, letter_id: int, projection: ProjectionTarget | None = None, record: RecordedEvent | None = None
    ) -> bool:
        """Delete dead letter ``letter_id``; with ``projection`` and ``record``, apply the record to the projection
        in the same transaction (a retried event lands once, or stays parked). False when there was no such
        letter, and then nothing is applied."""
