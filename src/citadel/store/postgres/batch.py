"""One group-commit transaction on PostgreSQL: the commits waiting for a writer, and the rows they write.

``PostgresWriter`` (``writer``) queues each commit as a ``PgCommit``, checks a batch of them, and adds
the ones it accepts to a ``Batch``: it numbers their events, seals what the store encrypts, gathers every event,
idempotency record and snapshot in column arrays, and sends them all, with the commit notification, in one
statement (the inline projections' writes follow, pipelined).

Positions are ``(transaction id << INDEX_BITS) + index``, which orders them by transaction id; see ``postgres``
for why subscribers can never skip an event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.trace import Link

from citadel.errors import IdempotencyConflict
from citadel.messages import EventRegistry
from citadel.store.encoding import EncodedAppend
from citadel.store.postgres.view_tables import ViewBuffer, apply_handler
from citadel.store.records import AppendResult, CommitResult, IdempotencyRecord, Metadata, RecordedEvent
from citadel.store.records import Snapshot as SnapshotRecord
from citadel.store.sealing import Sealer
from citadel.store.targets import ProjectionTarget
from citadel.tracing import enabled, projection_span

__all__ = ["INDEX_BITS", "Batch", "PgCommit"]

INDEX_BITS = 20
"""Positions are ``(xid << INDEX_BITS) + index``: at most 2**20 events per transaction."""

# Everything a batch writes, and its notification, in one statement (one round trip); empty arrays write nothing.
# The notification is delivered only if the transaction commits. An idempotency record replaces an expired one of
# the same key (not pruned yet), and is not written over a live one: the count of those written tells.
_WRITE = """
WITH events AS (
    INSERT INTO citadel.events (position, stream_id, version, event_id, type, schema_version, data, recorded_at,
                                correlation_id, causation_id, actor, causation_position, traceparent)
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[], $5::text[], $6::int[], $7::bytea[],
                         $8::float8[], $9::text[], $10::text[], $11::text[], $23::bigint[], $24::text[])
), keys AS (
    INSERT INTO citadel.idempotency (key, request_hash, result, position, recorded_at)
    SELECT * FROM unnest($12::text[], $13::text[], $14::bytea[], $15::bigint[], $16::float8[])
    ON CONFLICT (key) DO UPDATE SET request_hash = excluded.request_hash, result = excluded.result,
        position = excluded.position, recorded_at = excluded.recorded_at
    WHERE citadel.idempotency.recorded_at < $22
    RETURNING 1
), snapshots AS (
    INSERT INTO citadel.snapshots (stream_id, version, state_version, data)
    SELECT * FROM unnest($17::text[], $18::int[], $19::int[], $20::bytea[])
    ON CONFLICT (stream_id) DO UPDATE
    SET version = excluded.version, state_version = excluded.state_version, data = excluded.data
)
SELECT CASE WHEN cardinality($1::bigint[]) > 0 THEN pg_notify('citadel_events', $21::text) END, count(*)
FROM keys
"""
# Tombstones replace forgotten data keys; every node drops its opened copy on the notification.
_FORGET = """
WITH tombstones AS (
    INSERT INTO citadel.keys (key_id, master_id, wrapped)
    SELECT key_id, '', '' FROM unnest($1::text[]) AS key_id
    ON CONFLICT (key_id) DO UPDATE SET master_id = '', wrapped = ''
)
SELECT pg_notify('citadel_keys', array_to_string($1::text[], ','))
"""


class PgCommit:
    """A commit waiting for the writer, and the future its caller awaits."""

    __slots__ = ("appends", "forget", "future", "idempotency", "link", "metadata", "snapshots")

    def __init__(
        self,
        appends: list[EncodedAppend],
        metadata: Metadata,
        idempotency: IdempotencyRecord | None,
        snapshots: Sequence[SnapshotRecord],
        future: asyncio.Future[CommitResult],
        forget: Sequence[str] = (),
        link: Link | None = None,
    ) -> None:
        self.link = link  # the span it was submitted in, for its batch's span
        self.appends = appends
        self.metadata = metadata
        self.idempotency = idempotency
        self.snapshots = snapshots
        self.future = future
        self.forget = forget


def _append_row(columns: list[list[Any]], row: Sequence[Any]) -> None:
    for column, value in zip(columns, row, strict=True):
        column.append(value)


class Batch:
    """One transaction's rows: events, idempotency records and snapshots, in column arrays."""

    def __init__(self, xid: int, now: float, sealer: Sealer | None = None, ttl: float = 86400.0) -> None:
        self.sealer = sealer
        self.expired = now - ttl  # an idempotency record stored before this has expired
        self.heads: dict[str, list[str]] = {}  # stream -> keys its next snapshot goes by (``snapshot_heads``)
        self.forget: list[str] = []
        self.base = xid << INDEX_BITS
        self.index = 0
        self.now = now
        self.events: list[list[Any]] = [[] for _ in range(11)]
        self.causes: list[int | None] = []  # each event's ``causation_position`` (None: not a reaction's)
        self.traces: list[str | None] = []  # the events' ``traceparent``, up to the last traced one (None: not traced)
        self.keys: list[list[Any]] = [[] for _ in range(5)]
        self.snapshots: list[list[Any]] = [[] for _ in range(4)]
        self.records: list[tuple[RecordedEvent, Sequence[ProjectionTarget]]] = []

    def add(
        self,
        job: PgCommit,
        versions: dict[str, int],
        registry: EventRegistry,
        inline: Callable[[str], Sequence[ProjectionTarget]],
    ) -> CommitResult:
        """Add a checked commit's rows, and return where its events will be."""
        meta = job.metadata
        cause = meta.causation_position or None
        results = []
        for append in job.appends:
            current = versions[append.stream_id]
            if not append.encoded:
                results.append(AppendResult(append.stream_id, current, 0, 0))
                continue
            first = self.base + self.index + 1
            for i, (event_id, name, version, data) in enumerate(append.encoded):
                if self.sealer is not None:
                    data = self.sealer.seal_event(append.keys[i], data, append.stream_id, current + 1 + i, name)
                self.index += 1
                row = (
                    self.base + self.index, append.stream_id, current + 1 + i, event_id, name, version, data,
                    self.now, meta.correlation_id, meta.causation_id, meta.actor,
                )  # fmt: skip
                _append_row(self.events, row)
                self.causes.append(cause)
                if meta.traceparent is not None:  # traced: ``unnest`` pads the shorter column with NULLs otherwise
                    self.traces += [None] * (len(self.causes) - 1 - len(self.traces))
                    self.traces.append(meta.traceparent)
                projections = inline(name)
                if projections:
                    recorded = RecordedEvent(*row, registry=registry, event=append.events[i])
                    self.records.append((recorded, projections))
            versions[append.stream_id] = current + len(append.encoded)
            self.heads.get(append.stream_id, []).extend(append.keys)
            results.append(AppendResult(append.stream_id, versions[append.stream_id], first, self.base + self.index))
        result = CommitResult(tuple(results))
        key = job.idempotency
        if key is not None:  # position 0 when the command wrote no event: nothing to wait for
            stored = key.result
            if self.sealer is not None:
                stored = self.sealer.seal_result(self.sealer.result_key(job.appends, key.module), key)
            _append_row(self.keys, (key.key, key.request_hash, stored, result.position, self.now))
        for snap in job.snapshots:
            if self.sealer is not None:
                key_id = self.sealer.snapshot_key(self.heads.get(snap.stream_id, []))
                if key_id is None or self.sealer.keyring.cipher(key_id) is None:
                    continue  # nothing to seal it with that forgetting reaches: the events are the truth anyway
                self.heads[snap.stream_id] = [key_id]
                snap = self.sealer.seal_snapshot(key_id, snap)
            _append_row(self.snapshots, (snap.stream_id, snap.version, snap.state_version, snap.data))
        self.forget.extend(job.forget)
        return result

    async def write(self, connection: Any) -> None:
        """Send the rows added since the last write (then forget them), with the commit notification."""
        try:
            if self.events[0] or self.keys[0] or self.snapshots[0]:
                rows = (
                    *(*self.events, *self.keys, *self.snapshots),
                    *(str(self.last_position), self.expired, self.causes, self.traces),
                )
                if (await connection.fetchrow(_WRITE, *rows))[1] < len(self.keys[0]):
                    raise IdempotencyConflict(self.keys[0][0])  # a live record took a key: the careful path tells which
            if self.forget:
                await connection.execute(_FORGET, self.forget)
            if self.records:
                buffer = ViewBuffer(connection)
                traced = enabled()
                for record, projections in self.records:
                    for projection in projections:
                        if traced:
                            with projection_span(projection.name, 1):
                                await apply_handler(projection.apply(record, buffer))
                        else:
                            await apply_handler(projection.apply(record, buffer))
                await buffer.flush()
        finally:
            for columns in (self.events, self.keys, self.snapshots):
                for column in columns:
                    column.clear()
            self.causes.clear()
            self.traces.clear()
            self.records.clear()
            self.forget = []

    @property
    def last_position(self) -> int:
        return self.base + self.index
