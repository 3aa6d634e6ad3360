"""Snapshots: taken every N events with the commit, used on load, ignored when the state's schema changes."""

from __future__ import annotations

from typing import Any

from citadel import Aggregate, Application, Command, CommandContext, Decider, Event, Module, decides, evolves
from citadel.messages import encode_json
from citadel.store.base import Commit, Snapshot
from citadel.testing import running


class Add(Command, name="tally.Add"):
    amount: int


class Total(Command, name="tally.Total"):  # a command that only reads, to look at the loaded state
    pass


class Added(Event, name="tally.Added"):
    amount: int


class Tally(Aggregate):
    total: int = 0

    @decides
    def add(self, command: Add) -> list[Event]:
        return [Added(amount=command.amount)]

    @evolves
    def added(self, event: Added) -> None:
        self.total += event.amount


def tally_app(decider: Decider[Any, Tally, Any]) -> Application:
    async def add(command: Add, ctx: CommandContext) -> None:
        await ctx.execute(decider, "tally-1", command)

    async def total(command: Total, ctx: CommandContext) -> int:
        return (await ctx.load(decider, "tally-1")).state.total

    return Application([Module("tally", commands={Add: add, Total: total}, events=[Added])])


async def test_a_snapshot_is_stored_each_time_the_stream_crosses_the_interval(store_url: str) -> None:
    app = tally_app(Tally.decider(snapshot_every=3))
    async with running(app, store=store_url):
        for _ in range(7):
            await app.dispatch(Add(amount=1))
        snapshot = await app.store.load_snapshot("tally-1")
        assert snapshot is not None
        assert (snapshot.version, snapshot.state_version) == (6, 1)
        assert snapshot.data == encode_json(Tally(total=6))
        assert await app.dispatch(Total()) == 7


async def test_loading_starts_from_the_snapshot_and_folds_only_later_events(store_url: str) -> None:
    app = tally_app(Tally.decider(snapshot_every=3))
    async with running(app, store=store_url):
        for _ in range(7):
            await app.dispatch(Add(amount=1))
        # a snapshot claiming 100 at version 6 proves loads read it: 100 + the 7th event
        await app.store.commit(Commit([], snapshots=[Snapshot("tally-1", 6, 1, encode_json(Tally(total=100)))]))
        assert await app.dispatch(Total()) == 101


async def test_a_snapshot_of_another_state_version_or_unreadable_is_ignored(store_url: str) -> None:
    async with running(tally_app(Tally.decider(snapshot_every=3)), store=store_url) as app:
        for _ in range(7):
            await app.dispatch(Add(amount=1))
        await app.store.commit(Commit([], snapshots=[Snapshot("tally-1", 6, 1, encode_json(Tally(total=100)))]))
    async with running(tally_app(Tally.decider(snapshot_every=3, state_version=2)), store=store_url) as app:
        assert await app.dispatch(Total()) == 7
    async with running(tally_app(Tally.decider(snapshot_every=3)), store=store_url) as app:
        await app.store.commit(Commit([], snapshots=[Snapshot("tally-1", 6, 1, b'{"total": "many"}')]))
        assert await app.dispatch(Total()) == 7
