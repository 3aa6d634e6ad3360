"""The event store port: every capability a backend provides, and the records it stores.

``EventStore`` is the composite of the capability ports in ``citadel.store.ports`` (the log, snapshots, views,
checkpoints with leases, dead letters, keys, migrations); the records are in ``citadel.store.records`` and what a
store needs from a projection in ``citadel.store.targets``. Every name is importable from here.
"""

from __future__ import annotations

from typing import Protocol

from citadel.store.ports import (
    Checkpoints,
    DeadLetters,
    EventLog,
    Keys,
    Lifecycle,
    Migrations,
    Snapshots,
    ViewStore,
)
from citadel.store.records import (
    NO_STREAM,
    AppendResult,
    Commit,
    CommitResult,
    DeadLetter,
    IdempotencyRecord,
    Lease,
    Metadata,
    RecordedEvent,
    Snapshot,
    StreamAppend,
)
from citadel.store.targets import ProjectionTarget, ViewTransaction

__all__ = [
    "NO_STREAM",
    "AppendResult",
    "Checkpoints",
    "Commit",
    "CommitResult",
    "DeadLetter",
    "DeadLetters",
    "EventLog",
    "EventStore",
    "IdempotencyRecord",
    "Keys",
    "Lease",
    "Lifecycle",
    "Metadata",
    "Migrations",
    "ProjectionTarget",
    "RecordedEvent",
    "Snapshot",
    "Snapshots",
    "StreamAppend",
    "ViewStore",
    "ViewTransaction",
]


class EventStore(EventLog, Snapshots, ViewStore, Checkpoints, DeadLetters, Keys, Migrations, Protocol):
    """The backend-neutral event store: every port at once. All methods but ``subscribe``, ``request_hash``,
    ``add_inline_projection`` and ``view_reader`` are coroutines; ``open`` before use.

    Reads return ``RecordedEvent`` objects in version (stream) or position (log) order.
    """
