"""The dead letters' conformance (``DeadLetters``) and the snapshots' (``Snapshots``)."""

from __future__ import annotations

from citadel.store.base import Commit, EventStore, Snapshot, StreamAppend
from citadel.testing.store_suite.harness import Happened, StoreHarness

__all__ = ["DeadLettersSuite", "SnapshotsSuite"]


class DeadLettersSuite(StoreHarness):
    """Parked events: kept with their error, counted, resolved."""

    async def test_dead_letters_keep_the_event_and_the_error(self, store: EventStore) -> None:
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

    async def test_counting_dead_letters_counts_every_consumer_s_and_drops_resolved_ones(
        self, store: EventStore
    ) -> None:
        assert await store.count_dead_letters() == 0
        await store.append("a", [Happened(n=1), Happened(n=2)])
        first, second = await store.read_all()
        await store.add_dead_letter("billing.pm", first, "ValueError: boom", 5)
        await store.add_dead_letter("orders.pm", second, "ValueError: boom", 5)
        assert await store.count_dead_letters() == 2
        (letter, _) = await store.dead_letters()
        assert await store.resolve_dead_letter(letter.id)
        assert await store.count_dead_letters() == 1


class SnapshotsSuite(StoreHarness):
    """Snapshots stored with a commit."""

    async def test_snapshots_are_stored_with_a_commit_and_the_latest_is_loaded(self, store: EventStore) -> None:
        await store.commit(Commit([StreamAppend("a", [Happened(n=1)])], snapshots=[Snapshot("a", 1, 1, b"{}")]))
        await store.commit(Commit([StreamAppend("a", [Happened(n=2)])], snapshots=[Snapshot("a", 2, 3, b"[2]")]))
        assert await store.load_snapshot("a") == Snapshot("a", 2, 3, b"[2]")
        assert await store.load_snapshot("b") is None
