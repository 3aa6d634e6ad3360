"""The memory store's dead letters (``DeadLetters``): parked with their error text sealed
(``citadel.store.dead_letters``), listed, counted, and resolved with a retried event's writes."""

from __future__ import annotations

from citadel.store.dead_letters import letter_of, parked_error
from citadel.store.handlers import run_handler
from citadel.store.memory.base import MemoryBase
from citadel.store.memory.transaction import MemoryTransaction
from citadel.store.records import DeadLetter, RecordedEvent
from citadel.store.targets import ProjectionTarget

__all__ = ["MemoryDeadLetters"]


class MemoryDeadLetters(MemoryBase):
    """Dead letters of ``MemoryEventStore``."""

    async def add_dead_letter(self, consumer: str, record: RecordedEvent, error: str, attempts: int) -> None:
        """Park an event a consumer gave up on (its error text sealed, see ``citadel.store.dead_letters``)."""
        key_id = getattr(record, "key_id", None)
        if key_id is not None:
            self._learn([key_id])

        def park(tx: MemoryTransaction) -> None:
            text, sealed = parked_error(self._sealer, consumer, record, error)
            db = tx.db
            letter_id = db.next_letter
            db.next_letter = letter_id + 1
            tx.undo.append(lambda: setattr(db, "next_letter", letter_id))
            row = (letter_id, consumer, record.position, record.event_id, text, attempts, tx.now, sealed)
            tx.set(tx.db.dead_letters, letter_id, row)

        self._write(park)

    async def dead_letters(self, consumer: str | None = None) -> list[DeadLetter]:
        """Return parked events, oldest first."""
        rows = [row for _, row in sorted(self._db.dead_letters.items()) if consumer is None or row[1] == consumer]
        if self._sealer is not None:
            self._notice_forgotten()
            self._learn(self._sealer.sealed_keys(row[-1] for row in rows if row[-1] is not None))
        return [letter_of(self._sealer, row) for row in rows]

    async def count_dead_letters(self) -> int:
        """Return how many events are parked."""
        return len(self._db.dead_letters)

    async def resolve_dead_letter(
        self, letter_id: int, projection: ProjectionTarget | None = None, record: RecordedEvent | None = None
    ) -> bool:
        """Delete a dead letter, applying its event to ``projection`` in the same transaction when given."""

        def resolve(tx: MemoryTransaction) -> bool:
            if not tx.delete(tx.db.dead_letters, letter_id):
                return False
            if projection is not None and record is not None and projection.handles(record.type):
                run_handler(projection.apply(record, tx))
            return True

        return self._write(resolve)
