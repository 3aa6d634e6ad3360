"""Leases: one holder at a time, renewal, expiry and takeover, and fenced writes."""

from __future__ import annotations

import asyncio

import pytest
from suite import Happened

from citadel.errors import LeaseLost
from citadel.store.base import EventStore, Lease


async def test_a_lease_has_one_holder_until_it_expires(store: EventStore) -> None:
    first, second = Lease("c", "a", ttl=0.2), Lease("c", "b", ttl=0.2)
    assert await store.acquire_lease(first)
    assert await store.acquire_lease(first)  # renewal
    assert not await store.acquire_lease(second)
    await asyncio.sleep(0.3)
    assert await store.acquire_lease(second)
    assert not await store.acquire_lease(first)


async def test_a_released_lease_can_be_taken_at_once(store: EventStore) -> None:
    first, second = Lease("c", "a", ttl=60), Lease("c", "b", ttl=60)
    assert await store.acquire_lease(first)
    await store.release_lease(second)  # not the holder: no effect
    assert not await store.acquire_lease(second)
    await store.release_lease(first)
    assert await store.acquire_lease(second)


async def test_a_fenced_checkpoint_write_fails_once_another_holder_took_over(store: EventStore) -> None:
    first, second = Lease("c", "a", ttl=0.1), Lease("c", "b", ttl=60)
    assert await store.acquire_lease(first)
    await store.save_checkpoint("c", 3, first)
    await asyncio.sleep(0.2)
    assert await store.acquire_lease(second)
    with pytest.raises(LeaseLost):
        await store.save_checkpoint("c", 9, first)
    assert await store.checkpoint("c") == 3


async def test_a_fenced_projection_page_writes_nothing_without_the_lease(store: EventStore) -> None:
    from test_views_and_projections import bind, docs

    result = await store.append("a", [Happened(n=1)])
    assert await store.acquire_lease(Lease("suite.items", "other", ttl=60))
    lease, records = Lease("suite.items", "me", ttl=60), await store.read_all()
    with pytest.raises(LeaseLost):
        await store.apply_projection(bind(store), records, result.last_position, lease)
    assert await docs(store) == {}
    assert await store.checkpoint("suite.items") is None
