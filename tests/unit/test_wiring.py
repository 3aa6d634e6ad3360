"""Handlers that do not fit what they are registered for are refused when the application is built, with a
message naming the class, the function and the fix (aggregates and views: ``test_wiring_aggregates.py``)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from citadel import (
    Application,
    BoundaryViolation,
    Command,
    ConfigurationError,
    Event,
    Module,
    ProcessManager,
    ProjectionContext,
    Projector,
    Query,
    View,
    handles,
)
from citadel.errors import AccessDenied, HandlerMismatch, UndeclaredDependency, UnmatchedHandler


class AddBook(Command, name="catalog.AddBook"):
    book_id: str


class ReindexCatalog(Command, name="catalog.ReindexCatalog"):
    """Internal to the catalog: in no contract."""


class BookAdded(Event, name="catalog.BookAdded"):
    book_id: str


class GetBook(Query, name="catalog.GetBook"):
    book_id: str


class Borrow(Command, name="loans.Borrow"):
    book_id: str


class Renew(Command, name="loans.Renew"):
    book_id: str


class GetLoan(Query, name="loans.GetLoan"):
    book_id: str


class Borrowed(Event, name="loans.Borrowed"):
    book_id: str


class Returned(Event, name="loans.Returned"):
    book_id: str


def add_book(command: AddBook) -> None:
    return None


def reindex(command: ReindexCatalog) -> None:
    return None


def get_book(query: GetBook) -> None:
    return None


def handle_borrow(command: Borrow) -> None:
    return None


def handle_renew(command: Renew) -> None:
    return None


def get_loan(query: GetLoan) -> None:
    return None


def borrow_or_renew(command: Borrow | Renew) -> None:
    return None


def catalog(**overrides: Any) -> Module:
    options: dict[str, Any] = {
        "contract": [AddBook, BookAdded, GetBook],
        "commands": {AddBook: add_book, ReindexCatalog: reindex},
        "queries": {GetBook: get_book},
    }
    return Module("catalog", **(options | overrides))


def loans(**overrides: Any) -> Module:
    options: dict[str, Any] = {
        "contract": [Borrow, Renew, GetLoan],
        "commands": {Borrow: handle_borrow, Renew: handle_renew},
        "queries": {GetLoan: get_loan},
        "events": [Borrowed, Returned],
    }
    return Module("loans", **(options | overrides))


def build(*modules: Module) -> Application:
    return Application(list(modules), store="sqlite:///unused.db")


def test_correctly_wired_modules_build() -> None:
    app = build(catalog(), loans(depends_on=["catalog"]))
    assert set(app.modules) == {"catalog", "loans"}


# -- a handler registered for a message it does not take ---------------------------------------------------


def test_a_command_handler_taking_another_command_is_refused_naming_both_and_the_fix() -> None:
    with pytest.raises(HandlerMismatch) as caught:
        build(catalog(), loans(commands={Borrow: handle_borrow, Renew: handle_borrow}))
    message = str(caught.value)
    assert "module loans: commands={Renew: handle_borrow}" in message
    assert "handle_borrow takes `command: Borrow`, not Renew" in message
    assert "register handle_borrow for the type it takes" in message


def test_a_query_handler_taking_another_query_is_refused() -> None:
    with pytest.raises(HandlerMismatch, match=r"queries=\{GetLoan: get_book\}.*takes `query: GetBook`, not GetLoan"):
        build(catalog(), loans(queries={GetLoan: get_book}))


def test_a_handler_whose_annotation_is_a_union_including_the_type_is_accepted() -> None:
    app = build(catalog(), loans(commands={Borrow: borrow_or_renew, Renew: borrow_or_renew}))
    assert app.commands.handles(Renew)


def any_command(command: Any) -> None:
    return None


def test_a_handler_annotated_any_is_accepted_for_every_type() -> None:
    app = build(catalog(), loans(commands={Borrow: any_command, Renew: any_command}))
    assert app.commands.handles(Borrow)


def test_a_reaction_taking_another_event_than_it_is_registered_for_is_refused() -> None:
    manager = ProcessManager("loans.reminders")

    @manager.on(Borrowed)
    def remind(event: Returned) -> None:
        return None

    with pytest.raises(HandlerMismatch) as caught:
        build(catalog(), loans(process_managers=[manager]))
    message = str(caught.value)
    assert "process manager loans.reminders of module loans" in message
    assert "remind, registered with on(Borrowed)" in message
    assert "takes `event: Returned`, not Borrowed" in message


def test_a_projection_handler_taking_another_event_than_it_is_registered_for_is_refused() -> None:
    books = Projector("loans.books", views=[View("books")])

    @books.on(Borrowed)
    def lent(event: Returned) -> None:
        return None

    with pytest.raises(HandlerMismatch, match=r"lent, registered with on\(Borrowed\), but .* `event: Returned`"):
        build(catalog(), loans(projections=[books]))


# -- a message listed under the wrong kind ------------------------------------------------------------------


def test_a_query_in_commands_is_refused_pointing_to_queries() -> None:
    with pytest.raises(HandlerMismatch) as caught:
        loans(commands={Borrow: handle_borrow, Renew: handle_renew, GetLoan: get_loan})
    message = str(caught.value)
    assert "module loans: commands= lists {GetLoan: get_loan}" in message
    assert "GetLoan is a Query, not a Command; list it in queries=" in message


def test_an_event_in_commands_is_refused_pointing_to_events() -> None:
    with pytest.raises(HandlerMismatch, match=r"Borrowed is an Event, not a Command; list it in events="):
        loans(commands={Borrow: handle_borrow, Renew: handle_renew, Borrowed: handle_borrow})


def test_a_command_in_queries_is_refused_pointing_to_commands() -> None:
    with pytest.raises(HandlerMismatch, match=r"queries= lists \{Renew: handle_renew\}.*list it in commands="):
        loans(queries={GetLoan: get_loan, Renew: handle_renew})


def test_a_class_that_is_no_message_is_refused_telling_what_to_subclass() -> None:
    class Plain:
        pass

    with pytest.raises(HandlerMismatch, match=r"Plain is not a message type.*subclass of citadel\.Command"):
        loans(commands={Plain: handle_borrow})


# -- projectors' handle_<name> methods ----------------------------------------------------------------------


class MisspeltBooks(Projector):
    books = View("books")

    def handle_bookadded(self, event: BookAdded, ctx: ProjectionContext) -> None:
        return None

    def handle_book_added(self, event: BookAdded, ctx: ProjectionContext) -> None:
        return None


def test_a_handle_method_matching_no_event_is_refused_with_the_right_spelling() -> None:
    with pytest.raises(UnmatchedHandler) as caught:
        build(catalog(projections=[MisspeltBooks()]))
    message = str(caught.value)
    assert "projector MisspeltBooks: method handle_book_added matches no event" in message
    assert "did you mean handle_bookadded (for BookAdded)?" in message
    assert "@handles(EventType)" in message


class LoanBooks(Projector):
    books = View("books")

    def handle_borrowed(self, event: Borrowed, ctx: ProjectionContext) -> None:
        return None

    def handle_bookadded(self, event: BookAdded, ctx: ProjectionContext) -> None:
        return None


def test_a_handle_method_for_an_event_of_an_undeclared_module_says_why_it_matches_nothing() -> None:
    with pytest.raises(UnmatchedHandler) as caught:
        build(catalog(), loans(projections=[LoanBooks()]))
    message = str(caught.value)
    assert "projector LoanBooks: method handle_bookadded matches no event this projection may handle" in message
    assert "depends_on" in message


def test_the_same_handle_method_matches_once_the_module_depends_on_the_events_owner() -> None:
    app = build(catalog(), loans(projections=[LoanBooks()], depends_on=["catalog"]))
    assert sorted(app.projections["loans.LoanBooks"].event_types) == ["catalog.BookAdded", "loans.Borrowed"]


# -- projector methods routed by event type ----------------------------------------------------------------


class RoutedBooks(Projector):
    books = View("books")

    @handles(Borrowed, Returned)
    def moved(self, event: Borrowed | Returned, ctx: ProjectionContext) -> None:
        return None

    @handles(BookAdded)
    def handle_new_title(self, event: BookAdded, ctx: ProjectionContext) -> None:
        """Named like a handle_<event> method for no event: routed by its type, so not refused."""


def test_methods_routed_with_handles_receive_the_events_they_name_whatever_their_names() -> None:
    app = build(catalog(), loans(projections=[RoutedBooks()], depends_on=["catalog"]))
    assert sorted(app.projections["loans.RoutedBooks"].event_types) == [
        "catalog.BookAdded",
        "loans.Borrowed",
        "loans.Returned",
    ]


def test_a_method_routed_with_handles_taking_another_event_is_refused_naming_the_decorator() -> None:
    class Misrouted(Projector):
        books = View("books")

        @handles(Borrowed)
        def lent(self, event: Returned, ctx: ProjectionContext) -> None:
            return None

    with pytest.raises(HandlerMismatch) as caught:
        build(catalog(), loans(projections=[Misrouted()]))
    message = str(caught.value)
    assert "routed with @handles(Borrowed)" in message
    assert "takes `event: Returned`, not Borrowed" in message


def test_a_method_routed_with_handles_to_an_event_its_module_may_not_use_is_refused() -> None:
    with pytest.raises(AccessDenied, match="does not declare depends_on"):
        build(catalog(), loans(projections=[RoutedBooks()]))


def test_handles_without_an_event_type_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="at least one event type"):
        handles()


# -- commands of other modules ------------------------------------------------------------------------------


def catalog_request() -> ProcessManager:
    manager = ProcessManager("loans.catalog_requests")

    @manager.on(Borrowed)
    def add_missing_book(event: Borrowed) -> AddBook:
        return AddBook(book_id=event.book_id)

    return manager


def test_a_reaction_returning_a_command_of_an_undeclared_module_is_refused_at_build() -> None:
    with pytest.raises(UndeclaredDependency) as caught:
        build(catalog(), loans(process_managers=[catalog_request()]))
    message = str(caught.value)
    assert "add_missing_book returns AddBook of module 'catalog'" in message
    assert "add 'catalog' to its depends_on" in message


def test_a_reaction_returning_a_command_of_a_declared_dependency_builds() -> None:
    app = build(catalog(), loans(process_managers=[catalog_request()], depends_on=["catalog"]))
    assert "loans" in app.modules


def test_a_reaction_returning_several_commands_has_each_one_checked() -> None:
    manager = ProcessManager("loans.renewals")

    @manager.on(Borrowed)
    def renew_and_add(event: Borrowed) -> list[Renew | AddBook]:
        return [Renew(book_id=event.book_id)]

    with pytest.raises(UndeclaredDependency, match="renew_and_add returns AddBook"):
        build(catalog(), loans(process_managers=[manager]))


def test_a_reaction_returning_an_internal_command_of_a_dependency_is_refused() -> None:
    manager = ProcessManager("loans.reindex")

    @manager.on(Borrowed)
    def reindex_catalog(event: Borrowed) -> ReindexCatalog:
        return ReindexCatalog()

    with pytest.raises(BoundaryViolation, match="returns ReindexCatalog, which is internal to module 'catalog'"):
        build(catalog(), loans(process_managers=[manager], depends_on=["catalog"]))


class Shelve(Command, name="nowhere.Shelve"):
    """A command no module lists."""


def test_a_reaction_returning_a_command_no_module_handles_is_refused() -> None:
    manager = ProcessManager("loans.shelving")

    @manager.on(Returned)
    def shelve(event: Returned) -> Shelve | None:
        return None

    with pytest.raises(ConfigurationError, match="shelve returns Shelve, which no module of the application handles"):
        build(catalog(), loans(process_managers=[manager]))


# -- modules served over HTTP -------------------------------------------------------------------------------


def test_a_module_with_handlers_but_no_contract_is_warned_about_naming_contract(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="citadel"):
        build(catalog(), loans(contract=None))
    warnings = [r.getMessage() for r in caplog.records if r.name == "citadel" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "module 'loans' exposes nothing over HTTP" in warnings[0]
    assert "contract=" in warnings[0]


def test_modules_with_contracts_or_no_handlers_are_not_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="citadel"):
        build(catalog(), loans(), Module("reports", events=[]))
    assert not [r for r in caplog.records if r.name == "citadel"]
