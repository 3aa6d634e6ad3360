"""Catch-up subscriptions over any event store: read what is stored, then wait for what comes next."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol

from citadel.errors import StoreError

if TYPE_CHECKING:
    from citadel.store.records import RecordedEvent

__all__ = ["Followable", "follow"]


class Followable(Protocol):
    """The part of a log that ``follow`` reads: pages of it, and waiting for its head to move."""

    async def read_all(self, from_position: int = 1, limit: int = 1000) -> list[RecordedEvent]:
        """Return up to ``limit`` events at ``from_position`` or later, in position order."""

    async def wait_for_events(self, after: int, timeout: float) -> int:
        """Wait until an event after ``after`` is committed or ``timeout`` passes; return the head."""


log = logging.getLogger("citadel.store")


async def follow(
    store: Followable, from_position: int = 1, *, page: int = 500, idle_timeout: float = 1.0
) -> AsyncIterator[RecordedEvent]:
    """Yield every event from ``from_position`` on, in position order, forever.

    Pages through the stored log, and when it has caught up waits on the store's commit notification (no
    polling delay for commits of this process; the store polls for those of others). When the store is
    unreachable (a database restart), it waits and resumes after the last event it yielded: a subscriber
    neither misses nor repeats an event across the outage.
    """
    position = from_position
    while True:
        try:
            records = await store.read_all(position, page)
        except StoreError as exc:
            log.warning("subscription paused, the store is unavailable: %s", exc)
            await asyncio.sleep(idle_timeout)
            continue
        for record in records:
            yield record
        if records:
            position = records[-1].position + 1
        if len(records) < page:
            try:
                await store.wait_for_events(position - 1, idle_timeout)
            except StoreError:
                await asyncio.sleep(idle_timeout)
