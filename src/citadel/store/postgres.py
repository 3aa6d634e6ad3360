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

``PostgresEventStore`` holds the store's lifecycle and its writes to the log; it builds on
``PostgresProjections`` (``postgres_projections``: inline projections, views, checkpoints, leases, dead
letters), which builds on ``PostgresReads`` (``postgres_reads``: the log, the head position, records and views).
Group commit is in ``postgres_writer`` and ``postgres_batch``, the pool's connections in ``postgres_pool``, and
the listening connection in ``postgres_listener``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

from citadel.errors import ConfigurationError, StoreError
from citadel.messages import Event, EventRegistry
from citadel.security.encryption import Keyring, MasterKeys
from citadel.store.base import (
    AppendResult,
    Commit,
    CommitResult,
    Metadata,
    ProjectionTarget,
    RecordedEvent,
    StreamAppend,
)
from citadel.store.encoding import encode_appends, forgotten_keys
from citadel.store.expiry import Pruner, check_ttl
from citadel.store.migrations import check_known, expand
from citadel.store.postgres_batch import PgCommit
from citadel.store.postgres_keys import master_key_ids, open_request_key, rewrap_keys
from citadel.store.postgres_listener import listen
from citadel.store.postgres_pool import create_pool
from citadel.store.postgres_projections import PostgresProjections
from citadel.store.postgres_reads import HEAD, READ_ALL
from citadel.store.postgres_records import prune_idempotency
from citadel.store.postgres_schema import migrate
from citadel.store.postgres_views import PostgresViewReader
from citadel.store.postgres_writer import PostgresWriter
from citadel.store.sealing import Sealer, refuse_sealed, refuse_unkeyed
from citadel.store.subscription import follow
from citadel.store.url import redacted

__all__ = ["PostgresEventStore"]

# Two queries of ``postgres_reads``, importable from here under their old names (``tests/postgres/test_indexes.py``
# checks their plans).
_HEAD = HEAD
_READ_ALL = READ_ALL


class PostgresEventStore(PostgresProjections):
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
            self._pool = await create_pool(self.dsn, self._pool_size)
            async with self._pool.acquire() as connection:
                await migrate(connection)
                masters = await master_key_ids(connection)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await self._close_pool()
            raise StoreError(f"cannot open PostgreSQL store at {redacted(self.dsn)}: {exc}") from exc
        try:  # a master key that changed (or none at all) would leave every stored payload unreadable: refuse now
            if (sealer := self._sealer) is None:
                refuse_unkeyed(masters)
            else:
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
        self._listener = asyncio.create_task(
            listen(
                self.dsn,
                retry_after=self.poll_interval,
                on_commit=self._wake,
                on_keys_forgotten=self._keys_forgotten,
                on_connected=self._listening,
            ),
            name="citadel-pg-listener",
        )
        self._pruner.start()

    async def _open(self, records: list[RecordedEvent]) -> list[RecordedEvent]:
        """Open sealed payloads; without a keyring, refuse them (``refuse_sealed``)."""
        if self._sealer is None:
            refuse_sealed(records)
            return records
        return await super()._open(records)

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

    def _listening(self) -> None:
        self._wake()  # anything committed while we were not listening
        if self._sealer is not None:  # and any key forgotten meanwhile
            self._sealer.keyring.clear()

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

    def _keys_forgotten(self, key_ids: list[str]) -> None:
        if self._sealer is not None:
            self._sealer.keyring.mark_forgotten(key_ids)

    # -- subscribing and upkeep ------------------------------------------------------------------------

    def subscribe(self, from_position: int = 1) -> AsyncIterator[RecordedEvent]:
        """Yield every event from ``from_position`` on, then new ones as they commit."""
        return follow(self, from_position)

    async def prune_idempotency(self) -> int:
        """Delete expired idempotency records, ``Pruner.batch`` per transaction; return how many."""
        return await self._pruner.prune()

    async def _prune(self, limit: int) -> int:
        before = time.time() - self.idempotency_ttl
        deleted: int = await self._transaction(lambda connection: prune_idempotency(connection, before, limit))
        return deleted

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

    async def rewrap_keys(self, master: MasterKeys) -> int:
        """Re-wrap every data key with the current master key, in one transaction."""
        result: int = await self._transaction(lambda connection: rewrap_keys(connection, master))
        return result
