"""Group commit for PostgreSQL: batches of commits, one transaction each, pipelined across connections.

Commits wait in one queue; each of ``connections`` writer tasks takes its share of what is queued (all of it
when the other writers are busy or the queue is short), writes it in one transaction with a handful of round
trips (the version check of every stream in one query, every event in one ``unnest`` insert, the idempotency
records and snapshots likewise, the inline projections' writes pipelined), and commits. While one writer
waits for the server, the next takes the next batch.

Optimistic concurrency is checked in the batch before anything is written, so a stale append fails alone.
A conflict the check could not see (another connection appended to the same stream meanwhile), a projection
that fails, or a broken unique field abort the fast path; the batch is then redone with one savepoint per
commit, so that only the offending commit fails.

Writers on other connections or nodes may update the same view rows at once. Each transaction sends its
inline projections' writes sorted by view and key, so they lock rows in one order and wait for each other
rather than deadlock; where that order cannot be used (a view with a unique field, a clear), PostgreSQL may
still undo one of two transactions for a deadlock, and the batch (or the one commit, on the savepoint path)
is done again, up to ``TRANSIENT_RETRIES`` times: the caller sees only the delay.

Positions are ``(transaction id << 20) + index``, which orders them by transaction id; see ``postgres`` for
why subscribers can never skip an event.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from citadel.errors import ConcurrencyError, IdempotencyConflict, StoreError
from citadel.messages import EventRegistry
from citadel.store.base import AppendResult, CommitResult, IdempotencyRecord, Metadata, ProjectionTarget, RecordedEvent
from citadel.store.base import Snapshot as SnapshotRecord
from citadel.store.encoding import EncodedAppend
from citadel.store.postgres_keys import ensure_keys
from citadel.store.postgres_records import snapshot_heads
from citadel.store.postgres_views import ViewBuffer, apply_handler
from citadel.store.sealing import Sealer

__all__ = ["BROKEN", "INDEX_BITS", "PgCommit", "PostgresWriter"]

INDEX_BITS = 20
"""Positions are ``(xid << INDEX_BITS) + index``: at most 2**20 events per transaction."""
MAX_BATCH_EVENTS = 50_000
MIN_SHARE = 128
"""Commits a writer takes at least when the queue is shared among free writers (shorter queues are not split)."""
log = logging.getLogger("citadel.store.postgres")

# Everything a batch writes, and its notification, in one statement (one round trip); empty arrays write nothing.
# The notification is delivered only if the transaction commits. An idempotency record replaces an expired one of
# the same key (not pruned yet), and is not written over a live one: the count of those written tells.
_WRITE = """
WITH events AS (
    INSERT INTO citadel.events (position, stream_id, version, event_id, type, schema_version, data, recorded_at,
                                correlation_id, causation_id, actor)
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[], $5::text[], $6::int[], $7::bytea[],
                         $8::float8[], $9::text[], $10::text[], $11::text[])
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
# The version of stream ``s.stream_id``: its own lookup, the last entry of the stream in the (stream_id, version)
# index. As ``stream_id = ANY(...) GROUP BY stream_id`` the planner, guessing without statistics (a table not
# analysed yet), read the whole table for every batch (``tests/postgres/test_indexes.py`` checks the plan).
_STREAM_VERSION = "coalesce((SELECT max(e.version) FROM citadel.events AS e WHERE e.stream_id = s.stream_id), 0)"
# The transaction id, the current version of each stream, and which idempotency keys are taken, in one query.
_BEGIN = (
    f"SELECT pg_current_xact_id()::text::bigint, s.stream_id, {_STREAM_VERSION}, "  # nosec B608 - constant text
    "(SELECT array_agg(key) FROM citadel.idempotency WHERE key = ANY($2::text[]) AND recorded_at >= $3) "
    "FROM (SELECT 1) AS one LEFT JOIN unnest($1::text[]) AS s(stream_id) ON true"
)
# Tombstones replace forgotten data keys; every node drops its opened copy on the notification.
_FORGET = """
WITH tombstones AS (
    INSERT INTO citadel.keys (key_id, master_id, wrapped)
    SELECT key_id, '', '' FROM unnest($1::text[]) AS key_id
    ON CONFLICT (key_id) DO UPDATE SET master_id = '', wrapped = ''
)
SELECT pg_notify('citadel_keys', array_to_string($1::text[], ','))
"""
_VERSIONS = f"SELECT s.stream_id, {_STREAM_VERSION} FROM unnest($1::text[]) AS s(stream_id)"  # nosec B608 - constant text


class PgCommit:
    """A commit waiting for the writer, and the future its caller awaits."""

    __slots__ = ("appends", "forget", "future", "idempotency", "metadata", "snapshots")

    def __init__(
        self,
        appends: list[EncodedAppend],
        metadata: Metadata,
        idempotency: IdempotencyRecord | None,
        snapshots: Sequence[SnapshotRecord],
        future: asyncio.Future[CommitResult],
        forget: Sequence[str] = (),
    ) -> None:
        self.appends = appends
        self.metadata = metadata
        self.idempotency = idempotency
        self.snapshots = snapshots
        self.future = future
        self.forget = forget


def _append_row(columns: list[list[Any]], row: Sequence[Any]) -> None:
    for column, value in zip(columns, row, strict=True):
        column.append(value)


class _Batch:
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
                rows = (*self.events, *self.keys, *self.snapshots, str(self.last_position), self.expired)
                if (await connection.fetchrow(_WRITE, *rows))[1] < len(self.keys[0]):
                    raise IdempotencyConflict(self.keys[0][0])  # a live record took a key: the careful path tells which
            if self.forget:
                await connection.execute(_FORGET, self.forget)
            if self.records:
                buffer = ViewBuffer(connection)
                for record, projections in self.records:
                    for projection in projections:
                        await apply_handler(projection.apply(record, buffer))
                await buffer.flush()
        finally:
            for columns in (self.events, self.keys, self.snapshots):
                for column in columns:
                    column.clear()
            self.records.clear()
            self.forget = []

    @property
    def last_position(self) -> int:
        return self.base + self.index


TRANSIENT = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)
"""Errors after which PostgreSQL has undone the transaction (or savepoint) and the same work may succeed."""
TRANSIENT_RETRIES = 5

BROKEN = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.InternalClientError,
    asyncpg.exceptions.OperatorInterventionError,  # the server is shutting down or restarting
)
"""Driver errors that mean the connection or server is gone (as opposed to a refused statement)."""


class PostgresWriter:
    """Writer tasks that group queued commits into transactions on pooled connections."""

    def __init__(
        self,
        pool: Any,
        registry: EventRegistry,
        inline: Callable[[str], Sequence[ProjectionTarget]],
        on_commit: Callable[[int], None],
        *,
        connections: int = 4,
        group_commit: bool = True,
        max_batch: int = 2000,
        sealer: Sealer | None = None,
        ttl: float = 86400.0,
    ) -> None:
        self._sealer = sealer
        self._ttl = ttl  # seconds an idempotency record lives: an older one with the same key is replaced
        self._pool = pool
        self._registry = registry
        self._inline = inline
        self._on_commit = on_commit
        self._connections = connections
        self._max_batch = max_batch if group_commit else 1
        self._queue: collections.deque[PgCommit] = collections.deque()
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._writing = 0
        self._idle = asyncio.Event()
        self.transactions = 0
        self.retried = 0  # transactions or savepoints PostgreSQL undid (deadlocks) and that were done again

    def start(self) -> None:
        """Start the writer tasks."""
        self._tasks = [
            asyncio.create_task(self._run(), name=f"citadel-pg-writer-{i}") for i in range(self._connections)
        ]

    async def stop(self) -> None:
        """Let queued and running commits finish, then stop the writer tasks."""
        while self._queue or self._writing:
            self._idle.clear()
            await self._idle.wait()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def submit(self, job: PgCommit) -> None:
        """Queue a commit; its future resolves once written."""
        if not self._tasks:
            job.future.set_exception(StoreError("the event store is not open; call `await store.open()` first"))
            return
        self._queue.append(job)
        self._ready.set()

    def _take(self) -> list[PgCommit]:
        jobs: list[PgCommit] = []
        events = 0
        queue = self._queue
        # A long queue is shared among the writers that are free, so that their transactions run side by side
        # (the server works on one while this process encodes the next) instead of one writer taking it all.
        free = max(1, self._connections - self._writing)
        limit = min(self._max_batch, max(MIN_SHARE, -(-len(queue) // free)))
        while queue and len(jobs) < limit and events < MAX_BATCH_EVENTS:
            job = queue.popleft()
            jobs.append(job)
            events += sum(len(a.encoded) for a in job.appends)
        if not queue:
            self._ready.clear()
        return jobs

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            jobs = self._take()
            if not jobs:
                continue
            self._writing += 1
            try:
                last = await self._write(jobs)
            except asyncio.CancelledError:
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(StoreError("the event store closed before this commit was written"))
                raise
            except Exception as exc:
                error = StoreError(f"PostgreSQL write failed: {exc}")
                error.__cause__ = exc
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(error)
                continue
            finally:
                self._writing -= 1
                if not self._writing and not self._queue:
                    self._idle.set()
            self.transactions += 1
            if last:
                self._on_commit(last)

    async def _write(self, jobs: list[PgCommit]) -> int:
        async with self._pool.acquire() as connection:
            if (sealer := self._sealer) is not None:
                needed = {k for job in jobs for a in job.appends for k in a.keys}
                needed.update(sealer.result_key(j.appends, j.idempotency.module) for j in jobs if j.idempotency)
                await ensure_keys(connection, sealer, needed)
            for attempt in range(TRANSIENT_RETRIES + 1):
                try:
                    async with connection.transaction():
                        outcomes, last = await self._fast(connection, jobs)
                    break
                except BROKEN:
                    raise
                except Exception as exc:
                    if isinstance(exc, TRANSIENT) and attempt < TRANSIENT_RETRIES:  # PostgreSQL undid us: again
                        await self._pause(attempt)
                        continue
                    log.debug("batch of %d commits takes the savepoint path: %r", len(jobs), exc)
                    async with connection.transaction():
                        outcomes, last = await self._careful(connection, jobs)
                    break
        for job, outcome in zip(jobs, outcomes, strict=True):
            if job.future.done():
                continue
            if isinstance(outcome, BaseException):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome)
        return last

    async def _begin(self, connection: Any) -> _Batch:
        xid = await connection.fetchval("SELECT pg_current_xact_id()::text::bigint")
        return _Batch(xid, time.time(), self._sealer, self._ttl)

    async def _read_heads(self, connection: Any, batch: _Batch, jobs: list[PgCommit]) -> None:
        """Read what the keys of the snapshots ``jobs`` write go by (``snapshot_heads``), when the store encrypts."""
        streams = {snap.stream_id for job in jobs for snap in job.snapshots}
        if self._sealer is not None and streams:
            batch.heads.update(await snapshot_heads(connection, self._sealer, list(streams)))

    async def _fast(self, connection: Any, jobs: list[PgCommit]) -> tuple[list[Any], int]:
        streams = list({a.stream_id for job in jobs for a in job.appends})
        keys = [job.idempotency.key for job in jobs if job.idempotency is not None]
        now = time.time()
        rows = await connection.fetch(_BEGIN, streams, keys, now - self._ttl)
        batch = _Batch(rows[0][0], now, self._sealer, self._ttl)
        await self._read_heads(connection, batch, jobs)
        versions: dict[str, int] = dict.fromkeys(streams, 0)
        versions.update((r[1], r[2]) for r in rows if r[1] is not None)
        taken = set(rows[0][3] or ())
        outcomes: list[Any] = []
        for job in jobs:
            refusal = _refusal(job, versions, taken)
            if refusal is not None:
                outcomes.append(refusal)
                continue
            if job.idempotency is not None:
                taken.add(job.idempotency.key)
            outcomes.append(batch.add(job, versions, self._registry, self._inline))
        await batch.write(connection)
        return outcomes, batch.last_position if batch.index else 0

    async def _pause(self, attempt: int) -> None:
        """Wait a little before doing again what PostgreSQL undid (the other side of the deadlock goes on)."""
        self.retried += 1
        await asyncio.sleep(random.uniform(0.001, 0.005) * (attempt + 1))

    async def _careful(self, connection: Any, jobs: list[PgCommit]) -> tuple[list[Any], int]:
        batch = await self._begin(connection)
        outcomes: list[Any] = []
        for job in jobs:
            for attempt in range(TRANSIENT_RETRIES + 1):
                try:
                    async with connection.transaction():  # a savepoint: this commit fails alone
                        outcomes.append(await self._one(connection, job, batch))
                    break
                except BROKEN:
                    raise
                except TRANSIENT as exc:  # rolled back to the savepoint
                    if attempt < TRANSIENT_RETRIES:
                        await self._pause(attempt)
                        continue
                    outcomes.append(StoreError(f"PostgreSQL kept refusing this commit: {exc}"))
                    break
                except Exception as exc:
                    outcomes.append(await self._explain(connection, job, exc))
                    break
        return outcomes, batch.last_position if batch.index else 0

    async def _one(self, connection: Any, job: PgCommit, batch: _Batch) -> CommitResult:
        streams = list({a.stream_id for a in job.appends})
        versions = dict.fromkeys(streams, 0)
        versions.update((r[0], r[1]) for r in await connection.fetch(_VERSIONS, streams))
        taken: set[str] = set()
        if job.idempotency is not None and await connection.fetchval(
            "SELECT 1 FROM citadel.idempotency WHERE key = $1 AND recorded_at >= $2", job.idempotency.key, batch.expired
        ):
            taken.add(job.idempotency.key)
        refusal = _refusal(job, versions, taken)
        if refusal is not None:
            raise refusal
        await self._read_heads(connection, batch, [job])
        result = batch.add(job, versions, self._registry, self._inline)
        await batch.write(connection)  # on failure the savepoint rolls back; its positions stay unused
        return result

    async def _explain(self, connection: Any, job: PgCommit, exc: Exception) -> BaseException:
        """Turn a savepoint failure into the error the caller should see."""
        if isinstance(exc, asyncpg.UniqueViolationError) and exc.table_name == "events":
            for append in job.appends:
                actual = await connection.fetchval(
                    "SELECT coalesce(max(version), 0) FROM citadel.events WHERE stream_id = $1", append.stream_id
                )
                return ConcurrencyError(append.stream_id, append.expected_version, actual)
        if isinstance(exc, asyncpg.UniqueViolationError) and exc.table_name == "idempotency" and job.idempotency:
            return IdempotencyConflict(job.idempotency.key)
        return exc


def _refusal(job: PgCommit, versions: dict[str, int], taken: set[str]) -> BaseException | None:
    """The error that refuses ``job`` before anything is written, or None (versions of the batch so far)."""
    seen: dict[str, int] = {}
    for append in job.appends:
        current = seen.get(append.stream_id, versions[append.stream_id])
        if append.expected_version is not None and append.expected_version != current:
            return ConcurrencyError(append.stream_id, append.expected_version, current)
        seen[append.stream_id] = current + len(append.encoded)
    if job.idempotency is not None and job.idempotency.key in taken:
        return IdempotencyConflict(job.idempotency.key)
    return None
