"""Counter increments in a view without unique fields: the SQLite writer holds them back and writes their sums once
per batch. Whatever a projection does around them must come out as if each had been written in turn."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from suite import Happened

from citadel import NO_STREAM, ProjectionContext, Projector, View
from citadel.projection import BoundProjection
from citadel.store.base import EventStore

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


async def test_concurrent_commits_add_up_every_increment(store: EventStore) -> None:
    await project_inline(store)
    await asyncio.gather(*(store.append(f"s-{n}", [Happened(n=n)], NO_STREAM) for n in range(100, 140)))
    assert await counters(store) == {
        "totals": {"count": 40, "sum": sum(range(100, 140))},
        "parity-0": {"count": 20},
        "parity-1": {"count": 20},
    }


async def test_a_failing_commit_takes_its_increments_with_it_and_leaves_the_others(store: EventStore) -> None:
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


async def test_reads_puts_and_deletes_among_increments_see_and_keep_their_order(store: EventStore) -> None:
    await project_inline(store)
    first = await store.append("a", [Happened(n=1), Happened(n=2), Happened(n=50), Happened(n=4)])
    assert (await counters(store))["totals"] == {"count": 102, "sum": 54, "seen": {"count": 2, "sum": 3}}
    await store.append("a", [Happened(n=5), Happened(n=60), Happened(n=7)], first.version)
    assert (await counters(store))["totals"] == {"count": 2, "sum": 67}  # the delete dropped what came before
    assert (await counters(store))["parity-1"] == {"count": 3}  # 1, 5 and 7


async def test_fractional_increments_add_up_among_whole_ones(store: EventStore) -> None:
    await project_inline(store)
    await store.append("a", [Happened(n=70), Happened(n=70), Happened(n=70), Happened(n=3)])
    totals = (await counters(store))["totals"]
    assert totals == {"count": 4, "sum": 213, "share": pytest.approx(0.3)}


async def test_a_batch_of_projected_events_writes_its_increments_with_its_checkpoint(store: EventStore) -> None:
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
