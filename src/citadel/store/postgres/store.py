"""The PostgreSQL event store: asyncpg, group commit across a pool, subscriptions that never skip.

This module holds the store's configuration and lifecycle: the pool (``pool``), the schema (``schema``), the
group-commit writer (``writer`` and ``batch``) and the listening connection (``listener``). Each port is
implemented in the module named after it (``event_log``, which also argues why a subscriber never skips an
event, ``idempotency``, ``snapshots``, ``views``, ``checkpoints``, ``dead_letters``, ``keys``, ``migrations``),
all built on ``base``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg

from citadel.errors import ConfigurationError, StoreError
from citadel.messages import EventRegistry
from citadel.security.encryption import Keyring
from citadel.store.dsn import redacted
from citadel.store.expiry import Pruner, check_ttl
from citadel.store.postgres.checkpoints import PostgresCheckpoints
from citadel.store.postgres.dead_letters import PostgresDeadLetters
from citadel.store.postgres.event_log import PostgresEventLog
from citadel.store.postgres.idempotency import PostgresIdempotency
from citadel.store.postgres.key_table import master_key_ids, open_request_key
from citadel.store.postgres.keys import PostgresKeys
from citadel.store.postgres.listener import listen
from citadel.store.postgres.migrations import PostgresMigrations
from citadel.store.postgres.pool import create_pool
from citadel.store.postgres.schema import migrate
from citadel.store.postgres.snapshots import PostgresSnapshots
from citadel.store.postgres.view_tables import PostgresViewReader
from citadel.store.postgres.views import PostgresViews
from citadel.store.postgres.writer import PostgresWriter
from citadel.store.records import RecordedEvent
from citadel.store.sealing import Sealer, refuse_sealed, refuse_unkeyed
from citadel.store.targets import ProjectionTarget

__all__ = ["PostgresEventStore"]


class PostgresEventStore(
    PostgresEventLog,
    PostgresIdempotency,
    PostgresSnapshots,
    PostgresViews,
    PostgresCheckpoints,
    PostgresDeadLetters,
    PostgresKeys,
    PostgresMigrations,
):
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

    def _listening(self) -> None:
        self._wake()  # anything committed while we were not listening
        if self._sealer is not None:  # and any key forgotten meanwhile
            self._sealer.keyring.clear()

    def _keys_forgotten(self, key_ids: list[str]) -> None:
        if self._sealer is not None:
            self._sealer.keyring.mark_forgotten(key_ids)
