"""Event stores: the port (``base``) and one module per backend."""

from __future__ import annotations

from citadel.store.base import (
    NO_STREAM,
    AppendResult,
    Commit,
    CommitResult,
    DeadLetter,
    EventStore,
    IdempotencyRecord,
    Metadata,
    RecordedEvent,
    Snapshot,
    StreamAppend,
)
from citadel.store.url import open_store

__all__ = [
    "NO_STREAM",
    "AppendResult",
    "Commit",
    "CommitResult",
    "DeadLetter",
    "EventStore",
    "IdempotencyRecord",
    "Metadata",
    "RecordedEvent",
    "Snapshot",
    "StreamAppend",
    "open_store",
]
