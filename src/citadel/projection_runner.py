"""Running projections: async projections follow the log; any projection can be rebuilt from zero."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from citadel.errors import StoreError
from citadel.messaging.consumer import Consumer, RetryPolicy
from citadel.projection import BoundProjection

if TYPE_CHECKING:
    from citadel.store.base import EventStore, RecordedEvent

__all__ = ["AsyncProjection", "Progress", "rebuild"]

Progress = Callable[[int, int], None]
"""Called with ``(position reached, target position)`` while a rebuild runs."""


class AsyncProjection(Consumer):
    """An async projection: applies each page of relevant events together with its checkpoint."""

    def __init__(self, binding: BoundProjection, store: EventStore, *, retry: RetryPolicy | None = None) -> None:
        super().__init__(binding.name, store, retry=retry)
        self.binding = binding

    async def process(self, records: Sequence[RecordedEvent]) -> None:
        binding, store = self.binding, self.store
        relevant = [r for r in records if binding.handles(r.type)]
        if not relevant:
            return
        last = records[-1].position
        try:
            await store.apply_projection(binding, relevant, last)
        except StoreError:
            raise
        except Exception:
            # One of the events fails: apply them one by one so only that one is retried and parked.
            for record in relevant:
                await self.attempt(
                    record,
                    lambda record=record: store.apply_projection(binding, [record], record.position),  # type: ignore[misc]
                )
            await store.save_checkpoint(self.name, last)
        self.saved_position = last


async def rebuild(
    binding: BoundProjection,
    store: EventStore,
    runner: AsyncProjection | None = None,
    *,
    progress: Progress | None = None,
    page: int = 1000,
) -> int:
    """Empty a projection's views and replay the whole log into them; return the position reached.

    An async projection is stopped, reset and restarted, and this waits until it has caught up with the head
    as it was at the reset. An inline projection is taken out of commits while it replays and put back, in
    one transaction with the events committed meanwhile, so no event is applied twice or missed.
    """
    if runner is not None:
        await runner.stop()
        target = await store.reset_projection(binding)
        await runner.start()
        while runner.position < target:
            await runner.wait_for(min(target, runner.position + page), 1.0)
            if progress is not None:
                progress(runner.position, target)
        return runner.position
    store.suspend_inline(binding)
    position = 0
    try:
        target = await store.reset_projection(binding)
        position = await replay(binding, store, 0, target, progress=progress, page=page)
    finally:
        await store.resume_inline(binding, position + 1)
    return position


async def replay(
    binding: BoundProjection,
    store: EventStore,
    after: int,
    target: int,
    *,
    progress: Progress | None = None,
    page: int = 1000,
) -> int:
    """Apply the log from ``after + 1`` up to ``target`` to a projection, a page per transaction."""
    position = after
    while position < target:
        records = await store.read_all(position + 1, min(page, target - position))
        if not records:
            break
        relevant = [r for r in records if binding.handles(r.type)]
        position = records[-1].position
        await store.apply_projection(binding, relevant, position)
        if progress is not None:
            progress(position, target)
    return position
