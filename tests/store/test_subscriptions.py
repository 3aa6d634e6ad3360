"""Catch-up subscriptions: every event once, in order, stored ones first and then live ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from suite import Happened

from citadel.store.base import EventStore, RecordedEvent


async def take(subscription: AsyncIterator[RecordedEvent], count: int) -> list[int]:
    seen: list[int] = []
    async for record in subscription:
        seen.append(record.position)
        if len(seen) == count:
            break
    return seen


async def test_a_subscription_sees_stored_events_then_live_ones_exactly_once_in_order(store: EventStore) -> None:
    for i in range(30):
        await store.append(f"s{i % 3}", [Happened(n=i)])
    reader = asyncio.create_task(take(store.subscribe(), 130))
    await asyncio.sleep(0.05)
    await asyncio.gather(*(store.append(f"live{i % 7}", [Happened(n=i)]) for i in range(100)))
    seen = await asyncio.wait_for(reader, 10)
    assert seen == [r.position for r in await store.read_all(limit=1000)]
    assert len(seen) == 130


async def test_a_subscription_from_a_position_starts_there(store: EventStore) -> None:
    for i in range(10):
        await store.append("a", [Happened(n=i)])
    positions = [r.position for r in await store.read_all()]
    assert await asyncio.wait_for(take(store.subscribe(from_position=positions[7]), 3), 5) == positions[7:]


async def test_a_commit_wakes_a_waiter_at_once_instead_of_at_its_next_poll(store: EventStore) -> None:
    if hasattr(store, "poll_interval"):
        store.poll_interval = 60  # so only the commit notification can end the wait in time
    waiter = asyncio.create_task(store.wait_for_events(0, timeout=60))
    await asyncio.sleep(0.05)
    result = await store.append("a", [Happened(n=1)])
    assert await asyncio.wait_for(waiter, 5) == result.last_position


async def test_several_subscribers_each_see_every_event(store: EventStore) -> None:
    readers = [asyncio.create_task(take(store.subscribe(), 60)) for _ in range(3)]
    await asyncio.sleep(0.02)
    await asyncio.gather(*(store.append(f"s{i}", [Happened(n=i), Happened(n=i)]) for i in range(30)))
    everything = None
    for seen in await asyncio.wait_for(asyncio.gather(*readers), 10):
        everything = everything or [r.position for r in await store.read_all(limit=1000)]
        assert seen == everything
        assert len(seen) == 60


async def test_wait_for_events_returns_the_head_after_a_timeout_when_nothing_comes(store: EventStore) -> None:
    result = await store.append("a", [Happened(n=1)])
    assert await store.wait_for_events(0, timeout=0.01) == result.last_position
    assert await store.wait_for_events(result.last_position, timeout=0.01) == result.last_position
