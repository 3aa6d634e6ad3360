"""The PostgreSQL event store: asyncpg, group commit across a pool, subscriptions that never skip.

**Why a subscriber can never skip an event.** Positions come from transaction ids, not from a sequence:
every event written by transaction T gets ``position = (xid(T) << 20) + i``, with ``xid(T)`` the full
(64-bit) id of T, taken before its first insert. A reader selects, in one statement with one snapshot S, only
events with ``position < xmin(S) << 20``, that is only events of transactions whose id is below ``xmin(S)``,
the oldest transaction still running when S was taken. Every such transaction had finished before S, so S
sees all of their events and none of them can ever add another. Every event committed afterwards belongs to a
transaction that was running at S or started after it; both have ids of at least ``xmin(S)``, so its position
is above everything the reader returned. A subscriber that resumes after the last position it read therefore
sees every event exactly once, in position order, while writers run concurrently: they lock only the rows they
insert, and never a table. Positions are ordered but not dense. The price is that a writing transaction that
stays open holds back what readers may see (not what writers may write) until it ends.

Live subscribers wake on ``LISTEN``/``NOTIFY`` (one listening connection, re-established after the server
restarts) and poll as the fallback when a notification is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from typing import Any

import asyncpg

from citadel.errors import ConfigurationError, LeaseLost, StoreError
from citadel.messages import Event, EventRegistry
from citadel.security.encryption import Keyring, MasterKeys
from citadel.store.base import (
    AppendResult,
    Commit,
    CommitResult,
    DeadLetter,
    IdempotencyRecord,
    Lease,
    Metadata,
    ProjectionTarget,
    RecordedEvent,
    Snapshot,
    StreamAppend,
)
from citadel.store.encoding import encode_appends, forgotten_keys
from citadel.store.expiry import Pruner, check_ttl
from citadel.store.migrations import check_known, expand
from citadel.store.postgres_keys import master_key_ids, open_request_key, read_keys, rewrap_keys
from citadel.store.postgres_records import dead_letters, idempotency_record, load_snapshot, park, prune_idempotency
from citadel.store.postgres_schema import migrate
from citadel.store.postgres_views import PostgresViewReader, ViewBuffer, apply_handler, view_ddl
from citadel.store.postgres_writer import BROKEN, INDEX_BITS, PgCommit, PostgresWriter
from citadel.store.sealing import Sealer, request_hash
from citadel.store.subscription import follow
from citadel.store.url import redacted
from citadel.views import View

__all__ = ["PostgresEventStore"]

log = logging.getLogger("citadel.store.postgres")

_COLUMNS = (
    "position, stream_id, version, event_id, type, schema_version, data, recorded_at, correlation_id, causation_id, "
    "actor"
)
_SAFE = f"(pg_snapshot_xmin(pg_current_snapshot())::text::bigint << {INDEX_BITS})"
_READ_ALL = (
    f"SELECT {_COLUMNS} FROM citadel.events WHERE position >= $1 AND position < {_SAFE} ORDER BY position LIMIT $2"  # nosec B608 - validated identifiers, bound values
)
_E_COLUMNS = ", ".join(f"e.{column.strip()}" for column in _COLUMNS.split(","))
# The page's end (the position of its ``limit``-th readable event), and the page's events of some types: every
# row carries the end, and a page without such events is one row of the end and NULLs (none: an empty page).
_READ_ALL_OF = (
    "WITH page AS (SELECT max(position) AS upto FROM (SELECT position FROM citadel.events "  # nosec B608 - validated identifiers, bound values
    f"WHERE position >= $1 AND position < {_SAFE} ORDER BY position LIMIT $2) AS window_) "
    f"SELECT page.upto, {_E_COLUMNS} FROM page LEFT JOIN citadel.events AS e "
    "ON e.position >= $1 AND e.position <= page.upto AND e.type = ANY($3::text[]) ORDER BY e.position"
)
_HEAD = f"SELECT coalesce(max(position), 0) FROM citadel.events WHERE position < {_SAFE}"  # nosec B608 - validated identifiers, bound values
_REPLAY = f"SELECT {_COLUMNS} FROM citadel.events WHERE position > $1 ORDER BY position LIMIT 1000"  # nosec B608 - constants
_CHANNEL = "citadel_events"
_KEYS_CHANNEL = "citadel_keys"


class _Connection(asyncpg.Connection):
    """A pooled connection that remembers whether it ever sent a cancel request."""

    cancel_sent = False

    def _cancel_current_command(self, waiter: Any, cancel_waiter: Any = None) -> None:
        self.cancel_sent = True
        super()._cancel_current_command(waiter, cancel_waiter)  # type: ignore[misc]  # asyncpg's own hook


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Return a connection to the pool as it is. The store leaves no session state on pooled connections (its
    advisory locks are transaction-scoped, it listens on a connection of its own, it sets nothing), so asyncpg's
    default reset query would cost a round trip on every release for nothing; the pool still rolls back a
    transaction left open. Code that borrows ``pool`` must not change session state either (``SET LOCAL``
    is fine).

    A connection whose query was cancelled (its task was, say a request whose client left) is closed instead:
    PostgreSQL acts on a cancel request asynchronously, so a late one would cancel the next borrower's query.
    """
    if getattr(connection, "cancel_sent", False):
        connection.terminate()  # the pool opens a new connection in its place


class PostgresEventStore:
    """Event store in a PostgreSQL database (schema ``citadel``; module views in one schema per module).

    Args:
        dsn: a ``postgresql://`` URL.
        registry: the event types this store encodes and decodes.
        group_commit: batch concurrent commits into shared transactions (default); False writes each alone.
        writers: connections writing at once (batches are pipelined across them).
        pool_size: most connections of the pool (readers and writers together).
        poll_interval: fallback polling of live subscribers when a notification is lost, in seconds.
        idempotency_ttl: seconds an idempotency record is kept (``citadel.store.expiry``).
    """

    def __init__(
        self,
        dsn: str,
        registry: EventRegistry,
        *,
        group_commit: bool = True,
        writers: int = 4,
        pool_size: int = 16,
        poll_interval: float = 0.5,
        keyring: Keyring | None = None,
        idempotency_ttl: float = 86400.0,
    ) -> None:
        self._sealer = Sealer(keyring) if keyring is not None else None
        self.idempotency_ttl = check_ttl(idempotency_ttl)
        self._pruner = Pruner(self._prune)
        if writers >= pool_size:
            raise ConfigurationError("writers must leave room in the pool for readers: writers < pool_size")
        self.dsn = dsn
        self.registry = registry
        self.poll_interval = poll_interval
        self._group_commit = group_commit
        self._writers = writers
        self._pool_size = pool_size
        self._pool: Any = None
        self._writer: PostgresWriter | None = None
        self._inline_by_type: dict[str, list[ProjectionTarget]] = {}
        self._view_readers: dict[int, PostgresViewReader] = {}
        self._head = 0
        self._changed = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, migrate schema ``citadel``, start the writers and the listener.

        Raises:
            StoreError: the server cannot be reached or refuses the connection.
        """
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=2, max_size=self._pool_size, reset=_keep_session, connection_class=_Connection
            )
            async with self._pool.acquire() as connection:
                await migrate(connection)
                masters = await master_key_ids(connection) if self._sealer is not None else set()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await self._close_pool()
            raise StoreError(f"cannot open PostgreSQL store at {redacted(self.dsn)}: {exc}") from exc
        try:  # a master key that changed would leave every stored payload unreadable: refuse now
            if (sealer := self._sealer) is not None:
                sealer.keyring.master.require(masters)
                await self._read(lambda connection: open_request_key(connection, sealer))
        except (ConfigurationError, StoreError):
            await self._close_pool()
            raise
        self._changed = asyncio.Event()
        self._head = await self.head_position()
        self._writer = PostgresWriter(
            self._pool,
            self.registry,
            self._inline_for,
            self._on_commit,
            connections=self._writers,
            group_commit=self._group_commit,
            sealer=self._sealer,
            ttl=self.idempotency_ttl,
        )
        self._writer.start()
        self._listener = asyncio.create_task(self._listen(), name="citadel-pg-listener")
        self._pruner.start()

    async def close(self) -> None:
        """Finish queued writes, stop listening and close the pool."""
        await self._pruner.stop()
        if self._writer is not None:
            await self._writer.stop()
            self._writer = None
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        await self._close_pool()
        self._wake()

    async def _close_pool(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def writer(self) -> PostgresWriter:
        """The group-commit writer (its ``transactions`` counter shows batching)."""
        if self._writer is None:
            raise StoreError("the event store is not open; call `await store.open()` first")
        return self._writer

    @property
    def pool(self) -> Any:
        """The connection pool."""
        if self._pool is None:
            raise StoreError("the event store is not open; call `await store.open()` first")
        return self._pool

    async def _listen(self) -> None:
        """Keep one connection listening for commits, reconnecting (with a pause) when it is lost."""
        while True:
            connection = None
            try:
                connection = await asyncpg.connect(self.dsn)
                lost = asyncio.Event()
                connection.add_termination_listener(lambda _, lost=lost: lost.set())
                await connection.add_listener(_CHANNEL, lambda *_: self._wake())
                await connection.add_listener(_KEYS_CHANNEL, self._keys_forgotten)
                self._wake()  # anything committed while we were not listening
                if self._sealer is not None:  # and any key forgotten meanwhile
                    self._sealer.keyring.clear()
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("listening for commits failed, retrying: %s", exc)
            finally:
                if connection is not None and not connection.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.shield(connection.close(timeout=1))
            await asyncio.sleep(self.poll_interval)

    # -- writing ---------------------------------------------------------------------------------------

    async def append(
        self,
        stream_id: str,
        events: Sequence[Event],
        expected_version: int | None = None,
        metadata: Metadata | None = None,
    ) -> AppendResult:
        """Append events to one stream (see ``EventStore.append``)."""
        result = await self.commit(Commit((StreamAppend(stream_id, events, expected_version),), metadata or Metadata()))
        return result.appends[0]

    async def commit(self, commit: Commit) -> CommitResult:
        """Write a commit atomically, batched with concurrent ones (see ``EventStore.commit``)."""
        sealer = self._sealer
        appends = encode_appends(commit, self.registry, keyed=sealer is not None)
        forget = forgotten_keys(commit, encrypting=sealer is not None)
        future: asyncio.Future[CommitResult] = asyncio.get_running_loop().create_future()
        self.writer.submit(PgCommit(appends, commit.metadata, commit.idempotency, commit.snapshots, future, forget))
        result = await future
        if forget and sealer is not None:
            sealer.keyring.mark_forgotten(forget)
        return result

    def _keys_forgotten(self, connection: Any, pid: int, channel: str, payload: object) -> None:
        if self._sealer is not None:
            self._sealer.keyring.mark_forgotten(str(payload).split(","))

    async def _open(self, records: list[RecordedEvent]) -> list[RecordedEvent]:
        """Open sealed payloads (reading the keys not known yet); a no-op without encryption."""
        sealer = self._sealer
        if sealer is None or not records:
            return records
        missing = sealer.missing(sealer.sealed_keys(r.data for r in records))
        if missing:
            async with self.pool.acquire() as connection:
                sealer.learn(await read_keys(connection, missing))
        sealer.open_records(records)
        return records

    def _inline_for(self, type_name: str) -> Sequence[ProjectionTarget]:
        return self._inline_by_type.get(type_name, ())

    def _on_commit(self, position: int) -> None:
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _transaction(self, work: Callable[[Any], Any]) -> Any:
        """Run ``work(connection)`` in its own transaction, translating driver errors."""
        try:
            async with self.pool.acquire() as connection, connection.transaction():
                return await work(connection)
        except BROKEN as exc:
            raise StoreError(f"PostgreSQL write failed: {exc}") from exc

    # -- reading ---------------------------------------------------------------------------------------

    def _records(self, rows: Sequence[Any]) -> list[RecordedEvent]:
        registry = self.registry
        return [RecordedEvent(*row, registry=registry) for row in rows]  # type: ignore[misc]

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        return list(await self._read(lambda connection: connection.fetch(sql, *args)))

    async def _read(self, work: Callable[[Any], Any]) -> Any:
        """Run ``work(connection)`` on a pooled connection, translating driver errors."""
        try:
            async with self.pool.acquire() as connection:
                return await work(connection)
        except BROKEN as exc:
            raise StoreError(f"PostgreSQL read failed: {exc}") from exc

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        """Return a stream's events from ``from_version`` on, in version order."""
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM citadel.events WHERE stream_id = $1 AND version >= $2 ORDER BY version",  # nosec B608 - validated identifiers, bound values
            stream_id,
            from_version,
        )
        return await self._open(self._records(rows))

    async def read_all(self, from_position: int = 1, limit: int = 1000) -> list[RecordedEvent]:
        """Return up to ``limit`` events at ``from_position`` or later, in position order, never past an event
        of a transaction that may still commit (see the module docstring)."""
        return await self._open(self._records(await self._fetch(_READ_ALL, from_position, limit)))

    async def read_all_of(
        self, types: Collection[str], from_position: int = 1, limit: int = 1000
    ) -> tuple[list[RecordedEvent], int]:
        """Of the next ``limit`` events at ``from_position`` or later, return those of ``types``, and the position
        read up to (the page as ``read_all`` reads it, filtered in SQL: the others are neither sent nor
        decrypted)."""
        rows = await self._fetch(_READ_ALL_OF, from_position, limit, list(types))
        upto = rows[0][0] if rows else None
        if upto is None:
            return [], from_position - 1
        registry = self.registry
        found = [RecordedEvent(*row[1:], registry=registry) for row in rows if row[1] is not None]  # type: ignore[misc]
        return await self._open(found), int(upto)

    def subscribe(self, from_position: int = 1) -> AsyncIterator[RecordedEvent]:
        """Yield every event from ``from_position`` on, then new ones as they commit."""
        return follow(self, from_position)

    async def stream_version(self, stream_id: str) -> int:
        """Return the stream's version (0 when it has no events)."""
        rows = await self._fetch("SELECT coalesce(max(version), 0) FROM citadel.events WHERE stream_id = $1", stream_id)
        return int(rows[0][0])

    async def head_position(self) -> int:
        """Return the last position a subscriber may read now (see the module docstring)."""
        rows = await self._fetch(_HEAD)
        head = int(rows[0][0])
        self._head = max(self._head, head)
        return head

    async def last_position(self) -> int:
        """Return the highest committed position, readable or not yet (see the module docstring)."""
        rows = await self._fetch("SELECT coalesce(max(position), 0) FROM citadel.events")
        return int(rows[0][0])

    async def wait_for_events(self, after: int, timeout: float) -> int:
        """Wait until a readable event after ``after`` exists (or ``timeout``); return the head."""
        head = await self.head_position()
        if head > after:
            return head
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(timeout, self.poll_interval)):
                await changed.wait()
        return await self.head_position()

    def request_hash(self, material: bytes) -> str:
        """Return what an idempotency record stores to recognise a command (see ``EventStore.request_hash``)."""
        return request_hash(self._sealer, material)

    async def idempotency_record(self, key: str) -> IdempotencyRecord | None:
        """Return the unexpired outcome for an idempotency key (``forgotten`` when its key is gone), or None."""
        since = time.time() - self.idempotency_ttl
        record: IdempotencyRecord | None = await self._read(
            lambda connection: idempotency_record(connection, self._sealer, key, since)
        )
        return record

    async def prune_idempotency(self) -> int:
        """Delete expired idempotency records, ``Pruner.batch`` per transaction; return how many."""
        return await self._pruner.prune()

    async def _prune(self, limit: int) -> int:
        before = time.time() - self.idempotency_ttl
        deleted: int = await self._transaction(lambda connection: prune_idempotency(connection, before, limit))
        return deleted

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """Return the stream's snapshot (None when there is none, or its key is gone)."""
        snapshot: Snapshot | None = await self._read(lambda c: load_snapshot(c, self._sealer, stream_id))
        return snapshot

    # -- views and projections -------------------------------------------------------------------------

    def add_inline_projection(self, projection: ProjectionTarget) -> None:
        """Run ``projection`` in every commit that appends an event it handles."""
        for info in self.registry:
            if projection.handles(info.name):
                self._inline_by_type.setdefault(info.name, []).append(projection)

    async def ensure_views(self, views: Sequence[View[Any]]) -> None:
        """Create the schemas, tables and indexes of ``views`` (idempotent, safe for concurrent nodes)."""

        async def create(connection: Any) -> None:
            await connection.execute("SELECT pg_advisory_xact_lock($1)", 0x43495442)
            for view in views:
                for statement in view_ddl(view):
                    await connection.execute(statement)

        await self._transaction(create)

    async def migrate_module(self, module: str, steps: Sequence[str]) -> int:
        """Run ``module``'s pending migration steps in its schema, each in a transaction with its version."""
        done: int = 0
        for version in range(1, len(steps) + 1):

            async def step(connection: Any, version: int = version) -> int:
                await connection.execute("SELECT pg_advisory_xact_lock($1)", 0x43495443)
                recorded = await connection.fetchval(
                    "SELECT version FROM citadel.module_migrations WHERE module = $1", module
                )
                recorded = recorded or 0
                check_known(module, recorded, len(steps))
                if recorded >= version:
                    return int(recorded)
                await connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{module}"')
                await connection.execute(expand(steps[version - 1], lambda name: f'"{module}"."{name}"'))
                await connection.execute(
                    "INSERT INTO citadel.module_migrations (module, version) VALUES ($1, $2) "
                    "ON CONFLICT (module) DO UPDATE SET version = excluded.version",
                    module,
                    version,
                )
                return version

            done = await self._transaction(step)
        if not steps:
            recorded = await self._fetch("SELECT version FROM citadel.module_migrations WHERE module = $1", module)
            check_known(module, int(recorded[0][0]) if recorded else 0, 0)
        return max(done, len(steps))

    def view_reader(self, view: View[Any]) -> PostgresViewReader:
        """Return read access to a view's committed documents."""
        reader = self._view_readers.get(id(view))
        if reader is None:
            reader = self._view_readers[id(view)] = PostgresViewReader(view, self.pool)
        return reader

    async def checkpoint(self, name: str) -> int | None:
        """Return consumer ``name``'s last processed position, or None."""
        rows = await self._fetch("SELECT position FROM citadel.checkpoints WHERE name = $1", name)
        return int(rows[0][0]) if rows else None

    async def apply_projection(
        self,
        projection: ProjectionTarget,
        records: Sequence[RecordedEvent],
        position: int,
        lease: Lease | None = None,
    ) -> None:
        """Apply events and move the checkpoint in one transaction (fenced by ``lease``)."""

        async def apply(connection: Any) -> None:
            if lease is not None:
                await _renew(connection, lease)
            buffer = ViewBuffer(connection)
            for record in records:
                if projection.handles(record.type):
                    await apply_handler(projection.apply(record, buffer))
            await buffer.flush()
            await _save_checkpoint(connection, projection.name, position)

        await self._transaction(apply)

    async def save_checkpoint(self, name: str, position: int, lease: Lease | None = None) -> None:
        """Move a consumer's checkpoint forward (fenced by ``lease``)."""

        async def save(connection: Any) -> None:
            if lease is not None:
                await _renew(connection, lease)
            await _save_checkpoint(connection, name, position)

        await self._transaction(save)

    async def rewind_checkpoint(self, name: str, position: int = 0) -> None:
        """Move a consumer's checkpoint back and drop its lease, so the next holder replays from there."""
        await self._transaction(lambda connection: _reset_checkpoint(connection, name, position))

    async def reset_projection(self, projection: ProjectionTarget) -> int:
        """Empty the projection's views, zero its checkpoint and drop its lease; return the head then."""

        async def reset(connection: Any) -> int:
            buffer = ViewBuffer(connection)
            for view in projection.views:
                buffer.writer(view).clear()
            await buffer.flush()
            await _reset_checkpoint(connection, projection.name, 0)
            return int(await connection.fetchval("SELECT coalesce(max(position), 0) FROM citadel.events"))

        result: int = await self._transaction(reset)
        return result

    async def rebuild_inline(
        self, projection: ProjectionTarget, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Empty and replay an inline projection in one transaction that excludes concurrent commits."""

        async def rebuild(connection: Any) -> int:
            # Writers append with row locks only; a share lock on the log makes them wait for the rebuild.
            await connection.execute("LOCK TABLE citadel.events IN SHARE MODE")
            buffer = ViewBuffer(connection)
            for view in projection.views:
                buffer.writer(view).clear()
            target = int(await connection.fetchval("SELECT coalesce(max(position), 0) FROM citadel.events"))
            position = 0
            while position < target:
                rows = await connection.fetch(_REPLAY, position)
                if not rows:
                    break
                records = self._records(rows)
                if self._sealer is not None:
                    missing = self._sealer.missing(self._sealer.sealed_keys(r.data for r in records))
                    self._sealer.learn(await read_keys(connection, missing))
                    self._sealer.open_records(records)
                for record in records:
                    if projection.handles(record.type):
                        await apply_handler(projection.apply(record, buffer))
                await buffer.flush()
                position = rows[-1][0]
                if progress is not None:
                    progress(position, target)
            return position

        result: int = await self._transaction(rebuild)
        return result

    async def add_dead_letter(self, consumer: str, record: RecordedEvent, error: str, attempts: int) -> None:
        """Park an event a consumer gave up on (its error text sealed, see ``citadel.store.dead_letters``)."""
        await self._transaction(lambda c: park(c, self._sealer, consumer, record, error, attempts))

    async def resolve_dead_letter(
        self, letter_id: int, projection: ProjectionTarget | None = None, record: RecordedEvent | None = None
    ) -> bool:
        """Delete a dead letter, applying its event to ``projection`` in the same transaction when given."""

        async def resolve(connection: Any) -> bool:
            deleted = await connection.execute("DELETE FROM citadel.dead_letters WHERE id = $1", letter_id)
            if deleted.endswith(" 0"):
                return False
            if projection is not None and record is not None and projection.handles(record.type):
                buffer = ViewBuffer(connection)
                await apply_handler(projection.apply(record, buffer))
                await buffer.flush()
            return True

        resolved: bool = await self._transaction(resolve)
        return resolved

    async def dead_letters(self, consumer: str | None = None) -> list[DeadLetter]:
        """Return parked events, oldest first."""
        letters: list[DeadLetter] = await self._read(lambda c: dead_letters(c, self._sealer, consumer))
        return letters

    async def rewrap_keys(self, master: MasterKeys) -> int:
        """Re-wrap every data key with the current master key, in one transaction."""
        result: int = await self._transaction(lambda connection: rewrap_keys(connection, master))
        return result

    async def master_key_ids(self) -> set[str]:
        """The ids of the master keys that wrap the stored data keys."""
        async with self.pool.acquire() as connection:
            return await master_key_ids(connection)

    async def acquire_lease(self, lease: Lease) -> bool:
        """Take or renew a lease (by the database's clock); False while another owner holds it."""

        async def acquire(connection: Any) -> bool:
            owner = await connection.fetchval(
                "INSERT INTO citadel.leases (name, owner, expires_at) "
                "VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3)) "
                "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at "
                "WHERE citadel.leases.owner = excluded.owner OR citadel.leases.expires_at < clock_timestamp() "
                "RETURNING owner",
                lease.name,
                lease.owner,
                lease.ttl,
            )
            return owner is not None

        held: bool = await self._transaction(acquire)
        return held

    async def release_lease(self, lease: Lease) -> None:
        """Give a lease up so another process can take over at once."""
        await self._transaction(
            lambda connection: connection.execute(
                "DELETE FROM citadel.leases WHERE name = $1 AND owner = $2", lease.name, lease.owner
            )
        )


async def _renew(connection: Any, lease: Lease) -> None:
    held = await connection.fetchval(
        "UPDATE citadel.leases SET expires_at = clock_timestamp() + make_interval(secs => $3) "
        "WHERE name = $1 AND owner = $2 RETURNING 1",
        lease.name,
        lease.owner,
        lease.ttl,
    )
    if held is None:
        raise LeaseLost(lease.name)


async def _save_checkpoint(connection: Any, name: str, position: int) -> None:
    await connection.execute(
        "INSERT INTO citadel.checkpoints (name, position) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE "
        "SET position = excluded.position WHERE excluded.position > citadel.checkpoints.position",
        name,
        position,
    )


async def _reset_checkpoint(connection: Any, name: str, position: int) -> None:
    await connection.execute(
        "INSERT INTO citadel.checkpoints (name, position) VALUES ($1, $2) "
        "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
        name,
        position,
    )
    await connection.execute("DELETE FROM citadel.leases WHERE name = $1", name)
