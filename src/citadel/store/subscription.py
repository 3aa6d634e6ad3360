"""Catch-up subscriptions over any event store: read what is stored, then wait for what comes next."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from citadel.store.base import EventStore, RecordedEvent

__all__ = ["follow"]


async def follow(
    store: EventStore, from_position: int = 1, *, page: int = 500, idle_timeout: float = 1.0
) -> AsyncIterator[RecordedEvent]:
    """Yield every event from ``from_position`` on, in position order, forever.

    Pages through the stored log, and when it has caught up waits on the store's commit notification
    (no polling delay for commits of this process; the store polls for those of others).
    """
    position = from_position
    while True:
        records = await store.read_all(position, page)
        for record in records:
            yield record
        if records:
            position = records[-1].position + 1
        if len(records) < page:
            await store.wait_for_events(position - 1, idle_timeout)
