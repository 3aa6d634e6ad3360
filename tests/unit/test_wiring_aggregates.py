"""Aggregates and command handlers wired wrongly: a command without ``@decides``, an emitted event without
``@evolves``, a view read in a command handler. Refused when the decider or the application is built where the
code shows it, else with the same error at run time, which HTTP answers as a logged 500 (never a 404)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from citadel import (
    Aggregate,
    Application,
    Command,
    CommandContext,
    ConfigurationError,
    Event,
    Module,
    ProjectionContext,
    Projector,
    UnknownCommand,
    View,
    decides,
    evolves,
)
from citadel.errors import MissingDecision, UnevolvedEvent, ViewInCommandHandler
from citadel.http import create_asgi
from citadel.http.problems import from_exception
from citadel.testing import given, running


class Borrow(Command, name="loans.Borrow"):
    book_id: str


class Renew(Command, name="loans.Renew"):
    book_id: str


class Extend(Command, name="loans.Extend"):
    book_id: str


class Borrowed(Event, name="loans.Borrowed"):
    book_id: str


class Renewed(Event, name="loans.Renewed"):
    book_id: str


class LoanEvent(Event, name="loans.LoanEvent"):
    """A base some events of a loan share."""


class Extended(LoanEvent, name="loans.Extended"):
    pass


class Loan(Aggregate):
    out: bool = False

    @decides
    def borrow(self, command: Borrow) -> list[Borrowed]:
        return [Borrowed(book_id=command.book_id)]

    @evolves
    def was_borrowed(self, event: Borrowed) -> None:
        self.out = True


LOAN = Loan.decider()


class Books(Projector):
    books = View("books")

    def handle_borrowed(self, event: Borrowed, ctx: ProjectionContext) -> None:
        ctx.view(self.books)[event.book_id] = {"out": True}


async def borrow(command: Borrow, ctx: CommandContext) -> None:
    await ctx.execute(LOAN, f"loan-{command.book_id}", command)


def loans_with(command_type: type[Command], handler: Any) -> Module:
    return Module(
        "loans",
        contract=[Borrow, Renew, Borrowed, Renewed],
        commands={Borrow: borrow, command_type: handler},
        projections=[Books()],
    )


# -- events without @evolves --------------------------------------------------------------------------------


def test_an_emitted_event_without_evolves_is_refused_when_the_decider_is_built() -> None:
    class Lending(Aggregate):
        @decides
        def lend(self, command: Borrow) -> list[Borrowed | Renewed]:
            return [Borrowed(book_id=command.book_id)]

        @evolves
        def lent(self, event: Borrowed) -> None:
            return None

    with pytest.raises(UnevolvedEvent) as caught:
        Lending.decider()
    message = str(caught.value)
    assert "Lending.lend returns Renewed, which no @evolves method applies" in message
    assert "`@evolves def renewed(self, event: Renewed) -> None`" in message
    assert "Lending.decider(ignores=[Renewed])" in message
    assert "Borrowed" not in message


def test_every_unevolved_event_of_every_decision_is_reported_at_once() -> None:
    class Lending(Aggregate):
        @decides
        def lend(self, command: Borrow) -> tuple[Borrowed, ...]:
            return (Borrowed(book_id=command.book_id),)

        @decides
        def renew(self, command: Renew) -> Renewed | None:
            return None

    with pytest.raises(UnevolvedEvent) as caught:
        Lending.decider()
    assert "Lending.lend returns Borrowed" in str(caught.value)
    assert "Lending.renew returns Renewed" in str(caught.value)


def test_events_listed_in_ignores_are_deliberately_not_evolved() -> None:
    class Lending(Aggregate):
        @decides
        def renew(self, command: Renew) -> list[Renewed]:
            return [Renewed(book_id=command.book_id)]

    decider = Lending.decider(ignores=[Renewed])
    assert given(decider).when(Renew(book_id="b")).then(Renewed(book_id="b")) == [Renewed(book_id="b")]


def test_ignoring_an_event_the_aggregate_evolves_on_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"lists Borrowed, but Loan\.was_borrowed evolves on it"):
        Loan.decider(ignores=[Borrowed])


def test_decisions_returning_the_event_base_class_or_a_shared_base_are_not_checked() -> None:
    class Lending(Aggregate):
        @decides
        def lend(self, command: Borrow) -> list[Event]:
            return []

        @decides
        def renew(self, command: Renew) -> list[LoanEvent]:
            return [Extended()]

    assert Lending.decider().commands == frozenset({Borrow, Renew})


# -- commands without @decides ------------------------------------------------------------------------------


def test_an_aggregate_given_a_command_it_does_not_decide_raises_missing_decision_not_unknown_command() -> None:
    with pytest.raises(MissingDecision) as caught:
        LOAN.decide(Renew(book_id="b"), LOAN.initial_state)
    assert not isinstance(caught.value, UnknownCommand)
    assert "aggregate Loan has no @decides method for command Renew" in str(caught.value)
    assert "`command: Renew`" in str(caught.value)


async def renew_on_loan(command: Renew, ctx: CommandContext) -> None:
    await ctx.execute(LOAN, f"loan-{command.book_id}", command)


async def renew_by_extending(command: Renew, ctx: CommandContext) -> None:
    await ctx.execute(LOAN, f"loan-{command.book_id}", Extend(book_id=command.book_id))


def test_a_handler_executing_a_command_its_aggregate_does_not_decide_is_refused_at_build() -> None:
    with pytest.raises(MissingDecision) as caught:
        Application([loans_with(Renew, renew_on_loan)])
    message = str(caught.value)
    assert "module loans: command handler renew_on_loan (for Renew) executes Renew on LOAN" in message
    assert "aggregate Loan has no @decides method for command Renew" in message


def test_a_command_constructed_in_the_handler_is_checked_against_the_aggregate_too() -> None:
    with pytest.raises(
        MissingDecision,
        match=r"renew_by_extending \(for Renew\) executes Extend on LOAN.*no @decides method for command Extend",
    ):
        Application([loans_with(Renew, renew_by_extending)])


class RenewFromElsewhere:
    """A handler object: its source is not read at build, so the missing decision shows when it runs."""

    async def __call__(self, command: Renew, ctx: CommandContext) -> None:
        await ctx.execute(LOAN, f"loan-{command.book_id}", command)


class ReadViewFromElsewhere:
    """A handler object reading a view: refused when it runs."""

    async def __call__(self, command: Renew, ctx: CommandContext) -> None:
        await ctx.view(Books.books).get(command.book_id)


async def test_over_http_a_missing_decision_is_a_logged_500_not_a_404(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = Application([loans_with(Renew, RenewFromElsewhere())])
    async with running(app, tmp_path):
        asgi = create_asgi(app, manage_lifecycle=False)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(asgi), base_url="http://library") as http:
            with caplog.at_level(logging.ERROR, logger="citadel.http"):
                response = await http.post("/loans/renew", json={"book_id": "b"})
            assert (await http.post("/loans/borrow", json={"book_id": "b"})).status_code == 200
    assert response.status_code == 500
    assert response.json()["type"] == "urn:citadel:problem:internal-error"
    assert "@decides" not in response.text  # the cause is logged, not shown to the client
    logged = [r.getMessage() for r in caplog.records if r.name == "citadel.http"]
    assert any("aggregate Loan has no @decides method for command Renew" in line for line in logged)


def test_an_unknown_message_behind_an_existing_route_is_a_500() -> None:
    problem, _ = from_exception(UnknownCommand(Renew))
    assert (problem.status, problem.type) == (500, "urn:citadel:problem:internal-error")


# -- views in command handlers ------------------------------------------------------------------------------


async def renew_from_the_view(command: Renew, ctx: CommandContext) -> None:
    await ctx.view(Books.books).get(command.book_id)


def test_a_command_handler_reading_a_view_is_refused_at_build() -> None:
    with pytest.raises(ViewInCommandHandler) as caught:
        Application([loans_with(Renew, renew_from_the_view)])
    message = str(caught.value)
    assert "module loans: command handler renew_from_the_view (for Renew) reads view Books.books" in message
    assert "command handlers decide from their stream's state" in message
    assert "read views in a query handler, or ask a query" in message


async def test_a_view_read_in_a_command_handler_the_build_cannot_see_is_refused_when_it_runs(tmp_path: Path) -> None:
    app = Application([loans_with(Renew, ReadViewFromElsewhere())])
    async with running(app, tmp_path):
        with pytest.raises(ViewInCommandHandler, match=r"a command handler of module loans reads view loans\.books"):
            await app.dispatch(Renew(book_id="b"))
