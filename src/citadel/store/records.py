"""The records an event store keeps: what a command appends, what the log gives back, and what sits beside it.

A stream is the ordered history of one entity (``order-42``); versions count its events from 1. The log is
the ordered history of every stream together; a global position counts it from 1. An append names the
version it expects the stream to be at (``NO_STREAM`` for a new stream, ``None`` for any) and fails with
``ConcurrencyError`` when the stream has moved on.

A ``Commit`` is the unit a backend writes atomically: appends to one or more streams, the inline projections
they trigger, the command's idempotency record and snapshots.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import msgspec

from citadel.errors import PayloadForgotten

if TYPE_CHECKING:
    from citadel.messages import Event, EventRegistry

__all__ = [
    "FORGOTTEN",
    "NO_STREAM",
    "AppendResult",
    "Commit",
    "CommitResult",
    "DeadLetter",
    "IdempotencyRecord",
    "Lease",
    "Metadata",
    "RecordedEvent",
    "Snapshot",
    "StreamAppend",
    "payload_text",
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
    traceparent: str | None = None
    """The W3C ``traceparent`` of the span that made the append (its command's ``dispatch``), kept so that the
    consumers of its events link their spans to it (``citadel.tracing``); None while tracing is off."""


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
        "traceparent",
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
        traceparent: str | None = None,
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
        self.traceparent = traceparent  # of the command that wrote it, when it was traced
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


FORGOTTEN = "<forgotten>"
"""What an operator sees in place of the payload of an event whose subject was forgotten (its key deleted)."""


def payload_text(record: RecordedEvent) -> str:
    """The payload as an operator reads it (opened, when the store seals payloads): its JSON text, never raw
    bytes (anything not UTF-8 is replaced), or ``FORGOTTEN``."""
    return FORGOTTEN if record.forgotten else record.data.decode(errors="replace")
