"""The log's conformance under concurrency (``EventLog``): concurrent appends and commits, subscriptions that
see every event once, waiting for the head, and reaction chains."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from citadel.errors import ConcurrencyError, IdempotencyConflict
from citadel.store.base import NO_STREAM, Commit, EventStore, IdempotencyRecord, Metadata, RecordedEvent, StreamAppend
from citadel.testing.store_suite.harness import Happened, StoreHarness

__all__ = ["ConcurrencySuite", "ReactionChainsSuite", "SubscriptionsSuite"]


def record(suffix: object) -> IdempotencyRecord:
    return IdempotencyRecord("k" if suffix == "k" else f"key-{suffix}", "h", b"2")


async def take(subscription: AsyncIterator[RecordedEvent], count: int) -> list[int]:
    seen: list[int] = []
    async for record in subscription:
        seen.append(record.position)
        if len(seen) == count:
            break
    return seen


async def write(store: EventStore, causes: list[int | None]) -> list[int]:
    """Append one event per entry, the n-th caused by the event at index ``causes[n]`` (None: by no event);
    return their positions."""
    positions: list[int] = []
    for n, cause in enumerate(causes):
        meta = Metadata(causation_position=0 if cause is None else positions[cause])
        positions.append((await store.append(f"s-{n}", [Happened(n=n)], NO_STREAM, meta)).last_position)
    return positions


class ConcurrencySuite(StoreHarness):
    """Concurrent appends and commits: optimistic concurrency, and one failure failing alone."""

    async def test_200_concurrent_appends_expecting_the_same_version_of_one_stream_let_exactly_one_win(
        self,
        store: EventStore,
    ) -> None:
        results = await asyncio.gather(
            *(store.append("hot", [Happened(n=i)], NO_STREAM) for i in range(200)), return_exceptions=True
        )
        winners = [r for r in results if not isinstance(r, BaseException)]
        losers = [r for r in results if isinstance(r, BaseException)]
        assert len(winners) == 1
        assert len(losers) == 199
        assert all(isinstance(e, ConcurrencyError) for e in losers)
        assert await store.stream_version("hot") == 1
        assert await store.head_position() == winners[0].last_position

    async def test_a_conflicting_append_fails_alone_while_its_batch_commits(self, store: EventStore) -> None:
        taken = await store.append("taken", [Happened(n=0)], NO_STREAM)
        appends = [store.append(f"free-{i}", [Happened(n=i)], NO_STREAM) for i in range(50)]
        appends.insert(25, store.append("taken", [Happened(n=-1)], NO_STREAM))
        results = await asyncio.gather(*appends, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        assert len(failures) == 1
        assert isinstance(failures[0], ConcurrencyError)
        assert len(await store.read_all(limit=1000)) == 51
        assert await store.head_position() == max(
            r.last_position for r in [taken, *results] if not isinstance(r, BaseException)
        )
        assert len(await store.read_stream("taken")) == 1

    async def test_concurrent_appends_to_one_stream_with_any_version_get_contiguous_versions(
        self, store: EventStore
    ) -> None:
        await asyncio.gather(*(store.append("shared", [Happened(n=i), Happened(n=i)]) for i in range(100)))
        records = await store.read_stream("shared")
        assert [r.version for r in records] == list(range(1, 201))
        # the two events of each append stay adjacent
        assert all(records[i].event == records[i + 1].event for i in range(0, 200, 2))

    async def test_a_commit_whose_idempotency_key_is_taken_fails_alone_while_its_batch_commits(
        self, store: EventStore
    ) -> None:
        # The key is checked by storing it, after the job's events: the taken one must be undone alone.
        await store.commit(
            Commit([StreamAppend("first", [Happened(n=0)])], idempotency=IdempotencyRecord("k", "h", b"1"))
        )
        commits = [
            store.commit(Commit([StreamAppend(f"free-{i}", [Happened(n=i)], NO_STREAM)], idempotency=record(i)))
            for i in range(30)
        ]
        commits.insert(
            15, store.commit(Commit([StreamAppend("twin", [Happened(n=-1)], NO_STREAM)], idempotency=record("k")))
        )
        results = await asyncio.gather(*commits, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        assert len(failures) == 1
        assert isinstance(failures[0], IdempotencyConflict)
        assert await store.read_stream("twin") == []
        assert len(await store.read_all(limit=1000)) == 31
        stored = await store.idempotency_record("k")
        assert stored is not None
        assert stored.result == b"1"
        for i in range(30):
            kept = await store.idempotency_record(f"key-{i}")
            assert kept is not None
            assert kept.position == (await store.read_stream(f"free-{i}"))[0].position


class SubscriptionsSuite(StoreHarness):
    """Catch-up subscriptions: every event once, in order, stored ones first and then live ones."""

    async def test_a_subscription_sees_stored_events_then_live_ones_exactly_once_in_order(
        self, store: EventStore
    ) -> None:
        for i in range(30):
            await store.append(f"s{i % 3}", [Happened(n=i)])
        reader = asyncio.create_task(take(store.subscribe(), 130))
        await asyncio.sleep(0.05)
        await asyncio.gather(*(store.append(f"live{i % 7}", [Happened(n=i)]) for i in range(100)))
        seen = await asyncio.wait_for(reader, 10)
        assert seen == [r.position for r in await store.read_all(limit=1000)]
        assert len(seen) == 130

    async def test_a_subscription_from_a_position_starts_there(self, store: EventStore) -> None:
        for i in range(10):
            await store.append("a", [Happened(n=i)])
        positions = [r.position for r in await store.read_all()]
        assert await asyncio.wait_for(take(store.subscribe(from_position=positions[7]), 3), 5) == positions[7:]

    async def test_a_commit_wakes_a_waiter_at_once_instead_of_at_its_next_poll(self, store: EventStore) -> None:
        if hasattr(store, "poll_interval"):
            store.poll_interval = 60  # so only the commit notification can end the wait in time
        waiter = asyncio.create_task(store.wait_for_events(0, timeout=60))
        await asyncio.sleep(0.05)
        result = await store.append("a", [Happened(n=1)])
        assert await asyncio.wait_for(waiter, 5) == result.last_position

    async def test_several_subscribers_each_see_every_event(self, store: EventStore) -> None:
        readers = [asyncio.create_task(take(store.subscribe(), 60)) for _ in range(3)]
        await asyncio.sleep(0.02)
        await asyncio.gather(*(store.append(f"s{i}", [Happened(n=i), Happened(n=i)]) for i in range(30)))
        everything = None
        for seen in await asyncio.wait_for(asyncio.gather(*readers), 10):
            everything = everything or [r.position for r in await store.read_all(limit=1000)]
            assert seen == everything
            assert len(seen) == 60

    async def test_wait_for_events_returns_the_head_after_a_timeout_when_nothing_comes(self, store: EventStore) -> None:
        result = await store.append("a", [Happened(n=1)])
        assert await store.wait_for_events(0, timeout=0.01) == result.last_position
        assert await store.wait_for_events(result.last_position, timeout=0.01) == result.last_position


class ReactionChainsSuite(StoreHarness):
    """The position of the event a reaction's commit answers, and where reaction chains end."""

    @pytest.mark.parametrize(
        ("causes", "start", "after", "end"),
        [
            ([None, None], 0, 0, None),
            ([None, 0, 1, 2], 0, 0, 3),
            ([None, 0, 1, 2], 0, 2, 3),
            ([None, 0, 1, 2], 0, 3, None),
            ([None, None, 0, 1], 1, 1, 3),
            ([None, None, 1, 2, 0], 0, 0, 4),
            ([None, None, 0, 1, None, 4], 1, 1, 3),
            ([None, 0, None, 2, 1], 0, 0, 4),
        ],
        ids=[
            "no reactions",
            "a chain",
            "a chain from part way",
            "nothing after the chain",
            "chains from the start and before it",
            "another chain in between is not this one",
            "a chain that starts after the position",
            "a chain that continues after another",
        ],
    )
    async def test_the_chains_end_at_the_last_event_whose_causes_lead_back_to_the_start(
        self, store: EventStore, causes: list[int | None], start: int, after: int, end: int | None
    ) -> None:
        positions = await write(store, causes)
        assert await store.chain_end(positions[start], positions[after]) == (0 if end is None else positions[end])

    async def test_every_event_of_a_reaction_s_commit_is_part_of_its_chain(self, store: EventStore) -> None:
        cause = await store.append("order", [Happened(n=1)], NO_STREAM)
        meta = Metadata(causation_position=cause.last_position)
        reaction = await store.append("invoice", [Happened(n=2), Happened(n=3)], NO_STREAM, meta)
        assert await store.chain_end(cause.last_position, cause.last_position) == reaction.last_position
        assert await store.chain_end(cause.last_position, reaction.first_position) == reaction.last_position

    async def test_commits_written_together_keep_their_own_causes(self, store: EventStore) -> None:
        cause = await store.append("a", [Happened(n=0)], NO_STREAM)
        other = await store.append("b", [Happened(n=0)], NO_STREAM)
        commits = [
            Commit(
                [StreamAppend(f"s-{n}", [Happened(n=n)], NO_STREAM)],
                Metadata(causation_position=cause.last_position if n == 1 else other.last_position),
            )
            for n in range(1, 21)
        ]
        results = await asyncio.gather(*(store.commit(c) for c in commits))  # one group commit, or a few
        assert await store.chain_end(cause.last_position, other.last_position) == results[0].position
