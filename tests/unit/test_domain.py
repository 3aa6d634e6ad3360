"""Deciders and aggregates for a tiny invoice domain, tested with given/when/then."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import pytest

from citadel import (
    Aggregate,
    Command,
    ConfigurationError,
    Decider,
    DomainError,
    Event,
    InvalidCommand,
    UnknownCommand,
    decides,
    evolves,
)
from citadel.errors import MissingDecision
from citadel.testing import given


class IssueInvoice(Command, name="unit.domain.IssueInvoice"):
    invoice_id: str
    amount: int


class PayInvoice(Command, name="unit.domain.PayInvoice"):
    invoice_id: str
    amount: int


class RemindCustomer(Command, name="unit.domain.RemindCustomer"):
    invoice_id: str


class InvoiceIssued(Event, name="unit.domain.InvoiceIssued"):
    invoice_id: str
    amount: int


class InvoicePaid(Event, name="unit.domain.InvoicePaid"):
    invoice_id: str
    amount: int


class CustomerReminded(Event, name="unit.domain.CustomerReminded"):
    invoice_id: str


class InvoiceState(msgspec.Struct, frozen=True):
    status: str = "none"
    due: int = 0


def evolve(state: InvoiceState, event: Event) -> InvoiceState:
    match event:
        case InvoiceIssued(amount=amount):
            return InvoiceState(status="open", due=amount)
        case InvoicePaid(amount=amount):
            due = state.due - amount
            return InvoiceState(status="paid" if due == 0 else "open", due=due)
    return state


def decide(command: Command, state: InvoiceState) -> Sequence[Event]:
    match command:
        case IssueInvoice(invoice_id=invoice_id, amount=amount):
            if state.status != "none":
                raise DomainError("invoice already issued")
            if amount < 1:
                raise InvalidCommand("amount must be positive")
            return [InvoiceIssued(invoice_id=invoice_id, amount=amount)]
        case PayInvoice(invoice_id=invoice_id, amount=amount):
            if state.status != "open":
                raise DomainError("invoice is not open")
            if amount > state.due:
                raise DomainError(f"overpayment: {state.due} due")
            return [InvoicePaid(invoice_id=invoice_id, amount=amount)]
    raise UnknownCommand(type(command))


invoice = Decider(initial_state=InvoiceState(), evolve=evolve, decide=decide)


class Invoice(Aggregate):
    status: str = "none"
    due: int = 0
    payments: list[int] = []

    @decides
    def issue(self, command: IssueInvoice) -> list[Event]:
        if self.status != "none":
            raise DomainError("invoice already issued")
        return [InvoiceIssued(invoice_id=command.invoice_id, amount=command.amount)]

    @decides
    def pay(self, command: PayInvoice) -> list[Event]:
        if self.status != "open":
            raise DomainError("invoice is not open")
        return [InvoicePaid(invoice_id=command.invoice_id, amount=command.amount)]

    @evolves
    def issued(self, event: InvoiceIssued) -> None:
        self.status, self.due = "open", event.amount

    @evolves
    def paid(self, event: InvoicePaid) -> None:
        self.payments.append(event.amount)
        self.due -= event.amount
        self.status = "paid" if self.due == 0 else "open"


class Unannotated(Aggregate):
    @decides
    def issue(self, command):  # type: ignore[no-untyped-def]
        return []


class UnionAnnotated(Aggregate):
    @evolves
    def changed(self, event: InvoiceIssued | InvoicePaid) -> None:
        pass


class Unresolvable(Aggregate):
    @decides
    def issue(self, command: NoSuchCommand) -> list[Event]:  # type: ignore[name-defined] # noqa: F821
        return []


ISSUED = InvoiceIssued(invoice_id="i-1", amount=100)


def test_fold_applies_events_in_order_from_the_initial_state() -> None:
    paid = InvoicePaid(invoice_id="i-1", amount=40)
    assert invoice.fold([ISSUED, paid]) == InvoiceState(status="open", due=60)


def test_fold_of_no_events_is_the_initial_state() -> None:
    assert invoice.fold([]) == InvoiceState()


def test_fold_can_continue_from_a_given_state() -> None:
    state = invoice.fold([InvoicePaid(invoice_id="i-1", amount=100)], InvoiceState(status="open", due=100))
    assert state == InvoiceState(status="paid", due=0)


def test_issuing_a_new_invoice_is_accepted() -> None:
    given(invoice).when(IssueInvoice(invoice_id="i-1", amount=100)).then(ISSUED)


def test_issuing_an_invoice_twice_is_refused() -> None:
    given(invoice, ISSUED).when(IssueInvoice(invoice_id="i-1", amount=5)).then_raises(DomainError, match="already")


def test_a_non_positive_amount_is_an_invalid_command() -> None:
    given(invoice).when(IssueInvoice(invoice_id="i-1", amount=0)).then_raises(InvalidCommand, match="positive")


def test_paying_more_than_is_due_is_refused() -> None:
    given(invoice, ISSUED).when(PayInvoice(invoice_id="i-1", amount=101)).then_raises(DomainError, match="100 due")


def test_paying_the_full_amount_leaves_the_invoice_paid() -> None:
    state = given(invoice, ISSUED).when(PayInvoice(invoice_id="i-1", amount=100)).then_state()
    assert state == InvoiceState(status="paid", due=0)


def test_the_aggregate_accepts_a_payment_on_an_open_invoice() -> None:
    paid = InvoicePaid(invoice_id="i-1", amount=30)
    given(Invoice.decider(), ISSUED).when(PayInvoice(invoice_id="i-1", amount=30)).then(paid)


def test_the_aggregate_refuses_a_payment_on_an_invoice_never_issued() -> None:
    given(Invoice.decider()).when(PayInvoice(invoice_id="i-1", amount=1)).then_raises(DomainError, match="not open")


def test_the_aggregate_state_reflects_the_decided_events() -> None:
    state = given(Invoice.decider(), ISSUED).when(PayInvoice(invoice_id="i-1", amount=30)).then_state()
    assert (state.status, state.due, state.payments) == ("open", 70, [30])


def test_an_aggregate_decider_gives_a_fresh_initial_state_each_time() -> None:
    decider = Invoice.decider()
    assert decider.initial_state is not decider.initial_state


def test_mutations_of_one_aggregate_load_never_leak_into_the_next() -> None:
    decider = Invoice.decider()
    decider.fold([ISSUED, InvoicePaid(invoice_id="i-1", amount=10)])
    assert decider.fold([]) == Invoice()
    assert decider.fold([ISSUED]).payments == []


def test_the_aggregate_raises_missing_decision_for_a_command_it_does_not_decide() -> None:
    given(Invoice.decider(), ISSUED).when(RemindCustomer(invoice_id="i-1")).then_raises(MissingDecision)


def test_the_aggregate_ignores_events_it_does_not_evolve_on() -> None:
    assert Invoice.decider().fold([ISSUED, CustomerReminded(invoice_id="i-1")]).status == "open"


def test_the_aggregate_decider_can_snapshot_its_own_type() -> None:
    decider = Invoice.decider(snapshot_every=10, state_version=2)
    assert (decider.state_type, decider.snapshot_every, decider.state_version) == (Invoice, 10, 2)


@pytest.mark.parametrize("state_type", [None, InvoiceState])
def test_snapshots_need_a_positive_interval_and_a_state_type(state_type: type | None) -> None:
    with pytest.raises(ConfigurationError, match="snapshot_every"):
        Decider(initial_state=InvoiceState(), evolve=evolve, decide=decide, state_type=state_type, snapshot_every=0)


def test_a_decision_method_without_an_annotation_is_refused_when_the_decider_is_built() -> None:
    with pytest.raises(ConfigurationError, match=r"Unannotated\.issue must annotate its first parameter"):
        Unannotated.decider()


def test_an_annotation_that_is_not_a_class_is_refused_when_the_decider_is_built() -> None:
    with pytest.raises(ConfigurationError, match="is not a class"):
        UnionAnnotated.decider()


def test_an_annotation_that_does_not_resolve_is_refused_when_the_decider_is_built() -> None:
    with pytest.raises(ConfigurationError, match="cannot resolve annotation"):
        Unresolvable.decider()


def test_a_scenario_can_add_history_after_it_starts() -> None:
    scenario = given(invoice).given(ISSUED).when(PayInvoice(invoice_id="i-1", amount=100))
    assert scenario.then(InvoicePaid(invoice_id="i-1", amount=100)) == [InvoicePaid(invoice_id="i-1", amount=100)]


def test_then_fails_when_the_events_differ() -> None:
    scenario = given(invoice).when(IssueInvoice(invoice_id="i-1", amount=100))
    with pytest.raises(AssertionError, match="expected events"):
        scenario.then(InvoiceIssued(invoice_id="i-1", amount=99))


def test_then_fails_when_the_decider_raised() -> None:
    scenario = given(invoice, ISSUED).when(IssueInvoice(invoice_id="i-1", amount=100))
    with pytest.raises(AssertionError, match="the decider raised DomainError"):
        scenario.then(ISSUED)


def test_then_raises_fails_when_the_decider_accepted() -> None:
    scenario = given(invoice).when(IssueInvoice(invoice_id="i-1", amount=100))
    with pytest.raises(AssertionError, match="but the decider returned"):
        scenario.then_raises(DomainError)


def test_then_raises_fails_on_another_error_type() -> None:
    scenario = given(invoice, ISSUED).when(IssueInvoice(invoice_id="i-1", amount=100))
    with pytest.raises(AssertionError, match="expected InvalidCommand"):
        scenario.then_raises(InvalidCommand)


def test_then_raises_fails_when_the_message_does_not_match() -> None:
    scenario = given(invoice, ISSUED).when(IssueInvoice(invoice_id="i-1", amount=100))
    with pytest.raises(AssertionError, match="does not match"):
        scenario.then_raises(DomainError, match="overpayment")


def test_then_state_fails_when_the_decider_raised() -> None:
    scenario = given(invoice, ISSUED).when(IssueInvoice(invoice_id="i-1", amount=100))
    with pytest.raises(AssertionError, match="the decider raised"):
        scenario.then_state()


def test_then_fails_before_any_command() -> None:
    with pytest.raises(AssertionError, match=r"call when\(command\) first"):
        given(invoice).then()


def test_a_second_when_replaces_the_outcome_of_the_first() -> None:
    scenario = given(invoice, ISSUED)
    scenario.when(IssueInvoice(invoice_id="i-1", amount=100)).then_raises(DomainError)
    scenario.when(PayInvoice(invoice_id="i-1", amount=10)).then(InvoicePaid(invoice_id="i-1", amount=10))
