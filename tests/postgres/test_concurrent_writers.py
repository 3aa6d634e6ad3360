"""Writers on several connections (and nodes) update the same view rows at once: no commit is lost to a
deadlock. Inline projections lock their rows in key order; where they cannot (a view with a unique field), a
transaction PostgreSQL undoes for a deadlock is done again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from citadel import NO_STREAM, Application, Command, CommandContext, Event, Module, Projector, View
from citadel.store.postgres import PostgresEventStore
from tests.backends import POSTGRES, reset_postgres

KEYS = [f"k{i:02d}" for i in range(12)]


class Touched(Event, name="contention.Touched"):
    reverse: bool


class Touch(Command, name="contention.Touch"):
    n: int


def build(unique: bool) -> tuple[Module, View[Any]]:
    counts = View("counts", unique=("label",) if unique else ())
    projector = Projector("contention.counts", views=[counts])

    @projector.on(Touched)
    def count(event: Touched, ctx: Any) -> None:
        for key in reversed(KEYS) if event.reverse else KEYS:  # half the events lock the rows the other way
            ctx.view(counts).increment(key, "n")

    async def touch(command: Touch, ctx: CommandContext) -> None:
        ctx.append(f"touch-{ctx.new_id()}", [Touched(reverse=command.n % 2 == 1)], NO_STREAM)

    return Module("contention", commands={Touch: touch}, events=[Touched], projections=[projector]), counts


@pytest.mark.parametrize("unique", [False, True], ids=["sorted-rows", "unique-field"])
async def test_concurrent_batches_on_the_same_rows_all_commit(unique: bool) -> None:
    await reset_postgres()
    nodes = []
    views = []
    for _ in range(3):  # three nodes on one database: their batches overlap
        module, counts = build(unique)
        app = Application([module], store=POSTGRES)
        await app.start()
        nodes.append(app)
        views.append(counts)
    try:

        async def client(app: Application, c: int) -> None:
            for i in range(20):
                await app.dispatch(Touch(n=c + i))

        await asyncio.gather(*(client(app, c) for app in nodes for c in range(15)))
        stores = [app.store for app in nodes]
        assert all(isinstance(store, PostgresEventStore) for store in stores)
        reader = nodes[0].view_reader(views[0])
        assert [(await reader.get(key))["n"] for key in KEYS] == [3 * 15 * 20] * len(KEYS)
        retried = sum(store.writer.retried for store in stores)  # type: ignore[union-attr]
        if not unique:  # rows locked in one order: nothing to undo (with a unique field, ~10 deadlocks here)
            assert retried == 0
    finally:
        for app in nodes:
            await app.stop()
