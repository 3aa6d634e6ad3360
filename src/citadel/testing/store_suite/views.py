"""The views' conformance (``ViewStore``, with ``Checkpoints`` for projections): inline projections written in
their commit, indexed finds, unique fields, projection pages with their checkpoint, rebuilds, and increments that
add up as if each had been written in turn."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from citadel.errors import LeaseLost, UniqueViolation
from citadel.projection import BoundProjection, ProjectionContext, Projector
from citadel.store.base import NO_STREAM, EventStore, Lease
from citadel.testing.store_suite.harness import ITEMS, Happened, Noted, StoreHarness
from citadel.views import View

__all__ = ["COUNTERS", "ViewStoreSuite", "bind", "counters", "docs", "project_inline"]


class Items(Projector):
    def __init__(self) -> None:
        super().__init__("suite.items", views=[ITEMS])

    def handle_happened(self, event: Happened, ctx: ProjectionContext) -> None:
        view = ctx.view(ITEMS)
        view.put(
            f"item-{event.n}", {"n": event.n, "colour": "red" if event.n % 2 else "blue", "sku": f"sku-{event.n % 10}"}
        )
        view.increment("totals", "count")

    async def handle_noted(self, event: Noted, ctx: ProjectionContext) -> None:
        view = ctx.view(ITEMS)
        current = await view.get("item-1")  # reads see this transaction's own writes
        view.put("note", {"text": event.text, "seen": current is not None})


def bind(store: EventStore) -> BoundProjection:
    return BoundProjection(Items(), "suite", store.registry)


async def docs(store: EventStore) -> dict[str, Any]:
    reader = store.view_reader(ITEMS)
    rows = await reader.find(limit=1000)
    return {str(r.get("sku") or r.get("text") or "totals"): r for r in rows}


class Counts(Projector):
    """Counts events twice over and notes what it reads back in the middle; fails on event 13."""

    def __init__(self) -> None:
        super().__init__("suite.counts", views=[ITEMS])

    async def handle_happened(self, event: Happened, ctx: ProjectionContext) -> None:
        view = ctx.view(ITEMS)
        view.increment("totals", "count")
        view.increment("totals", "sum", event.n)
        if event.n == 3:
            view.put("middle", {"text": "middle", "seen": await view.get("totals")})
        if event.n == 13:
            raise ValueError("thirteen")


COUNTERS = View("counters")
COUNTERS.bind("suite")


class Counters(Projector):
    """Counts events; event 13 fails after counting, 50 replaces the totals, 60 deletes them, 70 adds a float."""

    def __init__(self) -> None:
        super().__init__("suite.counters", views=[COUNTERS])

    async def handle_happened(self, event: Happened, ctx: ProjectionContext) -> None:
        view = ctx.view(COUNTERS)
        n = event.n
        if n == 50:
            view.put("totals", {"count": 100, "seen": await view.get("totals")})
        elif n == 60:
            view.delete("totals")
        elif n == 70:
            view.increment("totals", "share", 0.1)
        view.increment("totals", "count")
        view.increment("totals", "sum", n)
        view.increment(f"parity-{n % 2}", "count")
        if n == 13:
            raise ValueError("thirteen")


async def counters(store: EventStore) -> dict[str, Any]:
    reader = store.view_reader(COUNTERS)
    return {key: await reader.get(key) for key in ("totals", "parity-0", "parity-1")}


async def project_inline(store: EventStore) -> None:
    await store.ensure_views([COUNTERS])
    store.add_inline_projection(BoundProjection(Counters(), "suite", store.registry))


class ViewStoreSuite(StoreHarness):
    """Views written inside store transactions: inline with commits, or in pages with a checkpoint."""

    async def test_an_inline_projection_is_written_in_the_same_commit_as_the_events(self, store: EventStore) -> None:
        store.add_inline_projection(bind(store))
        await store.append("a", [Happened(n=1), Happened(n=2), Noted(text="hi")])
        reader = store.view_reader(ITEMS)
        assert await reader.get("item-1") == {"n": 1, "colour": "red", "sku": "sku-1"}
        assert await reader.get("totals") == {"count": 2}
        assert await reader.get("note") == {"text": "hi", "seen": True}

    async def test_find_and_count_filter_on_indexed_fields(self, store: EventStore) -> None:
        store.add_inline_projection(bind(store))
        await store.append("a", [Happened(n=i) for i in range(1, 8)])
        reader = store.view_reader(ITEMS)
        assert [d["n"] for d in await reader.find(colour="red")] == [1, 3, 5, 7]
        assert await reader.count(colour="blue") == 3
        assert len(await reader.find(colour="red", limit=2)) == 2

    async def test_find_on_a_field_without_an_index_is_refused_with_the_fix(self, store: EventStore) -> None:
        with pytest.raises(ValueError, match="indexes"):
            await store.view_reader(ITEMS).find(n=1)

    async def test_a_unique_violation_in_an_inline_projection_rolls_back_its_commit_only(
        self, store: EventStore
    ) -> None:
        store.add_inline_projection(bind(store))
        await store.append("a", [Happened(n=1)], NO_STREAM)
        # item 11 has sku-1 too, under another key: the unique sku breaks
        with pytest.raises(UniqueViolation):
            await store.append("b", [Happened(n=2), Happened(n=11)], NO_STREAM)
        assert await store.read_stream("b") == []
        assert await store.view_reader(ITEMS).get("item-2") is None
        assert await store.view_reader(ITEMS).get("item-1") is not None
        await store.append("c", [Happened(n=3)], NO_STREAM)
        assert len(await store.read_all()) == 2
        assert (await docs(store))["totals"] == {"count": 2}  # the failed commit's first increment is gone too

    async def test_apply_projection_writes_views_and_checkpoint_together(self, store: EventStore) -> None:
        result = await store.append("a", [Happened(n=1), Happened(n=2)])
        projection = bind(store)
        await store.apply_projection(projection, await store.read_all(), result.last_position)
        assert await store.checkpoint("suite.items") == result.last_position
        assert (await docs(store))["totals"] == {"count": 2}

    async def test_a_failing_handler_leaves_neither_views_nor_checkpoint(self, store: EventStore) -> None:
        first = await store.append("a", [Happened(n=1)])
        projection = bind(store)
        await store.apply_projection(projection, await store.read_all(), first.last_position)
        second = await store.append("b", [Happened(n=11)])  # same sku under a new key: the handler fails
        with pytest.raises(UniqueViolation):
            await store.apply_projection(projection, await store.read_all(second.first_position), second.last_position)
        assert await store.checkpoint("suite.items") == first.last_position
        assert (await docs(store))["totals"] == {"count": 1}

    async def test_reset_projection_empties_its_views_and_checkpoint(self, store: EventStore) -> None:
        result = await store.append("a", [Happened(n=1)])
        projection = bind(store)
        await store.apply_projection(projection, await store.read_all(), result.last_position)
        assert await store.reset_projection(projection) == result.last_position
        assert await docs(store) == {}
        assert await store.checkpoint("suite.items") == 0

    async def test_rebuilding_an_inline_projection_replays_the_log_into_emptied_views(self, store: EventStore) -> None:
        projection = bind(store)
        store.add_inline_projection(projection)
        await store.append("a", [Happened(n=1), Happened(n=2)])
        await store.view_reader(ITEMS).count()  # views exist
        seen: list[tuple[int, int]] = []
        head = await store.head_position()
        assert await store.rebuild_inline(projection, lambda done, total: seen.append((done, total))) == head
        assert (await docs(store))["totals"] == {"count": 2}
        await asyncio.sleep(0)  # progress is reported on the event loop
        assert seen[-1] == (head, head)
        await store.append("c", [Happened(n=3)])  # still inline afterwards
        assert (await docs(store))["totals"] == {"count": 3}

    async def test_resetting_a_projection_takes_its_lease_away(self, store: EventStore) -> None:
        lease = Lease("suite.items", "node-a", ttl=60)
        assert await store.acquire_lease(lease)
        assert not await store.acquire_lease(Lease("suite.items", "node-b", ttl=60))
        await store.reset_projection(bind(store))
        assert await store.acquire_lease(Lease("suite.items", "node-b", ttl=60))
        with pytest.raises(LeaseLost):
            await store.save_checkpoint("suite.items", 5, lease)

    async def test_a_commit_whose_projection_fails_in_a_busy_batch_fails_alone(self, store: EventStore) -> None:
        store.add_inline_projection(bind(store))
        await store.append("first", [Happened(n=1)], NO_STREAM)
        # ten concurrent commits share batches; the one that repeats sku-1 (n=11) breaks the unique field
        results = await asyncio.gather(
            *(store.append(f"s-{n}", [Happened(n=n)], NO_STREAM) for n in range(2, 12)), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        assert len(failures) == 1
        assert isinstance(failures[0], UniqueViolation)
        assert await store.read_stream("s-11") == []
        assert len(await store.read_all(limit=100)) == 10
        assert (await docs(store))["totals"] == {"count": 10}

    async def test_increments_are_added_up_and_read_back_as_if_each_had_been_written(self, store: EventStore) -> None:
        result = await store.append("a", [Happened(n=n) for n in range(1, 6)])
        projection = BoundProjection(Counts(), "suite", store.registry)
        await store.apply_projection(projection, await store.read_all(), result.last_position)
        assert (await docs(store))["totals"] == {"count": 5, "sum": 15}
        assert (await docs(store))["middle"]["seen"] == {"count": 3, "sum": 6}
        assert await store.checkpoint("suite.counts") == result.last_position

    async def test_the_increments_of_a_failing_handler_are_neither_written_nor_left_to_the_next_job(
        self,
        store: EventStore,
    ) -> None:
        store.add_inline_projection(BoundProjection(Counts(), "suite", store.registry))
        results = await asyncio.gather(
            *(store.append(f"s-{n}", [Happened(n=n)], NO_STREAM) for n in (10, 11, 12, 13, 14, 15)),
            return_exceptions=True,
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        assert [str(f) for f in failures] == ["thirteen"]
        assert (await docs(store))["totals"] == {"count": 5, "sum": 10 + 11 + 12 + 14 + 15}

    async def test_concurrent_commits_add_up_every_increment(self, store: EventStore) -> None:
        await project_inline(store)
        await asyncio.gather(*(store.append(f"s-{n}", [Happened(n=n)], NO_STREAM) for n in range(100, 140)))
        assert await counters(store) == {
            "totals": {"count": 40, "sum": sum(range(100, 140))},
            "parity-0": {"count": 20},
            "parity-1": {"count": 20},
        }

    async def test_a_failing_commit_takes_its_increments_with_it_and_leaves_the_others(self, store: EventStore) -> None:
        await project_inline(store)
        numbers = (10, 11, 12, 13, 14, 15)
        results = await asyncio.gather(
            *(store.append(f"s-{n}", [Happened(n=n)], NO_STREAM) for n in numbers), return_exceptions=True
        )
        assert [str(r) for r in results if isinstance(r, BaseException)] == ["thirteen"]
        assert await counters(store) == {
            "totals": {"count": 5, "sum": 10 + 11 + 12 + 14 + 15},
            "parity-0": {"count": 3},
            "parity-1": {"count": 2},
        }
        await store.append("after", [Happened(n=2)], NO_STREAM)  # nothing of the failed commit is held over
        assert (await counters(store))["totals"] == {"count": 6, "sum": 10 + 11 + 12 + 14 + 15 + 2}

    async def test_reads_puts_and_deletes_among_increments_see_and_keep_their_order(self, store: EventStore) -> None:
        await project_inline(store)
        first = await store.append("a", [Happened(n=1), Happened(n=2), Happened(n=50), Happened(n=4)])
        assert (await counters(store))["totals"] == {"count": 102, "sum": 54, "seen": {"count": 2, "sum": 3}}
        await store.append("a", [Happened(n=5), Happened(n=60), Happened(n=7)], first.version)
        assert (await counters(store))["totals"] == {"count": 2, "sum": 67}  # the delete dropped what came before
        assert (await counters(store))["parity-1"] == {"count": 3}  # 1, 5 and 7

    async def test_fractional_increments_add_up_among_whole_ones(self, store: EventStore) -> None:
        await project_inline(store)
        await store.append("a", [Happened(n=70), Happened(n=70), Happened(n=70), Happened(n=3)])
        totals = (await counters(store))["totals"]
        assert totals == {"count": 4, "sum": 213, "share": pytest.approx(0.3)}

    async def test_a_batch_of_projected_events_writes_its_increments_with_its_checkpoint(
        self, store: EventStore
    ) -> None:
        await store.ensure_views([COUNTERS])
        result = await store.append("a", [Happened(n=n) for n in (1, 2, 3, 13, 5)])
        projection = BoundProjection(Counters(), "suite", store.registry)
        records = await store.read_all()
        try:
            await store.apply_projection(projection, records, result.last_position)
        except ValueError:
            pass
        else:  # pragma: no cover - the handler of event 13 raises
            raise AssertionError("the batch with event 13 should have failed")
        assert await counters(store) == {"totals": None, "parity-0": None, "parity-1": None}
        assert await store.checkpoint("suite.counters") is None
        await store.apply_projection(projection, records[:3], records[2].position)
        assert await counters(store) == {
            "totals": {"count": 3, "sum": 6},
            "parity-0": {"count": 1},
            "parity-1": {"count": 2},
        }
        assert await store.checkpoint("suite.counters") == records[2].position
