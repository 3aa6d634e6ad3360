"""The dead-letter port: events a consumer gave up on after retries, kept for an operator to retry or drop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from citadel.store.records import DeadLetter, RecordedEvent
    from citadel.store.targets import ProjectionTarget

__all__ = ["DeadLetters"]


class DeadLetters(Protocol):
    """Parked events: park, list, count and resolve."""

    async def add_dead_letter(self, consumer: str, record: RecordedEvent, error: str, attempts: int) -> None:
        """Park an event that ``consumer`` failed to process ``attempts`` times."""

    async def dead_letters(self, consumer: str | None = None) -> list[DeadLetter]:
        """Return the parked events, oldest first, optionally of one consumer only."""

    async def count_dead_letters(self) -> int:
        """Return how many events are parked (one cheap read, for readiness probes)."""

    async def resolve_dead_letter(
        self, letter_id: int, projection: ProjectionTarget | None = None, record: RecordedEvent | None = None
    ) -> bool:
        """Delete dead letter ``letter_id``; with ``projection`` and ``record``, apply the record to the projection
        in the same transaction (a retried event lands once, or stays parked). False when there was no such
        letter, and then nothing is applied."""
