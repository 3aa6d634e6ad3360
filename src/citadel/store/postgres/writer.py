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

This module holds the writer tasks, the checks that refuse a commit before it is written, and the retry and
savepoint paths; ``batch`` holds the commits it queues and the rows one transaction sends.
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
from citadel.metrics import metrics
from citadel.store.postgres.batch import INDEX_BITS, Batch, PgCommit
from citadel.store.postgres.broken import BROKEN
from citadel.store.postgres.key_table import ensure_keys
from citadel.store.postgres.records import snapshot_heads
from citadel.store.records import CommitResult
from citadel.store.sealing import Sealer
from citadel.store.targets import ProjectionTarget
from citadel.tracing import batch_span, enabled

__all__ = ["INDEX_BITS", "PgCommit", "PostgresWriter"]  # INDEX_BITS and PgCommit live in batch

MAX_BATCH_EVENTS = 50_000
MIN_SHARE = 128
"""Commits a writer takes at least when the queue is shared among free writers (shorter queues are not split)."""
log = logging.getLogger("citadel.store.postgres")

# The version of stream ``s.stream_id``: its own lookup, the last entry of the stream in the (stream_id, version)
# index. As ``stream_id = ANY(...) GROUP BY stream_id`` the planner, guessing without statistics (a table not
# analysed yet), read the whole table for every batch (``tests/postgres/test_indexes.py`` checks the plan).
_STREAM_VERSION = "coalesce((SELECT max(e.version) FROM citadel.events AS e WHERE e.stream_id = s.stream_id), 0)"
# The transaction id, the current version of each stream, and which idempotency keys are taken, in one query.
_BEGIN = (
    f"SELECT pg_current_xact_id()::text::bigint, s.stream_id, {_STREAM_VERSION}, "  # nosec B608  # constant text
    "(SELECT array_agg(key) FROM citadel.idempotency WHERE key = ANY($2::text[]) AND recorded_at >= $3) "
    "FROM (SELECT 1) AS one LEFT JOIN unnest($1::text[]) AS s(stream_id) ON true"
)
_VERSIONS = f"SELECT s.stream_id, {_STREAM_VERSION} FROM unnest($1::text[]) AS s(stream_id)"  # nosec B608  # constant text

TRANSIENT = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)
"""Errors after which PostgreSQL has undone the transaction (or savepoint) and the same work may succeed."""
TRANSIENT_RETRIES = 5


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
        recorded = metrics()
        self._appended, self._sizes, self._seconds = (
            recorded.events_appended,
            recorded.commit_batch_size,
            recorded.commit_duration,
        )

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
            began = time.perf_counter()
            try:
                if enabled():  # the batch's span: a root of its own, linked to each command it holds
                    links = [job.link for job in jobs if job.link is not None]
                    with batch_span(len(jobs), links, "postgresql"):
                        last = await self._write(jobs)
                else:
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
            self._sizes.observe(len(jobs))
            self._seconds.observe(time.perf_counter() - began)
            if last:
                self._on_commit(last)

    async def _write(self, jobs: list[PgCommit]) -> int:
        async with self._pool.acquire() as connection:
            sealer = self._sealer
            if sealer is not None:
                needed = {k for job in jobs for a in job.appends for k in a.keys}
                needed.update(sealer.result_key(j.appends, j.idempotency.module) for j in jobs if j.idempotency)
                await ensure_keys(connection, sealer, needed)
                sealer = sealer.pinned(needed)  # the keyring may be cleared while the batch awaits its reads
            for attempt in range(TRANSIENT_RETRIES + 1):
                try:
                    async with connection.transaction():
                        outcomes, last = await self._fast(connection, jobs, sealer)
                    break
                except BROKEN:
                    raise
                except Exception as exc:
                    if isinstance(exc, TRANSIENT) and attempt < TRANSIENT_RETRIES:  # PostgreSQL undid us: again
                        await self._pause(attempt)
                        continue
                    log.debug("batch of %d commits takes the savepoint path: %r", len(jobs), exc)
                    async with connection.transaction():
                        outcomes, last = await self._careful(connection, jobs, sealer)
                    break
        appended = 0
        for job, outcome in zip(jobs, outcomes, strict=True):
            if not isinstance(outcome, BaseException):
                appended += sum(len(a.encoded) for a in job.appends)
            if job.future.done():
                continue
            if isinstance(outcome, BaseException):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome)
        if appended:
            self._appended.inc(appended)
        return last

    async def _begin(self, connection: Any, sealer: Sealer | None) -> Batch:
        xid = await connection.fetchval("SELECT pg_current_xact_id()::text::bigint")
        return Batch(xid, time.time(), sealer, self._ttl)

    async def _read_heads(self, connection: Any, batch: Batch, jobs: list[PgCommit]) -> None:
        """Read what the keys of the snapshots ``jobs`` write go by (``snapshot_heads``), when the store encrypts."""
        streams = {snap.stream_id for job in jobs for snap in job.snapshots}
        if self._sealer is not None and streams:
            batch.heads.update(await snapshot_heads(connection, self._sealer, list(streams)))

    async def _fast(self, connection: Any, jobs: list[PgCommit], sealer: Sealer | None) -> tuple[list[Any], int]:
        streams = list({a.stream_id for job in jobs for a in job.appends})
        keys = [job.idempotency.key for job in jobs if job.idempotency is not None]
        now = time.time()
        rows = await connection.fetch(_BEGIN, streams, keys, now - self._ttl)
        batch = Batch(rows[0][0], now, sealer, self._ttl)
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

    async def _careful(self, connection: Any, jobs: list[PgCommit], sealer: Sealer | None) -> tuple[list[Any], int]:
        batch = await self._begin(connection, sealer)
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

    async def _one(self, connection: Any, job: PgCommit, batch: Batch) -> CommitResult:
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
