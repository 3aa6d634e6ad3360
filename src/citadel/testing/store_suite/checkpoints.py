"""The checkpoints' conformance (``Checkpoints``): checkpoints that only move forward unless rewound, and
leases: one holder at a time, renewal, expiry and takeover, and fenced writes."""

from __future__ import annotations

import asyncio

import pytest

from citadel.errors import LeaseLost
from citadel.store.base import EventStore, Lease
from citadel.testing.store_suite.harness import Happened, StoreHarness
from citadel.testing.store_suite.views import bind, docs

__all__ = ["CheckpointsSuite"]


class CheckpointsSuite(StoreHarness):
    """Consumers' checkpoints and their leases."""

    async def test_checkpoints_are_absent_until_saved(self, store: EventStore) -> None:
        assert await store.checkpoint("reader") is None
        await store.save_checkpoint("reader", 7)
        await store.save_checkpoint("reader", 9)
        assert await store.checkpoint("reader") == 9

    async def test_a_checkpoint_never_moves_back_unless_rewound(self, store: EventStore) -> None:
        await store.save_checkpoint("reader", 9)
        await store.save_checkpoint("reader", 7)  # a late write of an older position
        assert await store.checkpoint("reader") == 9
        await store.rewind_checkpoint("reader", 3)
        assert await store.checkpoint("reader") == 3

    async def test_a_lease_has_one_holder_until_it_expires(self, store: EventStore) -> None:
        first, second = Lease("c", "a", ttl=0.2), Lease("c", "b", ttl=0.2)
        assert await store.acquire_lease(first)
        assert await store.acquire_lease(first)  # renewal
        assert not await store.acquire_lease(second)
        await asyncio.sleep(0.3)
        assert await store.acquire_lease(second)
        assert not await store.acquire_lease(first)

    async def test_a_released_lease_can_be_taken_at_once(self, store: EventStore) -> None:
        first, second = Lease("c", "a", ttl=60), Lease("c", "b", ttl=60)
        assert await store.acquire_lease(first)
        await store.release_lease(second)  # not the holder: no effect
        assert not await store.acquire_lease(second)
        await store.release_lease(first)
        assert await store.acquire_lease(second)

    async def test_a_fenced_checkpoint_write_fails_once_another_holder_took_over(self, store: EventStore) -> None:
        first, second = Lease("c", "a", ttl=0.1), Lease("c", "b", ttl=60)
        assert await store.acquire_lease(first)
        await store.save_checkpoint("c", 3, first)
        await asyncio.sleep(0.2)
        assert await store.acquire_lease(second)
        with pytest.raises(LeaseLost):
            await store.save_checkpoint("c", 9, first)
        assert await store.checkpoint("c") == 3

    async def test_a_fenced_projection_page_writes_nothing_without_the_lease(self, store: EventStore) -> None:
        result = await store.append("a", [Happened(n=1)])
        assert await store.acquire_lease(Lease("suite.items", "other", ttl=60))
        lease, records = Lease("suite.items", "me", ttl=60), await store.read_all()
        with pytest.raises(LeaseLost):
            await store.apply_projection(bind(store), records, result.last_position, lease)
        assert await docs(store) == {}
        assert await store.checkpoint("suite.items") is None
