"""Streams presumed new: a creating command decides on the initial state without reading its stream."""

from __future__ import annotations

import pytest

from citadel import Aggregate, Application, Command, CommandContext, DomainError, Event, Module, decides, evolves
from citadel.testing import running


class Open(Command, name="accounts.Open"):
    account_id: str
    owner: str


class Opened(Event, name="accounts.Opened"):
    owner: str


class Account(Aggregate):
    owner: str = ""

    @decides
    def open(self, command: Open) -> list[Event]:
        if self.owner:
            raise DomainError(f"account {command.account_id} is already open")
        return [Opened(owner=command.owner)]

    @evolves
    def opened(self, event: Opened) -> None:
        self.owner = event.owner


ACCOUNT = Account.decider()


def accounts_app(runs: list[str]) -> Application:
    async def open_account(command: Open, ctx: CommandContext) -> None:
        try:
            await ctx.execute(ACCOUNT, f"account-{command.account_id}", command, new=True)
        finally:
            runs.append("presumed" if ctx.presumed else "read")

    # No retries of conflicts: a stream presumed new that exists must still be read, not fail as a conflict.
    return Application([Module("accounts", commands={Open: open_account}, events=[Opened])], conflict_retries=0)


async def test_a_stream_presumed_new_is_not_read_and_its_events_start_at_version_one(store_url: str) -> None:
    runs: list[str] = []
    app = accounts_app(runs)
    async with running(app, store=store_url):
        store = app.store
        reads: list[str] = []
        read_stream = store.read_stream

        async def counted(stream_id: str, from_version: int = 1) -> list[object]:
            reads.append(stream_id)
            return await read_stream(stream_id, from_version)  # type: ignore[return-value]

        store.read_stream = counted  # type: ignore[method-assign,assignment]
        try:
            await app.dispatch(Open(account_id="a1", owner="ann"))
        finally:
            del store.read_stream
        assert reads == []
        assert runs == ["presumed"]
        assert [(r.version, r.event) for r in await store.read_stream("account-a1")] == [(1, Opened(owner="ann"))]


async def test_a_stream_presumed_new_that_exists_is_read_on_a_second_run_and_decided_on_its_state(
    store_url: str,
) -> None:
    runs: list[str] = []
    app = accounts_app(runs)
    async with running(app, store=store_url):
        await app.dispatch(Open(account_id="a1", owner="ann"))
        head = await app.store.head_position()
        runs.clear()
        with pytest.raises(DomainError, match="already open"):
            await app.dispatch(Open(account_id="a1", owner="bob"))
        assert runs == ["presumed", "read"]  # the refused append did not count as a conflict to retry
        assert await app.store.head_position() == head
        assert [r.event for r in await app.store.read_stream("account-a1")] == [Opened(owner="ann")]
