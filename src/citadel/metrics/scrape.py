"""What the consumers of an application say, copied into the metrics: events processed and leases held (from
memory), lag and dead letters (from the store). ``GET /metrics`` (``citadel.http.scrape``) refreshes them when
scraped; in multiprocess mode each worker syncs them on a timer instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from citadel.errors import CitadelError
from citadel.metrics.registry import Metrics, multiprocess_dir

if TYPE_CHECKING:
    from citadel.app import Application

__all__ = ["ConsumerWatch"]


class ConsumerWatch:
    """Copies what an application's consumers hold in memory (events processed, leases held) into the metrics."""

    def __init__(self, application: Application, recorded: Metrics) -> None:
        self.application = application
        self.recorded = recorded
        self._seen: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()

    def sync(self) -> None:
        """Add each consumer's events processed since the last sync, and set its lease gauge."""
        recorded = self.recorded
        for name, consumer in self.application.consumers.items():
            processed = int(getattr(consumer, "processed", 0))
            before = self._seen.get(consumer, 0)
            if processed > before:
                recorded.consumer_processed.labels(name).inc(processed - before)
            self._seen[consumer] = processed
            recorded.consumer_lease.labels(name).set(1 if consumer.active else 0)

    async def refresh(self) -> None:
        """``sync``, then read each consumer's lag and the dead letters from the store.

        Raises:
            CitadelError: the store cannot be read.
        """
        self.sync()
        recorded = self.recorded
        for name, consumer in self.application.consumers.items():
            recorded.consumer_lag.labels(name).set(await consumer.lag())
        recorded.dead_letters.set(await self.application.store.count_dead_letters())

    @contextlib.asynccontextmanager
    async def syncing(self, interval: float, *, read_store: bool = False) -> AsyncIterator[None]:
        """Sync every ``interval`` seconds while inside (``read_store``: ``refresh``, for a process that answers
        no scrape), in multiprocess mode, where another process answers the scrape; a single process syncs when
        scraped."""
        if multiprocess_dir() is None:
            yield
            return

        async def loop() -> None:
            while True:
                if read_store:
                    with contextlib.suppress(CitadelError):  # the next round, or the scrape, tells
                        await self.refresh()
                else:
                    self.sync()
                await asyncio.sleep(interval)

        task = asyncio.create_task(loop())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
