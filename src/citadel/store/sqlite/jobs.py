"""The writes the SQLite event store sends to its group-commit writer, one class per kind of write."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from citadel.errors import ConcurrencyError, LeaseLost
from citadel.messages import EventRegistry
from citadel.store.encoding import EncodedAppend
from citadel.store.handlers import run_handler, traced_apply
from citadel.store.records import (
    AppendResult,
    CommitResult,
    IdempotencyRecord,
    Lease,
    Metadata,
    RecordedEvent,
    Snapshot,
)
from citadel.store.sealing import Sealer
from citadel.store.sqlite.key_table import ensure_keys, forget_keys
from citadel.store.sqlite.records import snapshot_key, store_idempotency
from citadel.store.sqlite.transaction import WriteJob, WriteTransaction
from citadel.store.targets import ProjectionTarget
from citadel.tracing import current_link, enabled

__all__ = [
    "CallJob",
    "CommitJob",
    "ProjectionJob",
    "acquire_lease",
    "renew_lease",
    "reset_checkpoint",
    "run_handler",
    "save_checkpoint",
    "select_events",
]

EVENT_COLUMNS = (
    "position, stream_id, version, event_id, type, schema_version, data, recorded_at, "
    "correlation_id, causation_id, actor"
)
_INSERT = f"INSERT INTO citadel_events ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"  # nosec B608  # validated identifiers, bound values
_INSERT_CAUSED = (  # a reaction's events, with the position of the event it answered
    f"INSERT INTO citadel_events ({EVENT_COLUMNS}, causation_position) VALUES ({', '.join('?' * 12)})"  # nosec B608  # validated identifiers, bound values
)
_INSERT_TRACED = (  # events of a traced command: its traceparent, and the position of the event a reaction answered
    f"INSERT INTO citadel_events ({EVENT_COLUMNS}, causation_position, traceparent) VALUES ({', '.join('?' * 13)})"  # nosec B608  # validated identifiers, bound values
)
_SNAPSHOT = "INSERT OR REPLACE INTO citadel_snapshots (stream_id, version, state_version, data) VALUES (?, ?, ?, ?)"


def select_events(db: Any, where: str, params: tuple[Any, ...], registry: EventRegistry) -> list[RecordedEvent]:
    """Run ``SELECT <event columns> FROM citadel_events <where>`` and wrap the rows."""
    rows = db.execute(f"SELECT {EVENT_COLUMNS}, traceparent FROM citadel_events {where}", params).fetchall()  # nosec B608  # validated identifiers, bound values
    return [RecordedEvent(*row, registry=registry) for row in rows]  # type: ignore[misc]


class CommitJob(WriteJob):
    """Append to streams, run inline projections, store the idempotency record and snapshots."""

    __slots__ = (
        "appends",
        "forget",
        "idempotency",
        "inline",
        "metadata",
        "projects",
        "registry",
        "result_key",
        "sealer",
        "snapshots",
        "ttl",
    )

    def __init__(
        self,
        appends: list[EncodedAppend],
        metadata: Metadata,
        idempotency: IdempotencyRecord | None,
        snapshots: Sequence[Snapshot],
        inline: Callable[[str], Sequence[ProjectionTarget]],
        registry: EventRegistry,
        sealer: Sealer | None = None,
        forget: Sequence[str] = (),
        ttl: float = 86400.0,
    ) -> None:
        # WriteJob's fields set here rather than through super().__init__: one call less per commit.
        self.future = None
        self.result = None
        self.error = None
        self.writing = False
        self.link = current_link()
        self.appends = appends
        self.metadata = metadata
        self.idempotency = idempotency
        self.snapshots = snapshots
        self.inline = inline
        self.registry = registry
        self.projects = False
        self.sealer = sealer
        self.forget = forget
        self.ttl = ttl  # seconds an idempotency record lives: an older one with the same key is replaced
        self.result_key = ""

    tracks_writes = True

    def prepare(self, tx: WriteTransaction) -> None:
        # Data keys are written before the jobs run, outside their savepoints: a job that fails cannot take
        # a key that another job of the batch sealed with.
        if self.sealer is not None:
            needed = {k for a in self.appends for k in a.keys}
            if self.idempotency is not None:
                self.result_key = self.sealer.result_key(self.appends, self.idempotency.module)
                needed.add(self.result_key)
            ensure_keys(tx, self.sealer, self.sealer.missing(needed))
            # A writer thread seals while the loop may clear the keyring (keys forgotten by another process).
            self.sealer = self.sealer.pinned(needed)

    def needs_savepoint(self) -> bool:
        # Only inline projections can fail once writing has begun. Asked by the writer just before running, so
        # a projection suspended or resumed by an earlier job of the queue is seen as it is now.
        inline = self.inline
        projects = False
        for append in self.appends:  # loops, not any(<generator>): this runs for every command
            for encoded in append.encoded:
                if inline(encoded[1]):
                    projects = True
                    break
            if projects:
                break
        self.projects = projects
        # A second append's insert may find its stream taken after the first wrote, and the idempotency key is
        # stored (and found taken) after the events: undo this job alone.
        return self.projects or len(self.appends) > 1 or (self.idempotency is not None and bool(self.appends))

    def run(self, tx: WriteTransaction) -> CommitResult:
        db = tx.db
        # Check the versions first, writing nothing: a refused commit needs no rollback.
        versions: dict[str, int] = {}
        presumed_new: set[str] = set()
        known = tx.versions  # tx.knows(), inlined: this runs for every command
        for append in self.appends:
            current = versions.get(append.stream_id)
            if current is None and append.expected_version == 0 and append.stream_id not in known:
                # A new stream, as most creating commands say: no read; the unique (stream, version) index
                # refuses the insert if the stream exists after all.
                current = 0
                presumed_new.add(append.stream_id)
            elif current is None:
                current = tx.stream_version(append.stream_id)
            expected = append.expected_version
            if expected is not None and expected != current:
                raise ConcurrencyError(append.stream_id, expected, current)
            versions[append.stream_id] = current + len(append.encoded)
        meta = self.metadata
        correlation_id, causation_id, actor, now = meta.correlation_id, meta.causation_id, meta.actor, tx.now
        results: list[AppendResult] = []
        for append in self.appends:
            current = versions[append.stream_id] - len(append.encoded)
            if not append.encoded:
                results.append(AppendResult(append.stream_id, current, 0, 0))
                continue
            first = tx.head + 1
            encoded = append.encoded
            if self.sealer is not None:
                seal = self.sealer.seal_event
                encoded = [
                    (event_id, name, version, seal(key, data, append.stream_id, current + 1 + i, name))
                    for i, ((event_id, name, version, data), key) in enumerate(zip(encoded, append.keys, strict=True))
                ]
            rows = [
                (
                    first + i,
                    append.stream_id,
                    current + 1 + i,
                    event_id,
                    name,
                    version,
                    data,
                    now,
                    correlation_id,
                    causation_id,
                    actor,
                )
                for i, (event_id, name, version, data) in enumerate(encoded)
            ]
            try:
                if meta.traceparent:  # tracing is on: each event keeps its command's span
                    traced = (meta.causation_position or None, meta.traceparent)
                    db.executemany(_INSERT_TRACED, [(*row, *traced) for row in rows])
                elif meta.causation_position:  # a reaction's events: rarer, and only they store their cause
                    db.executemany(_INSERT_CAUSED, [(*row, meta.causation_position) for row in rows])
                else:
                    db.executemany(_INSERT, rows)
            except sqlite3.IntegrityError:
                if append.stream_id not in presumed_new:
                    raise
                raise ConcurrencyError(append.stream_id, 0, tx.stream_version(append.stream_id)) from None
            self.writing = True  # from here on, a failure leaves writes of this job behind
            tx.head = first + len(rows) - 1
            results.append(AppendResult(append.stream_id, current + len(rows), first, tx.head))
            if self.projects:
                self._project(tx, append, rows)
        result = CommitResult(tuple(results))
        record = self.idempotency
        if record is not None:  # position 0 when the command wrote no event: nothing to wait for
            # The insert is the check (a taken key is rare: a retry racing its twin). Refused after the events
            # were written, the job is undone by the writer's careful redo, in a savepoint of its own.
            stored = record.result if self.sealer is None else self.sealer.seal_result(self.result_key, record)
            store_idempotency(tx, record, stored, result.position, self.ttl)
        for snap in self.snapshots:
            if self.sealer is not None:
                key = snapshot_key(tx, self.sealer, snap.stream_id)
                if key is None:
                    continue  # nothing to seal it with that forgetting reaches: the events are the truth anyway
                snap = self.sealer.seal_snapshot(key, snap)
            db.execute(_SNAPSHOT, (snap.stream_id, snap.version, snap.state_version, snap.data))
        if self.forget:
            forget_keys(tx, self.forget)
        known.update(versions)  # last: nothing of this job can fail after it (but its held view writes)
        tx.added = True
        return result

    def _project(self, tx: WriteTransaction, append: EncodedAppend, rows: list[tuple[Any, ...]]) -> None:
        inline = self.inline
        traced = enabled()
        for event, row in zip(append.events, rows, strict=True):
            projections = inline(row[4])
            if not projections:
                continue
            record = RecordedEvent(*row, registry=self.registry, event=event)  # type: ignore[misc]
            for projection in projections:
                if traced:
                    traced_apply(projection, record, tx)
                    continue
                result = projection.apply(record, tx)
                if result is not None:
                    run_handler(result)


class ProjectionJob(WriteJob):
    """Apply events to one projection and move its checkpoint, together."""

    __slots__ = ("lease", "position", "projection", "records")

    def __init__(
        self, projection: ProjectionTarget, records: Sequence[RecordedEvent], position: int, lease: Lease | None
    ) -> None:
        super().__init__()
        self.projection = projection
        self.records = records
        self.position = position
        self.lease = lease

    def run(self, tx: WriteTransaction) -> None:
        if self.lease is not None:
            renew_lease(tx, self.lease)
        projection = self.projection
        for record in self.records:
            if projection.handles(record.type):
                run_handler(projection.apply(record, tx))
        save_checkpoint(tx, projection.name, self.position)


def acquire_lease(tx: WriteTransaction, lease: Lease) -> bool:
    """Take ``lease`` when free, expired or already ours, extending it by its ttl; return whether we hold it."""
    tx.db.execute(
        "INSERT INTO citadel_leases (name, owner, expires_at) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at "
        "WHERE citadel_leases.owner = excluded.owner OR citadel_leases.expires_at < ?",
        (lease.name, lease.owner, tx.now + lease.ttl, tx.now),
    )
    return bool(tx.db.execute("SELECT changes()").fetchone()[0])


def renew_lease(tx: WriteTransaction, lease: Lease) -> None:
    """Extend ``lease`` if we still hold it; else raise ``LeaseLost`` (before anything is written)."""
    held = tx.db.execute(
        "UPDATE citadel_leases SET expires_at = ? WHERE name = ? AND owner = ?",
        (tx.now + lease.ttl, lease.name, lease.owner),
    ).rowcount
    if not held:
        raise LeaseLost(lease.name)


def save_checkpoint(tx: WriteTransaction, name: str, position: int) -> None:
    """Move a consumer's checkpoint forward (never back: a late write of an older position is ignored)."""
    tx.db.execute(
        "INSERT INTO citadel_checkpoints (name, position) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET position = excluded.position WHERE excluded.position > position",
        (name, position),
    )


def reset_checkpoint(tx: WriteTransaction, name: str, position: int = 0) -> None:
    """Set a consumer's checkpoint back to ``position`` and drop its lease (a rebuild or a replay)."""
    tx.db.execute(
        "INSERT INTO citadel_checkpoints (name, position) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
        (name, position),
    )
    tx.db.execute("DELETE FROM citadel_leases WHERE name = ?", (name,))


class CallJob(WriteJob):
    """Run a function inside a write transaction (for rare writes: checkpoints, resets, DDL)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[WriteTransaction], Any]) -> None:
        super().__init__()
        self.fn = fn

    def run(self, tx: WriteTransaction) -> Any:
        tx.flush_views()  # the function may read view tables directly
        return self.fn(tx)
