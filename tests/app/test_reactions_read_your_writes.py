"""A query with ``min_position`` reflects the reaction chains that start at or before it and change its module.

The application: paying a bill (billing) makes billing's process manager settle its order (orders), and a settled
order makes orders' process manager grant access (content). Stats counts payments, with an async projection and
a process manager of its own, which lead nowhere else. The command handlers at the end of each hop take a
moment, so a query that did not follow the chain would answer before the hop's effect is written.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest

from citadel import (
    NO_STREAM,
    Application,
    Command,
    CommandContext,
    DispatchContext,
    Event,
    Module,
    ProcessManager,
    Projector,
    Query,
    QueryContext,
    View,
)
from citadel.errors import NotCaughtUp, PositionNotWritten
from citadel.reactions import commands_returned, consumers_leading_to
from citadel.testing import running
from citadel.testing import settle as settle_all
from tests.backends import POSTGRES

HOP = 0.05
"""Seconds a hop's command handler takes before it writes."""
WAIT = 10.0
"""Seconds a query may wait for its position: far more than a chain takes."""


class Pay(Command, name="rw.billing.Pay"):
    bill: str


class Paid(Event, name="rw.billing.Paid"):
    bill: str


class Settle(Command, name="rw.orders.Settle"):
    bill: str


class Settled(Event, name="rw.orders.Settled"):
    bill: str


class GetSettled(Query, name="rw.orders.GetSettled"):
    bill: str


class Grant(Command, name="rw.content.Grant"):
    bill: str


class Granted(Event, name="rw.content.Granted"):
    bill: str


class GetGrant(Query, name="rw.content.GetGrant"):
    bill: str


class Tally(Command, name="rw.stats.Tally"):
    bill: str


class Tallied(Event, name="rw.stats.Tallied"):
    bill: str


class GetTally(Query, name="rw.stats.GetTally"):
    pass


SETTLED = View("settled")
GRANTS = View("grants")
TALLY = View("tally")

settling = ProcessManager("billing.settling")
granting = ProcessManager("orders.granting")
tallying = ProcessManager("stats.tallying")


@settling.on(Paid)
def settle_paid_bill(event: Paid) -> Settle:
    return Settle(bill=event.bill)


@granting.on(Settled)
def grant_settled_bill(event: Settled) -> list[Grant] | None:
    return [Grant(bill=event.bill)]


@tallying.on(Paid)
def tally_paid_bill(event: Paid) -> Tally:
    return Tally(bill=event.bill)


async def pay(command: Pay, ctx: CommandContext) -> None:
    ctx.append(f"bill-{command.bill}", [Paid(bill=command.bill)], NO_STREAM)


async def settle(command: Settle, ctx: CommandContext) -> None:
    await asyncio.sleep(HOP)
    ctx.append(f"order-{command.bill}", [Settled(bill=command.bill)], NO_STREAM)


async def grant(command: Grant, ctx: CommandContext) -> None:
    await asyncio.sleep(HOP)
    ctx.append(f"grant-{command.bill}", [Granted(bill=command.bill)], NO_STREAM)


async def tally(command: Tally, ctx: CommandContext) -> None:
    ctx.append(f"tally-{command.bill}", [Tallied(bill=command.bill)], NO_STREAM)


async def get_settled(query: GetSettled, ctx: QueryContext) -> bool:
    return await ctx.view(SETTLED).get(query.bill) is not None


async def get_grant(query: GetGrant, ctx: QueryContext) -> bool:
    return await ctx.view(GRANTS).get(query.bill) is not None


async def get_tally(query: GetTally, ctx: QueryContext) -> dict[str, Any]:
    return await ctx.view(TALLY).get("all") or {}


def build() -> Application:
    """The four modules, with fresh projectors (an application binds them)."""
    settled = Projector("orders.settled", views=[SETTLED])
    settled.on(Settled)(lambda event, ctx: ctx.view(SETTLED).put(event.bill, {"settled": True}))
    grants = Projector("content.grants", views=[GRANTS])
    grants.on(Granted)(lambda event, ctx: ctx.view(GRANTS).put(event.bill, {"granted": True}))
    counts = Projector("stats.counts", views=[TALLY], inline=False)
    counts.on(Paid)(lambda event, ctx: ctx.view(TALLY).increment("all", "paid"))
    content = Module(
        "content", contract=[Grant, GetGrant], commands={Grant: grant}, queries={GetGrant: get_grant},
        events=[Granted], projections=[grants],
    )  # fmt: skip
    orders = Module(
        "orders", contract=[Settle, GetSettled], commands={Settle: settle}, queries={GetSettled: get_settled},
        events=[Settled], projections=[settled], process_managers=[granting], depends_on=["content"],
    )  # fmt: skip
    billing = Module(
        "billing", contract=[Pay, Paid], commands={Pay: pay}, events=[Paid], process_managers=[settling],
        depends_on=["orders"],
    )  # fmt: skip
    stats = Module(
        "stats", contract=[GetTally], commands={Tally: tally}, queries={GetTally: get_tally}, events=[Tallied],
        projections=[counts], process_managers=[tallying], depends_on=["billing"],
    )  # fmt: skip
    return Application([content, orders, billing, stats])


@pytest.fixture
async def app(store_url: str) -> AsyncIterator[Application]:
    async with running(build(), store=store_url) as started:
        yield started


def after(position: int, wait: float = WAIT) -> DispatchContext:
    return DispatchContext(min_position=position, wait=wait)


async def test_a_query_sees_what_a_process_manager_did_in_answer_to_the_position(app: Application) -> None:
    for n in range(5):
        paid = await app.execute(Pay(bill=f"b{n}"))
        assert await app.query(GetSettled(bill=f"b{n}"), after(paid.position)) is True


async def test_a_query_sees_the_end_of_a_chain_of_two_process_managers(app: Application) -> None:
    for n in range(5):
        paid = await app.execute(Pay(bill=f"b{n}"))
        assert await app.query(GetGrant(bill=f"b{n}"), after(paid.position)) is True


async def test_the_chain_of_a_command_ends_at_the_last_event_its_reactions_wrote(app: Application) -> None:
    paid = await app.execute(Pay(bill="b1"))
    await settle_all(app)
    written = [r.position for r in await app.store.read_all(paid.position + 1)]
    assert len(written) == 3  # settled, granted, tallied
    assert await app.store.chain_end(paid.position, paid.position) == max(written)
    later = await app.execute(Pay(bill="b2"))
    await settle_all(app)
    assert await app.store.chain_end(paid.position, later.position) == 0  # the second payment's chain is its own


async def test_a_stopped_consumer_that_leads_elsewhere_does_not_hold_a_query_up(app: Application) -> None:
    for name in ("stats.counts", "stats.tallying"):
        await app.consumers[name].stop()
    paid = await app.execute(Pay(bill="b1"))
    assert await app.query(GetGrant(bill="b1"), after(paid.position)) is True
    with pytest.raises(NotCaughtUp):  # a query on stats does wait for them
        await app.query(GetTally(), after(paid.position, wait=0.2))


async def test_a_stopped_process_manager_on_the_way_makes_the_query_time_out(app: Application) -> None:
    await app.consumers["orders.granting"].stop()
    paid = await app.execute(Pay(bill="b1"))
    assert await app.query(GetSettled(bill="b1"), after(paid.position)) is True  # granting leads elsewhere
    with pytest.raises(NotCaughtUp):
        await app.query(GetGrant(bill="b1"), after(paid.position, wait=0.3))


async def test_a_position_beyond_the_log_is_refused_at_once_naming_the_highest_position(app: Application) -> None:
    paid = await app.execute(Pay(bill="b1"))
    head = await app.store.last_position()
    async with asyncio.timeout(WAIT / 2):  # a query that waited would wait the whole WAIT
        with pytest.raises(PositionNotWritten, match=f"\\({head}\\)"):
            await app.query(GetGrant(bill="b1"), after(head + 1))
    assert await app.query(GetSettled(bill="b1"), after(paid.position)) is True


async def test_the_highest_position_written_is_not_refused(app: Application) -> None:
    await app.execute(Pay(bill="b1"))
    head = await app.store.last_position()
    assert await app.query(GetGrant(bill="b1"), after(head)) is True


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)  # the safe head of subscribers is PostgreSQL's
async def test_on_postgresql_a_position_committed_beyond_what_subscribers_read_yet_is_waited_for(
    store_url: str,
) -> None:
    async with running(build(), store=store_url) as app:
        holder = await asyncpg.connect(POSTGRES)  # an open transaction with an id holds subscribers' reads below it
        try:
            transaction = holder.transaction()
            await transaction.start()
            await holder.fetchval("SELECT pg_current_xact_id()")
            paid = await app.execute(Pay(bill="b1"))
            assert await app.store.head_position() < paid.position
            with pytest.raises(NotCaughtUp):
                await app.query(GetSettled(bill="b1"), after(paid.position, wait=0.2))
            await transaction.rollback()
        finally:
            await holder.close()
        assert await app.query(GetGrant(bill="b1"), after(paid.position)) is True


def test_the_waited_consumers_of_a_module_are_its_async_projections_and_the_managers_leading_to_it() -> None:
    waited = consumers_leading_to(build().composition)
    assert waited["content"] == {"billing.settling", "orders.granting"}
    assert waited["orders"] == {"billing.settling"}
    assert waited["billing"] == frozenset()
    assert waited["stats"] == {"stats.counts", "stats.tallying"}


def test_a_reaction_without_an_annotation_of_its_commands_may_lead_anywhere() -> None:
    app = build()
    loose = ProcessManager("stats.loose")
    loose.on(Paid)(lambda event: Tally(bill=event.bill))
    app.modules["stats"].process_managers.append(loose)
    assert "stats.loose" in consumers_leading_to(app.composition)["content"]


def _returns_nothing(event: Paid) -> None:
    return None


def _returns_some(event: Paid) -> Iterator[Settle | Grant]:
    yield Settle(bill=event.bill)


def _returns_any_command(event: Paid) -> Command:
    return Settle(bill=event.bill)


@pytest.mark.parametrize(
    ("reaction", "commands"),
    [
        (settle_paid_bill, {Settle}),
        (grant_settled_bill, {Grant}),
        (_returns_nothing, set()),
        (_returns_some, {Settle, Grant}),
        (_returns_any_command, None),
        (lambda event: None, None),
    ],
    ids=["one", "a list or none", "none", "an iterator of a union", "any command", "unannotated"],
)
def test_the_commands_a_reaction_returns_are_read_from_its_annotation(reaction: Any, commands: set[Any]) -> None:
    assert commands_returned(reaction) == (None if commands is None else frozenset(commands))
