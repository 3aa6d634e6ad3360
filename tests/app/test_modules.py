"""Modules keep to their own data and contracts, checked when the application is built and at run time."""

from __future__ import annotations

from typing import Any

import pytest
from mini import (
    INVOICES,
    GetOrder,
    OpenInvoice,
    OrderPlaced,
    OrderRows,
    PlaceOrder,
    build,
    place_order,
)

from citadel import (
    AccessDenied,
    Application,
    Command,
    ConfigurationError,
    DuplicateHandler,
    Module,
    ProcessManager,
    Query,
    QueryContext,
    RetryPolicy,
    UnknownCommand,
)
from citadel.testing import running, settle


class Peek(Query, name="spy.Peek"):
    order_id: str


class Ask(Query, name="spy.Ask"):
    order_id: str


async def peek(query: Peek, ctx: QueryContext) -> Any:
    return await ctx.view(OrderRows.orders).get(query.order_id)  # another module's table


async def ask(query: Ask, ctx: QueryContext) -> Any:
    return await ctx.query(GetOrder(order_id=query.order_id))  # a module it did not declare


def with_spy(*modules: Module) -> Application:
    base = build()
    return Application([*base.modules.values(), *modules])


async def test_a_query_handler_cannot_read_another_modules_view(store_url: str) -> None:
    app = with_spy(Module("spy", queries={Peek: peek}))
    async with running(app, store=store_url):
        order_id = (await app.dispatch(PlaceOrder(customer="a", amount=1)))["order_id"]
        with pytest.raises(AccessDenied, match=r"may not access view 'orders\.orders'"):
            await app.query(Peek(order_id=order_id))


async def test_a_module_cannot_query_a_module_it_does_not_depend_on(store_url: str) -> None:
    app = with_spy(Module("spy", queries={Ask: ask}))
    async with running(app, store=store_url):
        with pytest.raises(AccessDenied, match=r"depends_on=\['orders'\]"):
            await app.query(Ask(order_id="x"))


async def test_a_declared_dependency_may_ask_its_public_queries(store_url: str) -> None:
    app = with_spy(Module("spy", queries={Ask: ask}, depends_on=["orders"]))
    async with running(app, store=store_url):
        order_id = (await app.dispatch(PlaceOrder(customer="a", amount=1)))["order_id"]
        assert (await app.query(Ask(order_id=order_id))).customer == "a"


def test_reacting_to_events_of_an_undeclared_module_fails_at_build() -> None:
    spy = ProcessManager("spy.pm")
    spy.on(OrderPlaced)(lambda event: None)
    with pytest.raises(AccessDenied, match="depends_on"):
        with_spy(Module("spy", process_managers=[spy]))


async def test_a_process_manager_sending_another_modules_internal_command_is_refused(store_url: str) -> None:
    spy = ProcessManager("spy.pm")
    spy.on(OrderPlaced)(lambda event: OpenInvoice(order_id=event.order_id, amount=1))
    # reacting to orders is allowed (declared); sending billing's internal command is not
    app = with_spy(Module("spy", process_managers=[spy], depends_on=["orders", "billing"]))
    async with running(app, store=store_url):
        app.consumers["spy.pm"].retry = RetryPolicy(max_attempts=1)
        await app.dispatch(PlaceOrder(customer="a", amount=1))
        await settle(app)
        (letter,) = await app.store.dead_letters("spy.pm")
        assert "internal to module 'billing'" in letter.error


def test_two_modules_handling_one_command_fail_at_build() -> None:
    with pytest.raises((DuplicateHandler, ConfigurationError)):
        with_spy(Module("spy", commands={PlaceOrder: place_order}))


def test_writing_another_modules_view_fails_at_build() -> None:
    from citadel import Projector

    thief = Projector("spy.thief", views=[INVOICES])
    thief.on(OrderPlaced)(lambda event: None)
    with pytest.raises(ConfigurationError, match="belongs to module 'billing'"):
        with_spy(Module("spy", projections=[thief], depends_on=["orders"]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"depends_on": ["nowhere"]}, "not in the application"),
        ({"depends_on": ["spy"]}, "cannot depend on itself"),
    ],
)
def test_bad_dependencies_fail_at_build_with_the_fix(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        with_spy(Module("spy", **kwargs))


def test_a_contract_query_without_a_handler_fails_at_build() -> None:
    with pytest.raises(ConfigurationError, match="has no handler"):
        Module("spy", contract=[Peek])


async def test_an_unregistered_command_raises_unknown_command(store_url: str) -> None:
    class Nobody(Command, name="spy.Nobody"):
        pass

    async with running(build(), store=store_url) as app:
        with pytest.raises(UnknownCommand):
            await app.dispatch(Nobody())
