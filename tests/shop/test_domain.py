"""The shop's deciders, given past events and one command: pure, no store."""

from __future__ import annotations

import pytest

from citadel import DomainError, Event, InvalidCommand, NotFound
from citadel.testing import given
from examples.shop.billing.contract import InvoicePaid, InvoiceRefunded, PayInvoice, RefundInvoice
from examples.shop.billing.domain import INVOICE, InvoiceOpened, InvoiceVoided, OpenInvoice, VoidInvoice, invoice_id_for
from examples.shop.content.contract import GrantAccess, RevokeAccess
from examples.shop.content.domain import ACCESS, ITEM, AccessGranted, AccessRevoked, ContentPublished, CreateItem
from examples.shop.orders.contract import (
    CancelOrder,
    MarkOrderPaid,
    MarkOrderRefunded,
    OrderCancelled,
    OrderCreated,
    OrderItem,
    OrderPaid,
    OrderRefunded,
)
from examples.shop.orders.domain import ORDER, PlaceOrder
from examples.shop.users.domain import USER, CreateUser, UserRegistered


def test_a_new_user_gets_a_lowercased_email_and_the_customer_role() -> None:
    given(USER).when(CreateUser(user_id="u1", email="Ada@Example.COM", name="Ada")).then(
        UserRegistered(user_id="u1", email="ada@example.com", name="Ada", roles=["customer"])
    )


@pytest.mark.parametrize(
    "email", ["ada", "ada@example", "@example.com", "ada@.com", "a da@example.com", "ada@example."]
)
def test_a_malformed_email_is_an_invalid_command(email: str) -> None:
    given(USER).when(CreateUser(user_id="u1", email=email, name="Ada")).then_raises(InvalidCommand, match="email")


def test_a_blank_name_is_an_invalid_command() -> None:
    given(USER).when(CreateUser(user_id="u1", email="ada@example.com", name="  ")).then_raises(InvalidCommand)


def test_publishing_an_item_records_its_title_body_and_price() -> None:
    given(ITEM).when(CreateItem(content_id="c1", title="Guide", body="text", price=0)).then(
        ContentPublished(content_id="c1", title="Guide", body="text", price=0)
    )


@pytest.mark.parametrize(("title", "price", "reason"), [("Guide", -1, "price"), (" ", 100, "title")])
def test_a_negative_price_or_an_empty_title_is_an_invalid_command(title: str, price: int, reason: str) -> None:
    given(ITEM).when(CreateItem(content_id="c1", title=title, body="", price=price)).then_raises(
        InvalidCommand, match=reason
    )


GRANTED = AccessGranted(user_id="u1", order_id="o1", content_ids=["c1", "c2"])


def test_granting_access_for_an_order_twice_grants_it_once() -> None:
    given(ACCESS, GRANTED).when(GrantAccess(user_id="u1", order_id="o1", content_ids=["c1", "c2"])).then()


def test_revoking_takes_back_what_the_order_granted() -> None:
    given(ACCESS, GRANTED).when(RevokeAccess(user_id="u1", order_id="o1", content_ids=["c1", "c2", "c9"])).then(
        AccessRevoked(user_id="u1", order_id="o1", content_ids=["c1", "c2"])
    )


def test_revoking_what_was_never_granted_changes_nothing() -> None:
    given(ACCESS).when(RevokeAccess(user_id="u1", order_id="o1", content_ids=["c1"])).then()


# -- orders ------------------------------------------------------------------------------------------------

ITEMS = [OrderItem(content_id="c1", quantity=2), OrderItem(content_id="c2", quantity=1)]
CREATED = OrderCreated(order_id="o1", customer_id="u1", items=ITEMS, total=1250)
PAID = OrderPaid(order_id="o1", customer_id="u1", items=ITEMS)
CANCELLED = OrderCancelled(order_id="o1", customer_id="u1")


def place(items: list[OrderItem]) -> PlaceOrder:
    return PlaceOrder(order_id="o1", customer_id="u1", items=items, prices={"c1": 500, "c2": 250})


def test_an_order_is_priced_from_the_catalog() -> None:
    given(ORDER).when(place(ITEMS)).then(CREATED)


@pytest.mark.parametrize(
    ("items", "reason"),
    [
        ([], "at least one item"),
        ([OrderItem(content_id="c1", quantity=0)], "must be 1 to 10000"),
        ([OrderItem(content_id="nope", quantity=1)], "no such item"),
        ([OrderItem(content_id="c1", quantity=1), OrderItem(content_id="c1", quantity=1)], "twice"),
    ],
)
def test_an_order_without_valid_items_is_an_invalid_command(items: list[OrderItem], reason: str) -> None:
    given(ORDER).when(place(items)).then_raises(InvalidCommand, match=reason)


def test_an_unpaid_order_can_be_cancelled() -> None:
    given(ORDER, CREATED).when(CancelOrder(order_id="o1")).then(CANCELLED)


def test_a_paid_order_cannot_be_cancelled() -> None:
    given(ORDER, CREATED, PAID).when(CancelOrder(order_id="o1")).then_raises(DomainError, match="is paid")


def test_a_cancelled_order_cannot_be_cancelled_again() -> None:
    given(ORDER, CREATED, CANCELLED).when(CancelOrder(order_id="o1")).then_raises(DomainError, match="is cancelled")


def test_cancelling_an_unknown_order_is_not_found() -> None:
    given(ORDER).when(CancelOrder(order_id="o1")).then_raises(NotFound)


def test_marking_a_created_order_paid_emits_order_paid_with_its_items() -> None:
    given(ORDER, CREATED).when(MarkOrderPaid(order_id="o1")).then(PAID)


def test_marking_a_paid_order_paid_again_changes_nothing() -> None:
    given(ORDER, CREATED, PAID).when(MarkOrderPaid(order_id="o1")).then()


def test_marking_a_cancelled_order_paid_changes_nothing() -> None:
    given(ORDER, CREATED, CANCELLED).when(MarkOrderPaid(order_id="o1")).then()


def test_a_paid_order_can_be_marked_refunded() -> None:
    given(ORDER, CREATED, PAID).when(MarkOrderRefunded(order_id="o1")).then(
        OrderRefunded(order_id="o1", customer_id="u1", items=ITEMS)
    )


def test_marking_an_unpaid_order_refunded_changes_nothing() -> None:
    given(ORDER, CREATED).when(MarkOrderRefunded(order_id="o1")).then()


# -- billing -----------------------------------------------------------------------------------------------

INVOICE_ID = invoice_id_for("o1")
VOIDED = InvoiceVoided(invoice_id=INVOICE_ID, order_id="o1")
OPENED = InvoiceOpened(invoice_id=INVOICE_ID, order_id="o1", customer_id="u1", amount=1250)
INVOICE_PAID = InvoicePaid(invoice_id=INVOICE_ID, order_id="o1", customer_id="u1", amount=1250)
REFUNDED = InvoiceRefunded(invoice_id=INVOICE_ID, order_id="o1", customer_id="u1", amount=1250)


def test_an_orders_invoice_id_is_derived_from_the_order_id() -> None:
    assert invoice_id_for("o1") == INVOICE_ID != invoice_id_for("o2")


def test_opening_an_invoice_uses_the_derived_id() -> None:
    given(INVOICE).when(OpenInvoice(order_id="o1", customer_id="u1", amount=1250)).then(OPENED)


def test_opening_an_existing_invoice_again_changes_nothing() -> None:
    given(INVOICE, OPENED).when(OpenInvoice(order_id="o1", customer_id="u1", amount=1250)).then()


def test_paying_the_invoiced_amount_emits_invoice_paid() -> None:
    given(INVOICE, OPENED).when(PayInvoice(invoice_id=INVOICE_ID, amount=1250)).then(INVOICE_PAID)


def test_paying_another_amount_is_an_invalid_command() -> None:
    given(INVOICE, OPENED).when(PayInvoice(invoice_id=INVOICE_ID, amount=1249)).then_raises(InvalidCommand)


@pytest.mark.parametrize(("last", "status"), [(INVOICE_PAID, "paid"), (VOIDED, "void")])
def test_a_paid_or_void_invoice_cannot_be_paid(last: Event, status: str) -> None:
    paying = PayInvoice(invoice_id=INVOICE_ID, amount=1250)
    given(INVOICE, OPENED, last).when(paying).then_raises(DomainError, match=f"is {status}")


def test_paying_an_unknown_invoice_is_not_found() -> None:
    given(INVOICE).when(PayInvoice(invoice_id=INVOICE_ID, amount=1250)).then_raises(NotFound)


def test_a_paid_invoice_can_be_refunded() -> None:
    given(INVOICE, OPENED, INVOICE_PAID).when(RefundInvoice(invoice_id=INVOICE_ID)).then(REFUNDED)


def test_an_unpaid_invoice_cannot_be_refunded() -> None:
    given(INVOICE, OPENED).when(RefundInvoice(invoice_id=INVOICE_ID)).then_raises(DomainError, match="is open")


def test_voiding_an_open_invoice_makes_it_void() -> None:
    given(INVOICE, OPENED).when(VoidInvoice(invoice_id=INVOICE_ID)).then(VOIDED)


def test_voiding_a_paid_invoice_refunds_it() -> None:
    given(INVOICE, OPENED, INVOICE_PAID).when(VoidInvoice(invoice_id=INVOICE_ID)).then(REFUNDED)


def test_voiding_a_refunded_invoice_changes_nothing() -> None:
    given(INVOICE, OPENED, INVOICE_PAID, REFUNDED).when(VoidInvoice(invoice_id=INVOICE_ID)).then()
