"""The in-memory event store: every port in plain dicts and lists, for unit tests and quick experiments.

It keeps the contract of the other backends (``citadel.testing.store_suite`` proves it): optimistic
concurrency, atomic commits with their inline projections, views with indexes and unique fields, checkpoints
with leases, dead letters, expiring idempotency records, and encryption at rest with forgetting. What it does not
have is durability: its data lives as long as its ``MemoryDatabase``. Give several stores one database to see
them share it, as processes share a database file.

This module holds the store's configuration and lifecycle; each port is implemented in the module named after it
(``event_log``, ``idempotency``, ``snapshots``, ``views``, ``checkpoints``, ``dead_letters``, ``keys``,
``migrations``), all built on ``base``.
"""

from __future__ import annotations

import asyncio

from citadel.messages import EventRegistry
from citadel.security.encryption import Keyring
from citadel.store.expiry import Pruner, check_ttl
from citadel.store.memory.checkpoints import MemoryCheckpoints
from citadel.store.memory.database import MemoryDatabase
from citadel.store.memory.dead_letters import MemoryDeadLetters
from citadel.store.memory.event_log import MemoryEventLog
from citadel.store.memory.idempotency import MemoryIdempotency
from citadel.store.memory.keys import MemoryKeys
from citadel.store.memory.migrations import MemoryMigrations
from citadel.store.memory.snapshots import MemorySnapshots
from citadel.store.memory.views import MemoryViews
from citadel.store.sealing import REQUEST_KEY, Sealer, refuse_unkeyed
from citadel.store.targets import ProjectionTarget

__all__ = ["MemoryEventStore"]


class MemoryEventStore(
    MemoryEventLog,
    MemoryIdempotency,
    MemorySnapshots,
    MemoryViews,
    MemoryCheckpoints,
    MemoryDeadLetters,
    MemoryKeys,
    MemoryMigrations,
):
    """Event store in memory.

    Args:
        registry: the event types this store encodes and decodes.
        database: where the data lives; a new, empty one when not given. Stores given the same database share
            its data (as processes share a database file); one opened again on it finds what was written.
        keyring: encrypt payloads with these keys, as the other backends do.
        idempotency_ttl: seconds an idempotency record is kept (``citadel.store.expiry``).
    """

    def __init__(
        self,
        registry: EventRegistry,
        *,
        database: MemoryDatabase | None = None,
        keyring: Keyring | None = None,
        idempotency_ttl: float = 86400.0,
    ) -> None:
        self.registry = registry
        self.database = database if database is not None else MemoryDatabase()
        self._sealer = Sealer(keyring) if keyring is not None else None
        self.idempotency_ttl = check_ttl(idempotency_ttl)
        self._pruner = Pruner(self._prune)
        self._opened = False
        self._head = 0
        self._changed = asyncio.Event()
        self._forgotten_generation = self.database.forgotten_generation
        self._inline_by_type: dict[str, list[ProjectionTarget]] = {}

    async def open(self) -> None:
        """Start using the database, and the background pruning of idempotency records.

        Raises:
            ConfigurationError: the stored data keys need a master key the keyring does not hold, or, without a
                keyring, the database holds sealed payloads.
        """
        db = self.database
        masters = {master_id for master_id, _ in db.keys.values() if master_id}
        if self._sealer is None:
            refuse_unkeyed(masters)
        else:
            self._sealer.keyring.master.require(masters)
            if REQUEST_KEY not in db.keys:
                db.keys[REQUEST_KEY] = self._sealer.keyring.create(REQUEST_KEY)
            self._sealer.use_request_key(db.keys[REQUEST_KEY])
        self._opened = True
        self._changed = asyncio.Event()
        self._head = db.head
        self._forgotten_generation = db.forgotten_generation
        db.listeners.add(self._on_commit)
        self._pruner.start()

    async def close(self) -> None:
        """Stop pruning and stop using the database (its data stays in it)."""
        await self._pruner.stop()
        self.database.listeners.discard(self._on_commit)
        self._opened = False
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
