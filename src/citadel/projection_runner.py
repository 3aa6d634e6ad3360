"""Running projections: async projections follow the log; any projection can be rebuilt from zero."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from citadel.errors import StoreError
from citadel.messaging.consumer import Consumer, RetryPolicy
from citadel.projection import BoundProjection
from citadel.tracing import enabled, link_from, process_span

if TYPE_CHECKING:
    from citadel.store.base import EventStore, RecordedEvent

__all__ = ["AsyncProjection", "Progress", "rebuild"]

Progress = Callable[[int, int], None]
"""Called with ``(position reached, target position)`` while a rebuild runs."""


class AsyncProjection(Consumer):
    """An async projection: applies each page of relevant events together with its checkpoint."""

    def __init__(
        self,
        binding: BoundProjection,
        store: EventStore,
        *,
        owner: str,
        retry: RetryPolicy | None = None,
        lease_ttl: float = 5.0,
    ) -> None:
        super().__init__(binding.name, store, owner=owner, retry=retry, lease_ttl=lease_ttl)
        self.binding = binding
        self.types = frozenset(binding.event_types)

    async def process(self, records: Sequence[RecordedEvent], upto: int) -> None:
        binding, store, lease = self.binding, self.store, self.lease
        relevant = [r for r in records if binding.handles(r.type)]
        if not relevant:
            return
        last = upto
        try:
            if enabled():  # one CONSUMER span for the page, linked to the commands that wrote its events
                links = [link_from(r.traceparent) for r in relevant]
                with process_span("events", consumer=self.name, system="citadel", links=links, count=len(relevant)):
                    await store.apply_projection(binding, relevant, last, lease)
            else:
                await store.apply_projection(binding, relevant, last, lease)
        except StoreError:
            raise
        except Exception:
            # One of the events fails: apply them one by one so only that one is retried and parked.
            for record in relevant:
                if record.position <= self.saved_position:
                    continue
                await self.attempt(
                    record,
                    lambda record=record: store.apply_projection(binding, [record], record.position, lease),  # type: ignore[misc]
                )
            await store.save_checkpoint(self.name, last, lease)
        self.saved(last)


async def rebuild(
    binding: BoundProjection,
    store: EventStore,
    runner: AsyncProjection | None = None,
    *,
    progress: Progress | None = None,
    owner: str = "rebuild",
) -> int:
    """Empty a projection's views and replay the whole log into them; return the position reached.

    An inline projection is rebuilt in one transaction: no commit, of this process or another, can
    interleave. An async projection is reset (views, checkpoint and lease, atomically) and replayed by
    whichever process takes its lease next; this waits until the replay reaches the head as it was at the
    reset. Without a ``runner`` of its own (a command-line rebuild), it runs one while it waits, so the replay
    happens even when no server is running.
    """
    if binding.inline:
        return await store.rebuild_inline(binding, progress)
    target = await store.reset_projection(binding)
    helper = None
    if runner is None:
        helper = AsyncProjection(binding, store, owner=owner)
        await helper.start()
    else:
        runner.nudge()
    try:
        while True:
            reached = await store.checkpoint(binding.name) or 0
            if progress is not None:
                progress(min(reached, target), target)
            if reached >= target:
                return reached
            await asyncio.sleep(0.05)
    finally:
        if helper is not None:
            await helper.stop()
