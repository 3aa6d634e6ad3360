"""Dead letters: the events consumers gave up on after their retries, retried or discarded by an operator
(``citadel dead-letters``, through ``Application.retry_dead_letter`` and ``Application.discard_dead_letter``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from citadel.consumer_set import ConsumerSet
from citadel.errors import ConfigurationError, NotFound
from citadel.store.base import DeadLetter, EventStore, RecordedEvent

if TYPE_CHECKING:
    from citadel.composition import Composition
    from citadel.placement import Placement

__all__ = ["discard_dead_letter", "retry_dead_letter"]


async def retry_dead_letter(
    letter_id: int,
    *,
    store: EventStore,
    composition: Composition,
    placement: Placement,
    consumers: ConsumerSet,
    retry_inbox: Callable[[str, int], Awaitable[None]],
) -> None:
    """Process a parked event again, as its consumer would, and remove it from the dead letters: a projection of
    ``composition`` applies it, a process manager of a module ``placement`` runs here reacts to it again (made
    by ``consumers``), and ``retry_inbox(consumer, sequence)`` imports an inbox's message again.

    Raises:
        NotFound: there is no such dead letter (or it was resolved meanwhile), or its event is no longer in the log.
        ConfigurationError: its consumer is not part of the composition or does not run here.
    """
    letter = await _find(store, letter_id)
    if letter.consumer.startswith("inbox:"):
        await retry_inbox(letter.consumer, letter.position)
        await store.resolve_dead_letter(letter_id)
        return
    record = await _parked_event(store, letter)
    binding = composition.projections.get(letter.consumer)
    if binding is not None:
        if not await store.resolve_dead_letter(letter_id, binding, record):
            raise NotFound(f"dead letter {letter_id} was resolved meanwhile")
        return
    for module in composition.modules.values():
        for manager in consumers.process_managers_of(module) if placement.runs(module.name) else ():
            if manager.name == letter.consumer:
                await manager.react(record)
                await store.resolve_dead_letter(letter_id)
                return
    raise ConfigurationError(f"consumer {letter.consumer!r} of dead letter {letter_id} does not run here")


async def discard_dead_letter(store: EventStore, letter_id: int) -> DeadLetter:
    """Remove a parked event without processing it; return what was removed.

    Raises:
        NotFound: there is no such dead letter.
    """
    letter = await _find(store, letter_id)
    if not await store.resolve_dead_letter(letter_id):
        raise NotFound(f"dead letter {letter_id} was resolved meanwhile")
    return letter


async def _find(store: EventStore, letter_id: int) -> DeadLetter:
    for letter in await store.dead_letters():
        if letter.id == letter_id:
            return letter
    raise NotFound(f"there is no dead letter {letter_id}; `citadel dead-letters list` shows them")


async def _parked_event(store: EventStore, letter: DeadLetter) -> RecordedEvent:
    records = await store.read_all(letter.position, 1)
    if not records or records[0].event_id != letter.event_id:
        raise NotFound(f"the event {letter.event_id} of dead letter {letter.id} is no longer in the log")
    return records[0]
