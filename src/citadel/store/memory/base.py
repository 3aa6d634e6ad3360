"""What every part of the memory event store shares: its attributes, running a transaction, opening sealed
payloads, and waking waiters when the head moves.

Each port is a class of its own module built on ``MemoryBase`` (``event_log``, ``idempotency``, ``snapshots``,
``views``, ``checkpoints``, ``dead_letters``, ``keys``, ``migrations``), and ``MemoryEventStore`` (``store``) is
all of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TypeVar

from citadel.errors import StoreError
from citadel.messages import EventRegistry
from citadel.store.expiry import Pruner
from citadel.store.memory.database import EventRow, MemoryDatabase
from citadel.store.memory.transaction import MemoryTransaction
from citadel.store.records import RecordedEvent
from citadel.store.sealing import Sealer, refuse_sealed
from citadel.store.targets import ProjectionTarget

__all__ = ["MemoryBase"]

T = TypeVar("T")


class MemoryBase:
    """The state of ``MemoryEventStore`` that its ports share. The attributes below are set by
    ``MemoryEventStore.__init__`` and ``open``."""

    registry: EventRegistry
    database: MemoryDatabase
    idempotency_ttl: float
    _sealer: Sealer | None
    _opened: bool
    _head: int
    _changed: asyncio.Event
    _forgotten_generation: int
    _inline_by_type: dict[str, list[ProjectionTarget]]
    _pruner: Pruner

    @property
    def _db(self) -> MemoryDatabase:
        if not self._opened:
            raise StoreError("the event store is not open; call `await store.open()` first")
        return self.database

    def _write(self, work: Callable[[MemoryTransaction], T]) -> T:
        """Run ``work`` in a transaction: all of its writes, or (when it raises) none."""
        tx = MemoryTransaction(self._db)
        try:
            return work(tx)
        except BaseException:
            tx.rollback()
            raise

    def _records(self, rows: Iterable[EventRow]) -> list[RecordedEvent]:
        """Records of stored rows, their payloads opened (or, without a keyring, refused when sealed)."""
        registry = self.registry
        records = [RecordedEvent(*row[:11], row[12], registry=registry) for row in rows]
        sealer = self._sealer
        if sealer is None:
            refuse_sealed(records)
            return records
        if records:
            self._notice_forgotten()
            self._learn(sealer.sealed_keys(r.data for r in records))
            sealer.open_records(records)
        return records

    def _learn(self, key_ids: Iterable[str]) -> None:
        """Open the stored data keys among ``key_ids`` that the keyring does not know yet."""
        sealer = self._sealer
        if sealer is None:
            return
        keys = self._db.keys
        sealer.learn({key_id: keys[key_id] for key_id in sealer.missing(key_ids) if key_id in keys})

    def _notice_forgotten(self) -> None:
        """Drop every opened key when another store on the database has forgotten keys."""
        generation = self._db.forgotten_generation
        if self._sealer is not None and generation != self._forgotten_generation:
            self._sealer.keyring.clear()
        self._forgotten_generation = generation

    def _on_commit(self, head: int) -> None:
        if head > self._head:
            self._head = head
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

    def _inline_for(self, type_name: str) -> list[ProjectionTarget]:
        return self._inline_by_type.get(type_name, [])
