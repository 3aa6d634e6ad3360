"""The PostgreSQL store's dead letters (``DeadLetters``): parked with their error text sealed
(``citadel.store.dead_letters``), listed, counted, and resolved with a retried event's writes."""

from __future__ import annotations

from typing import Any

from citadel.store.postgres.base import PostgresBase
from citadel.store.postgres.records import dead_letters, park
from citadel.store.postgres.view_tables import ViewBuffer, apply_handler
from citadel.store.records import DeadLetter, RecordedEvent
from citadel.store.targets import ProjectionTarget

__all__ = ["PostgresDeadLetters"]


class PostgresDeadLetters(PostgresBase):
    """Dead letters of ``PostgresEventStore``."""

    async def dead_letters(self, consumer: str | None = None) -> list[DeadLetter]:
        """Return parked events, oldest first."""
        letters: list[DeadLetter] = await self._read(lambda c: dead_letters(c, self._sealer, consumer))
        return letters

    async def count_dead_letters(self) -> int:
        """Return how many events are parked."""
        rows = await self._fetch("SELECT count(*) FROM citadel.dead_letters")
        return int(rows[0][0])

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
