"""Event stores: the ports (``ports``, all together ``base.EventStore``), the records they keep (``records``), and
one package per backend (``sqlite``, ``postgres``, ``memory``), chosen by URL (``url.open_store``)."""

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
