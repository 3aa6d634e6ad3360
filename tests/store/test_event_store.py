"""The event store contract, for every backend: streams, the log, concurrency, metadata, atomic commits."""

from __future__ import annotations

import time

import pytest
from suite import Happened, Noted

from citadel import NO_STREAM, ConcurrencyError, IdempotencyConflict, Metadata
from citadel.store.base import Commit, EventStore, IdempotencyRecord, Snapshot, StreamAppend


async def test_append_numbers_versions_from_one_and_positions_across_streams(store: EventStore) -> None:
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


async def test_read_stream_returns_events_in_version_order_from_a_version(store: EventStore) -> None:
    await store.append("a", [Happened(n=1), Happened(n=2)], NO_STREAM)
    await store.append("b", [Happened(n=9)], NO_STREAM)
    await store.append("a", [Happened(n=3)], 2)
    records = await store.read_stream("a")
    assert [r.event for r in records] == [Happened(n=1), Happened(n=2), Happened(n=3)]
    assert [r.version for r in records] == [1, 2, 3]
    assert [r.version for r in await store.read_stream("a", from_version=2)] == [2, 3]
    assert await store.read_stream("missing") == []


async def test_read_all_is_in_position_order_from_an_inclusive_position_with_a_limit(store: EventStore) -> None:
    for n in range(5):
        await store.append(f"s{n % 2}", [Happened(n=n)])
    log = await store.read_all()
    assert [r.event.n for r in log] == [0, 1, 2, 3, 4]  # type: ignore[attr-defined]
    positions = [r.position for r in log]
    assert positions == sorted(set(positions))
    assert [r.position for r in await store.read_all(positions[2], limit=2)] == positions[2:4]
    assert await store.read_all(positions[-1] + 1) == []


async def test_read_all_of_returns_the_page_s_events_of_some_types_and_where_the_page_ends(store: EventStore) -> None:
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


async def test_stream_version_and_head_position_track_appends(store: EventStore) -> None:
    assert await store.stream_version("a") == NO_STREAM
    assert await store.head_position() == 0
    result = await store.append("a", [Happened(n=1), Happened(n=2)])
    assert await store.stream_version("a") == 2
    assert await store.head_position() == result.last_position


async def test_append_to_an_existing_stream_expecting_no_stream_fails_with_both_versions(store: EventStore) -> None:
    await store.append("a", [Happened(n=1)], NO_STREAM)
    with pytest.raises(ConcurrencyError) as caught:
        await store.append("a", [Happened(n=2)], NO_STREAM)
    assert (caught.value.stream_id, caught.value.expected, caught.value.actual) == ("a", 0, 1)
    assert len(await store.read_stream("a")) == 1


async def test_append_expecting_a_version_ahead_of_the_stream_fails(store: EventStore) -> None:
    await store.append("a", [Happened(n=1)])
    with pytest.raises(ConcurrencyError):
        await store.append("a", [Happened(n=2)], 5)
    assert await store.stream_version("a") == 1


async def test_append_without_expected_version_appends_at_any_version(store: EventStore) -> None:
    await store.append("a", [Happened(n=1)])
    result = await store.append("a", [Happened(n=2)], None)
    assert result.version == 2


async def test_every_stored_event_carries_its_metadata(store: EventStore) -> None:
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


async def test_a_commit_with_one_conflicting_append_writes_none_of_its_appends(store: EventStore) -> None:
    taken = await store.append("taken", [Happened(n=1)], NO_STREAM)
    commit = Commit([StreamAppend("fresh", [Happened(n=2)], NO_STREAM), StreamAppend("taken", [Happened(n=3)], 0)])
    with pytest.raises(ConcurrencyError):
        await store.commit(commit)
    assert await store.read_stream("fresh") == []
    assert await store.head_position() == taken.last_position


async def test_a_commit_stores_its_idempotency_record_with_the_last_position(store: EventStore) -> None:
    record = IdempotencyRecord("key-1", "hash", b'{"ok":true}')
    result = await store.commit(Commit([StreamAppend("a", [Happened(n=1), Happened(n=2)])], idempotency=record))
    stored = await store.idempotency_record("key-1")
    assert stored == IdempotencyRecord("key-1", "hash", b'{"ok":true}', result.position)
    assert result.position == result.appends[0].last_position > 0
    assert await store.idempotency_record("other") is None


async def test_a_second_commit_with_a_stored_idempotency_key_fails_and_writes_nothing(store: EventStore) -> None:
    record = IdempotencyRecord("key-1", "hash", b"null")
    await store.commit(Commit([StreamAppend("a", [Happened(n=1)])], idempotency=record))
    with pytest.raises(IdempotencyConflict):
        await store.commit(Commit([StreamAppend("b", [Happened(n=2)])], idempotency=record))
    assert await store.read_stream("b") == []


async def test_snapshots_are_stored_with_a_commit_and_the_latest_is_loaded(store: EventStore) -> None:
    await store.commit(Commit([StreamAppend("a", [Happened(n=1)])], snapshots=[Snapshot("a", 1, 1, b"{}")]))
    await store.commit(Commit([StreamAppend("a", [Happened(n=2)])], snapshots=[Snapshot("a", 2, 3, b"[2]")]))
    assert await store.load_snapshot("a") == Snapshot("a", 2, 3, b"[2]")
    assert await store.load_snapshot("b") is None


async def test_checkpoints_are_absent_until_saved(store: EventStore) -> None:
    assert await store.checkpoint("reader") is None
    await store.save_checkpoint("reader", 7)
    await store.save_checkpoint("reader", 9)
    assert await store.checkpoint("reader") == 9


async def test_dead_letters_keep_the_event_and_the_error(store: EventStore) -> None:
    await store.append("a", [Happened(n=1)])
    (record,) = await store.read_all()
    await store.add_dead_letter("billing.pm", record, "ValueError: boom", 5)
    (letter,) = await store.dead_letters("billing.pm")
    assert (letter.consumer, letter.position, letter.event_id, letter.error, letter.attempts) == (
        "billing.pm",
        record.position,
        record.event_id,
        "ValueError: boom",
        5,
    )
    assert await store.dead_letters("other") == []


async def test_counting_dead_letters_counts_every_consumer_s_and_drops_resolved_ones(store: EventStore) -> None:
    assert await store.count_dead_letters() == 0
    await store.append("a", [Happened(n=1), Happened(n=2)])
    first, second = await store.read_all()
    await store.add_dead_letter("billing.pm", first, "ValueError: boom", 5)
    await store.add_dead_letter("orders.pm", second, "ValueError: boom", 5)
    assert await store.count_dead_letters() == 2
    (letter, _) = await store.dead_letters()
    assert await store.resolve_dead_letter(letter.id)
    assert await store.count_dead_letters() == 1


async def test_a_checkpoint_never_moves_back_unless_rewound(store: EventStore) -> None:
    await store.save_checkpoint("reader", 9)
    await store.save_checkpoint("reader", 7)  # a late write of an older position
    assert await store.checkpoint("reader") == 9
    await store.rewind_checkpoint("reader", 3)
    assert await store.checkpoint("reader") == 3
