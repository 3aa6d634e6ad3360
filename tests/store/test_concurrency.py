"""Concurrent appends: optimistic concurrency inside batches, and batching itself."""

from __future__ import annotations

import asyncio

from suite import Happened

from citadel import NO_STREAM, ConcurrencyError
from citadel.store.base import EventStore


async def test_200_concurrent_appends_expecting_the_same_version_of_one_stream_let_exactly_one_win(
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


async def test_200_concurrent_appends_to_different_streams_all_commit_in_a_few_transactions(store: EventStore) -> None:
    results = await asyncio.gather(*(store.append(f"s-{i}", [Happened(n=i)], NO_STREAM) for i in range(200)))
    records = await store.read_all(limit=1000)
    assert sorted(r.last_position for r in results) == [r.position for r in records]
    assert len(records) == 200
    # Every event of one transaction carries that transaction's timestamp.
    transactions = {r.recorded_at for r in records}
    assert len(transactions) <= 5


async def test_a_conflicting_append_fails_alone_while_its_batch_commits(store: EventStore) -> None:
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


async def test_concurrent_appends_to_one_stream_with_any_version_get_contiguous_versions(store: EventStore) -> None:
    await asyncio.gather(*(store.append("shared", [Happened(n=i), Happened(n=i)]) for i in range(100)))
    records = await store.read_stream("shared")
    assert [r.version for r in records] == list(range(1, 201))
    # the two events of each append stay adjacent
    assert all(records[i].event == records[i + 1].event for i in range(0, 200, 2))
