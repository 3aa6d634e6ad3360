"""The log's conformance (``EventLog``): streams and the global log, optimistic concurrency within a commit,
idempotency records, counting events after a position and reading the last ones.

On PostgreSQL a position is ``transaction id << 20 | index``: positions are not dense, so counts never subtract
positions. ``fill`` writes several events per transaction and several transactions.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from citadel.errors import ConcurrencyError, IdempotencyConflict
from citadel.store.base import NO_STREAM, Commit, EventStore, IdempotencyRecord, Metadata, StreamAppend
from citadel.testing.store_suite.harness import Happened, Noted, StoreHarness

__all__ = ["LogReadsSuite", "fill"]

SIZES = (3, 1, 4)
"""Events per transaction of ``fill``."""


async def fill(store: EventStore) -> list[int]:
    """Write three transactions of 3, 1 and 4 events (n = 1 to 8) over two streams; return their positions."""
    n = 0
    for size in SIZES:
        events = [Happened(n=n + k) for k in range(1, size + 1)]
        n += size
        half = size // 2
        await store.commit(Commit([StreamAppend("left", events[:half]), StreamAppend("right", events[half:])]))
    return [record.position for record in await store.read_all(1, 100)]


class LogReadsSuite(StoreHarness):
    """Appends, commits and reads of the log, idempotency records, counts and the last events."""

    async def test_append_numbers_versions_from_one_and_positions_across_streams(self, store: EventStore) -> None:
        first = await store.append("a", [Happened(n=1), Happened(n=2)], NO_STREAM)
        second = await store.append("b", [Happened(n=3)], NO_STREAM)
        assert (first.version, second.version) == (2, 1)
        # positions increase across streams (a backend may leave gaps between transactions)
        assert 0 < first.first_position < first.last_position < second.first_position == second.last_position
        assert [r.position for r in await store.read_all()] == [
            first.first_position,
            first.last_position,
            second.first_position,
        ]

    async def test_read_stream_returns_events_in_version_order_from_a_version(self, store: EventStore) -> None:
        await store.append("a", [Happened(n=1), Happened(n=2)], NO_STREAM)
        await store.append("b", [Happened(n=9)], NO_STREAM)
        await store.append("a", [Happened(n=3)], 2)
        records = await store.read_stream("a")
        assert [r.event for r in records] == [Happened(n=1), Happened(n=2), Happened(n=3)]
        assert [r.version for r in records] == [1, 2, 3]
        assert [r.version for r in await store.read_stream("a", from_version=2)] == [2, 3]
        assert await store.read_stream("missing") == []

    async def test_read_all_is_in_position_order_from_an_inclusive_position_with_a_limit(
        self, store: EventStore
    ) -> None:
        for n in range(5):
            await store.append(f"s{n % 2}", [Happened(n=n)])
        log = await store.read_all()
        assert [r.event.n for r in log] == [0, 1, 2, 3, 4]  # type: ignore[attr-defined]
        positions = [r.position for r in log]
        assert positions == sorted(set(positions))
        assert [r.position for r in await store.read_all(positions[2], limit=2)] == positions[2:4]
        assert await store.read_all(positions[-1] + 1) == []

    async def test_read_all_of_returns_the_page_s_events_of_some_types_and_where_the_page_ends(
        self, store: EventStore
    ) -> None:
        for n in range(6):
            await store.append(f"s{n}", [Happened(n=n) if n % 3 == 0 else Noted(text=str(n))])
        positions = [r.position for r in await store.read_all()]

        records, upto = await store.read_all_of({"suite.Happened"}, positions[0], 3)
        assert [r.event for r in records] == [Happened(n=0)]  # the page is the first 3 events, of any type
        assert upto == positions[2]
        records, upto = await store.read_all_of({"suite.Happened"}, upto + 1, 3)
        assert [r.event for r in records] == [Happened(n=3)]
        assert upto == positions[5]
        records, upto = await store.read_all_of({"suite.Noted"}, positions[4], 10)
        assert [r.event for r in records] == [Noted(text="4"), Noted(text="5")]
        assert upto == positions[5]
        assert await store.read_all_of({"suite.Noted"}, positions[0], 1) == ([], positions[0])  # none of the type
        assert await store.read_all_of(set(), positions[0], 10) == ([], positions[5])
        assert await store.read_all_of({"suite.Happened"}, positions[5] + 1) == ([], positions[5])  # nothing to read

    async def test_stream_version_and_head_position_track_appends(self, store: EventStore) -> None:
        assert await store.stream_version("a") == NO_STREAM
        assert await store.head_position() == 0
        result = await store.append("a", [Happened(n=1), Happened(n=2)])
        assert await store.stream_version("a") == 2
        assert await store.head_position() == result.last_position

    async def test_append_to_an_existing_stream_expecting_no_stream_fails_with_both_versions(
        self, store: EventStore
    ) -> None:
        await store.append("a", [Happened(n=1)], NO_STREAM)
        with pytest.raises(ConcurrencyError) as caught:
            await store.append("a", [Happened(n=2)], NO_STREAM)
        assert (caught.value.stream_id, caught.value.expected, caught.value.actual) == ("a", 0, 1)
        assert len(await store.read_stream("a")) == 1

    async def test_append_expecting_a_version_ahead_of_the_stream_fails(self, store: EventStore) -> None:
        await store.append("a", [Happened(n=1)])
        with pytest.raises(ConcurrencyError):
            await store.append("a", [Happened(n=2)], 5)
        assert await store.stream_version("a") == 1

    async def test_append_without_expected_version_appends_at_any_version(self, store: EventStore) -> None:
        await store.append("a", [Happened(n=1)])
        result = await store.append("a", [Happened(n=2)], None)
        assert result.version == 2

    async def test_every_stored_event_carries_its_metadata(self, store: EventStore) -> None:
        before = time.time()
        meta = Metadata(correlation_id="corr-1", causation_id="cause-1", actor="alice")
        await store.append("a", [Happened(n=1), Noted(text="x")], NO_STREAM, meta)
        first, second = await store.read_stream("a")
        assert (first.type, first.schema_version, second.type) == ("suite.Happened", 1, "suite.Noted")
        assert (first.correlation_id, first.causation_id, first.actor) == ("corr-1", "cause-1", "alice")
        assert first.event_id != second.event_id
        assert len(first.event_id) == 36
        assert before - 1 <= first.recorded_at <= time.time() + 1
        assert first.stream_id == "a"
        assert first.data == b'{"n":1}'

    async def test_every_event_keeps_the_traceparent_of_its_command_and_every_read_gives_it_back(
        self, store: EventStore
    ) -> None:
        traced, other = (f"00-{'ab' * 16}-{digit * 16}-01" for digit in "12")
        first = await store.append("a", [Happened(n=1), Happened(n=2)], NO_STREAM, Metadata(traceparent=traced))
        # Side by side (one batch where the store groups commits): traced, untraced, and a traced reaction.
        await asyncio.gather(
            store.append("b", [Happened(n=3)], NO_STREAM),
            store.append("c", [Noted(text="x")], NO_STREAM, Metadata(traceparent=other)),
            store.append("d", [Happened(n=4)], NO_STREAM, Metadata(causation_position=1, traceparent=other)),
        )
        expected = {"a": traced, "b": None, "c": other, "d": other}
        assert {r.stream_id: r.traceparent for r in await store.read_all(1, 100)} == expected
        assert [r.traceparent for r in await store.read_stream("a")] == [traced, traced]
        assert {r.stream_id: r.traceparent for r in await store.read_last(10)} == expected
        found, _ = await store.read_all_of(["suite.Noted"], first.first_position, 100)
        assert [r.traceparent for r in found] == [other]

    async def test_a_commit_with_one_conflicting_append_writes_none_of_its_appends(self, store: EventStore) -> None:
        taken = await store.append("taken", [Happened(n=1)], NO_STREAM)
        commit = Commit([StreamAppend("fresh", [Happened(n=2)], NO_STREAM), StreamAppend("taken", [Happened(n=3)], 0)])
        with pytest.raises(ConcurrencyError):
            await store.commit(commit)
        assert await store.read_stream("fresh") == []
        assert await store.head_position() == taken.last_position

    async def test_a_commit_stores_its_idempotency_record_with_the_last_position(self, store: EventStore) -> None:
        record = IdempotencyRecord("key-1", "hash", b'{"ok":true}')
        result = await store.commit(Commit([StreamAppend("a", [Happened(n=1), Happened(n=2)])], idempotency=record))
        stored = await store.idempotency_record("key-1")
        assert stored == IdempotencyRecord("key-1", "hash", b'{"ok":true}', result.position)
        assert result.position == result.appends[0].last_position > 0
        assert await store.idempotency_record("other") is None

    async def test_a_second_commit_with_a_stored_idempotency_key_fails_and_writes_nothing(
        self, store: EventStore
    ) -> None:
        record = IdempotencyRecord("key-1", "hash", b"null")
        await store.commit(Commit([StreamAppend("a", [Happened(n=1)])], idempotency=record))
        with pytest.raises(IdempotencyConflict):
            await store.commit(Commit([StreamAppend("b", [Happened(n=2)])], idempotency=record))
        assert await store.read_stream("b") == []

    async def test_count_after_counts_the_events_after_each_position(self, store: EventStore) -> None:
        positions = await fill(store)

        assert len(positions) == sum(SIZES)
        assert [await store.count_after(p) for p in [0, *positions]] == list(range(len(positions), -1, -1))

    async def test_count_after_a_position_between_events_counts_those_after_it(self, store: EventStore) -> None:
        positions = await fill(store)

        assert await store.count_after(positions[3] - 1) == len(positions) - 3
        assert await store.count_after(positions[-1] + (1 << 20)) == 0

    async def test_count_after_on_an_empty_log_is_zero(self, store: EventStore) -> None:
        assert await store.count_after(0) == 0

    @pytest.mark.parametrize("n", [1, 2, 4, 5, 8])
    async def test_read_last_returns_the_last_n_events_in_position_order(self, store: EventStore, n: int) -> None:
        positions = await fill(store)

        last = await store.read_last(n)

        assert [record.position for record in last] == positions[-n:]
        assert [record.event for record in last] == [Happened(n=k) for k in range(9 - n, 9)]

    async def test_read_last_of_more_events_than_the_log_holds_returns_them_all(self, store: EventStore) -> None:
        positions = await fill(store)

        assert [record.position for record in await store.read_last(100)] == positions

    async def test_read_last_of_none_or_of_an_empty_log_returns_nothing(self, store: EventStore) -> None:
        assert await store.read_last(3) == []
        await fill(store)
        assert await store.read_last(0) == []
