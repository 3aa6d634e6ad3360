"""The shop's business rules as callers meet them: the errors that become 409s, 404s and 422s over HTTP."""

from __future__ import annotations

import asyncio

import pytest

from citadel import Application, DomainError, InvalidCommand, NotFound, UniqueViolation
from examples.shop.billing.contract import GetInvoice, PayInvoice
from examples.shop.billing.domain import OpenInvoice
from examples.shop.content.contract import GetItem, GetPrices, ItemDetails, PriceList
from examples.shop.orders.contract import CreateOrder, GetOrder, OrderItem
from examples.shop.users.contract import GetUser, RegisterUser

from .shopping import invoice, order, publish, register


async def test_registering_an_email_again_in_another_case_is_a_unique_violation(shop: Application) -> None:
    await register(shop, "ada@example.com")

    with pytest.raises(UniqueViolation):
        await shop.dispatch(RegisterUser(email="ADA@example.com", name="Ada again"))


async def test_a_malformed_email_is_an_invalid_command(shop: Application) -> None:
    with pytest.raises(InvalidCommand, match="email"):
        await shop.dispatch(RegisterUser(email="ada at example.com", name="Ada"))


async def test_an_unknown_user_is_not_found(shop: Application) -> None:
    with pytest.raises(NotFound):
        await shop.query(GetUser(user_id="nobody"))


async def test_an_item_shows_its_title_and_price_and_unknown_ones_are_not_found(shop: Application) -> None:
    guide = await publish(shop, 500)

    assert await shop.query(GetItem(content_id=guide)) == ItemDetails(content_id=guide, title="Item at 500", price=500)
    with pytest.raises(NotFound):
        await shop.query(GetItem(content_id="nothing"))


async def test_prices_are_quoted_for_known_items_only(shop: Application) -> None:
    guide = await publish(shop, 500)

    assert await shop.query(GetPrices(content_ids=[guide, "nothing"])) == PriceList(prices={guide: 500})


async def test_ordering_unknown_content_is_an_invalid_command(shop: Application) -> None:
    with pytest.raises(InvalidCommand, match="no such item: nothing"):
        await order(shop, await register(shop), "nothing")


async def test_ordering_a_quantity_of_zero_is_an_invalid_command(shop: Application) -> None:
    with pytest.raises(InvalidCommand, match="must be 1 to 10000"):
        await order(shop, await register(shop), await publish(shop, 500), quantity=0)


async def test_ordering_nothing_is_an_invalid_command(shop: Application) -> None:
    with pytest.raises(InvalidCommand, match="at least one item"):
        await shop.dispatch(CreateOrder(customer_id=await register(shop), items=[]))


async def test_an_order_by_an_unknown_customer_is_an_invalid_command(shop: Application) -> None:
    with pytest.raises(InvalidCommand, match="no customer nobody"):
        await shop.dispatch(CreateOrder(customer_id="nobody", items=[OrderItem(content_id="c", quantity=1)]))


async def test_an_unknown_order_is_not_found(shop: Application) -> None:
    with pytest.raises(NotFound):
        await shop.query(GetOrder(order_id="nothing"))


async def test_an_order_without_an_invoice_yet_has_none_to_show(shop: Application) -> None:
    with pytest.raises(NotFound):
        await shop.query(GetInvoice(order_id="nothing"))


async def test_paying_the_wrong_amount_is_an_invalid_command(shop: Application) -> None:
    created = await order(shop, await register(shop), await publish(shop, 500))
    bill = await invoice(shop, created.order_id)

    with pytest.raises(InvalidCommand, match="500 cents, not 499"):
        await shop.dispatch(PayInvoice(invoice_id=bill.invoice_id, amount=499))


async def test_of_ten_concurrent_payments_of_one_invoice_exactly_one_succeeds(shop: Application) -> None:
    created = await order(shop, await register(shop), await publish(shop, 500))
    bill = await invoice(shop, created.order_id)
    payment = PayInvoice(invoice_id=bill.invoice_id, amount=500)

    results = await asyncio.gather(*(shop.dispatch(payment) for _ in range(10)), return_exceptions=True)

    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, DomainError) for r in results if r is not None), results
    paid = [r for r in await shop.store.read_stream(f"invoice-{bill.invoice_id}") if r.type == "billing.InvoicePaid"]
    assert len(paid) == 1


async def test_opening_an_invoice_again_for_the_same_order_writes_nothing(shop: Application) -> None:
    created = await order(shop, await register(shop), await publish(shop, 500))
    bill = await invoice(shop, created.order_id)
    head = await shop.store.head_position()

    await shop.dispatch(OpenInvoice(order_id=created.order_id, customer_id="someone", amount=1))

    assert await shop.store.head_position() == head
    assert await shop.query(GetInvoice(order_id=created.order_id)) == bill


async def test_concurrent_openings_of_an_orders_invoice_open_it_once(shop: Application) -> None:
    opening = OpenInvoice(order_id="o-race", customer_id="u1", amount=500)

    results = await asyncio.gather(*(shop.dispatch(opening) for _ in range(5)), return_exceptions=True)

    assert results == [None] * 5
    invoice_id = (await shop.query(GetInvoice(order_id="o-race"))).invoice_id
    assert [r.type for r in await shop.store.read_stream(f"invoice-{invoice_id}")] == ["billing.InvoiceOpened"]


async def test_of_concurrent_registrations_of_one_email_exactly_one_succeeds(shop: Application) -> None:
    emails = ["eve@example.com", "EVE@example.com", "Eve@Example.com", "bob@example.com"]

    *eves, bob = await asyncio.gather(*(register(shop, e) for e in emails), return_exceptions=True)

    assert isinstance(bob, str)
    assert sum(isinstance(r, str) for r in eves) == 1
    assert sum(isinstance(r, UniqueViolation) for r in eves) == 2
