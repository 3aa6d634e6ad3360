"""The SQLite store's dead letters (``DeadLetters``): parked with their error text sealed
(``citadel.store.dead_letters``), listed, counted, and resolved with a retried event's writes."""

from __future__ import annotations

from citadel.store.records import DeadLetter, RecordedEvent
from citadel.store.sqlite.base import SQLiteBase
from citadel.store.sqlite.jobs import CallJob, run_handler
from citadel.store.sqlite.records import dead_letters, park
from citadel.store.sqlite.transaction import WriteTransaction
from citadel.store.targets import ProjectionTarget

__all__ = ["SQLiteDeadLetters"]


class SQLiteDeadLetters(SQLiteBase):
    """Dead letters of ``SQLiteEventStore``."""

    async def add_dead_letter(self, consumer: str, record: RecordedEvent, error: str, attempts: int) -> None:
        """Park an event a consumer gave up on (its error text sealed, see ``citadel.store.dead_letters``)."""
        await self._writer.submit(CallJob(lambda tx: park(tx, self._sealer, consumer, record, error, attempts)))

    async def dead_letters(self, consumer: str | None = None) -> list[DeadLetter]:
        """Return parked events, oldest first."""
        self._notice_forgotten(self._db)
        return dead_letters(self._db, self._sealer, consumer)

    async def count_dead_letters(self) -> int:
        """Return how many events are parked."""
        return int(self._db.execute("SELECT count(*) FROM citadel_dead_letters").fetchone()[0])

    async def resolve_dead_letter(
        self, letter_id: int, projection: ProjectionTarget | None = None, record: RecordedEvent | None = None
    ) -> bool:
        """Delete a dead letter, applying its event to ``projection`` in the same transaction when given."""

        def resolve(tx: WriteTransaction) -> bool:
            if tx.db.execute("DELETE FROM citadel_dead_letters WHERE id = ?", (letter_id,)).rowcount == 0:
                return False
            if projection is not None and record is not None and projection.handles(record.type):
                run_handler(projection.apply(record, tx))
            return True

        resolved: bool = await self._writer.submit(CallJob(resolve))
        return resolved
