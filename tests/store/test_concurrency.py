"""Concurrent appends: optimistic concurrency inside batches, and batching itself."""

from __future__ import annotations

import asyncio

from suite import Happened

from citadel import NO_STREAM, ConcurrencyError, IdempotencyConflict
from citadel.store.base import Commit, EventStore, IdempotencyRecord, StreamAppend


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


async def test_a_commit_whose_idempotency_key_is_taken_fails_alone_while_its_batch_commits(store: EventStore) -> None:
    # The key is checked by storing it, after the job's events: the taken one must be undone alone.
    await store.commit(Commit([StreamAppend("first", [Happened(n=0)])], idempotency=IdempotencyRecord("k", "h", b"1")))
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


def record(suffix: object) -> IdempotencyRecord:
    return IdempotencyRecord("k" if suffix == "k" else f"key-{suffix}", "h", b"2")
