"""The shop as a whole, on real SQLite: commands and queries through the application, modules reacting."""

from __future__ import annotations

import asyncio

import pytest

from citadel import Application, DomainError, check
from citadel.testing import running
from examples.shop import build_app
from examples.shop.analytics.contract import GetOrdersByStatus, GetRevenue, RevenueReport, StatusCounts
from examples.shop.billing.contract import GetInvoice, PayInvoice, RefundInvoice
from examples.shop.orders.contract import CancelOrder, GetOrder

from .shopping import can_read, invoice, order, pay, publish, register, settle


async def test_buying_two_items_bills_the_order_and_grants_access_once_paid(shop: Application) -> None:
    customer = await register(shop)
    guide, video = await publish(shop, 500), await publish(shop, 250)
    created = await order(shop, customer, guide, video, quantity=2)
    assert created.total == 1500
    bill = await invoice(shop, created.order_id)
    assert (bill.amount, bill.status) == (1500, "open")
    assert not await can_read(shop, customer, guide)

    await pay(shop, created.order_id)

    assert (await shop.query(GetOrder(order_id=created.order_id))).status == "paid"
    assert (await shop.query(GetInvoice(order_id=created.order_id))).status == "paid"
    assert await can_read(shop, customer, guide)
    assert await can_read(shop, customer, video)
    assert await shop.query(GetRevenue()) == RevenueReport(paid_orders=1, revenue=1500, refunded=0)
    assert await shop.query(GetOrdersByStatus()) == StatusCounts(created=0, paid=1, cancelled=0, refunded=0)


async def test_cancelling_an_order_voids_its_invoice(shop: Application) -> None:
    created = await order(shop, await register(shop), await publish(shop, 500))
    await invoice(shop, created.order_id)

    await shop.dispatch(CancelOrder(order_id=created.order_id))
    await settle(shop)

    assert (await shop.query(GetInvoice(order_id=created.order_id))).status == "void"
    assert (await shop.query(GetOrder(order_id=created.order_id))).status == "cancelled"
    assert await shop.query(GetOrdersByStatus()) == StatusCounts(created=0, paid=0, cancelled=1, refunded=0)


async def test_a_paid_order_cannot_be_cancelled(shop: Application) -> None:
    created = await order(shop, await register(shop), await publish(shop, 500))
    await pay(shop, created.order_id)

    with pytest.raises(DomainError, match="is paid"):
        await shop.dispatch(CancelOrder(order_id=created.order_id))


async def test_refunding_an_invoice_revokes_access_and_counts_as_refunded(shop: Application) -> None:
    customer, guide = await register(shop), await publish(shop, 500)
    created = await order(shop, customer, guide)
    bill = await pay(shop, created.order_id)

    await shop.dispatch(RefundInvoice(invoice_id=bill.invoice_id))
    await settle(shop)

    assert (await shop.query(GetOrder(order_id=created.order_id))).status == "refunded"
    assert not await can_read(shop, customer, guide)
    assert await shop.query(GetRevenue()) == RevenueReport(paid_orders=0, revenue=0, refunded=500)
    assert await shop.query(GetOrdersByStatus()) == StatusCounts(created=0, paid=0, cancelled=0, refunded=1)


async def test_a_payment_that_races_a_cancellation_is_refunded(shop: Application) -> None:
    created = await order(shop, await register(shop), await publish(shop, 500))
    bill = await invoice(shop, created.order_id)
    invoicing = shop.consumers["billing.invoicing"]
    await invoicing.stop()  # billing has not told orders about the payment when the customer cancels
    await shop.dispatch(PayInvoice(invoice_id=bill.invoice_id, amount=500))
    await shop.dispatch(CancelOrder(order_id=created.order_id))

    await invoicing.start()
    await settle(shop)

    assert (await shop.query(GetOrder(order_id=created.order_id))).status == "cancelled"
    assert (await shop.query(GetInvoice(order_id=created.order_id))).status == "refunded"
    assert await shop.query(GetRevenue()) == RevenueReport(paid_orders=0, revenue=0, refunded=500)


async def test_replaying_billing_from_the_start_opens_no_second_invoice(store_url: str) -> None:
    async with running(build_app(secure=False), store=store_url) as app:
        created = await order(app, await register(app), await publish(app, 500))
        bill = await invoice(app, created.order_id)
        await app.consumers["billing.invoicing"].stop()
        await app.store.rewind_checkpoint("billing.invoicing")
        assert await app.store.checkpoint("billing.invoicing") == 0

    async with running(build_app(secure=False), store=store_url) as app:
        await settle(app)
        assert app.consumers["billing.invoicing"].position == await app.store.head_position()
        opened = [r for r in await app.store.read_all(1, 1000) if r.type == "billing.InvoiceOpened"]
        assert len(opened) == 1
        assert await app.query(GetInvoice(order_id=created.order_id)) == bill


async def test_rebuilding_the_analytics_projections_gives_the_live_results(shop: Application) -> None:
    customer, guide = await register(shop), await publish(shop, 500)
    kept, refunded, cancelled = [await order(shop, customer, guide) for _ in range(3)]
    await pay(shop, kept.order_id)
    await shop.dispatch(RefundInvoice(invoice_id=(await pay(shop, refunded.order_id)).invoice_id))
    await shop.dispatch(CancelOrder(order_id=cancelled.order_id))
    await settle(shop)
    live = (await shop.query(GetRevenue()), await shop.query(GetOrdersByStatus()))

    for name in ("analytics.RevenueTotals", "analytics.OrdersByStatus"):
        await shop.rebuild_projection(name)

    assert (await shop.query(GetRevenue()), await shop.query(GetOrdersByStatus())) == live
    assert live == (
        RevenueReport(paid_orders=1, revenue=500, refunded=500),
        StatusCounts(created=0, paid=1, cancelled=1, refunded=1),
    )


def test_the_shop_keeps_its_module_boundaries() -> None:
    check(build_app(secure=False))


async def test_many_orders_of_one_customer_paid_at_once_all_grant_access_without_dead_letters(
    shop: Application,
) -> None:
    customer = await register(shop)
    items = [await publish(shop, 100 + i) for i in range(30)]
    placed = [await order(shop, customer, item) for item in items]
    bills = [await invoice(shop, p.order_id) for p in placed]

    await asyncio.gather(*(shop.dispatch(PayInvoice(invoice_id=b.invoice_id, amount=b.amount)) for b in bills))
    await settle(shop)

    assert await shop.dead_letters() == []
    assert [await can_read(shop, customer, item) for item in items] == [True] * 30
