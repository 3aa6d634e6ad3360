"""Seats of a live workshop, through the whole shop: reserved on order, confirmed on payment, released on
cancellation or expiry, never sold beyond the item's seats, and no dead letter left behind."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from citadel import Application, DomainError, NotFound
from examples.shop.analytics.contract import GetOrdersByStatus, GetRevenue, RevenueReport
from examples.shop.billing.contract import GetInvoice, PayInvoice
from examples.shop.content.contract import GetItem, ItemDetails, PublishContent
from examples.shop.content.seats import SEATS
from examples.shop.orders.contract import CancelOrder, GetOrder, OrderSummary

from .shopping import can_read, order, pay, publish, register, settle


async def workshop(app: Application, seats: int, hold_seconds: int = 900) -> str:
    item = await app.dispatch(
        PublishContent(title="Live workshop", body="...", price=1000, seats=seats, hold_seconds=hold_seconds)
    )
    return str(item.content_id)


async def item(app: Application, content_id: str) -> ItemDetails:
    found: ItemDetails = await app.query(GetItem(content_id=content_id))
    return found


async def summary(app: Application, order_id: str) -> OrderSummary:
    found: OrderSummary = await app.query(GetOrder(order_id=order_id))
    return found


async def sold_seats(app: Application, content_id: str) -> int:
    """Seats sold to paid orders, from the item's stream itself (not from a read model)."""
    records = await app.store.read_stream(f"item-{content_id}")
    return sum(SEATS.fold(r.event for r in records).sold.values())


async def never_oversold(app: Application, content_id: str) -> bool:
    """Whether no event of the item's stream ever left fewer than zero seats."""
    records = await app.store.read_stream(f"item-{content_id}")
    return all(getattr(r.event, "seats_left", 0) >= 0 for r in records)


async def settle_all_but(app: Application, stopped: str) -> None:
    """Wait until every consumer but ``stopped`` has processed the whole log, its own reactions included."""
    while True:
        last = await app.store.last_position()
        for name, consumer in app.consumers.items():
            if name != stopped:
                assert await consumer.wait_for(last, 10.0), f"{name} did not catch up"
        if await app.store.last_position() == last:
            return


async def test_fifty_orders_at_once_for_the_last_ten_seats_reserve_exactly_ten(shop: Application) -> None:
    seminar = await workshop(shop, seats=12)
    first = await order(shop, await register(shop, "first@example.com"), seminar, quantity=2)
    await pay(shop, first.order_id)
    assert (await item(shop, seminar)).seats_left == 10
    customers = [await register(shop, f"c{i}@example.com") for i in range(50)]

    placed = await asyncio.gather(*(order(shop, c, seminar) for c in customers))
    await settle(shop)

    assert {p.status for p in placed} == {"reserving"}
    orders = [await summary(shop, p.order_id) for p in placed]
    assert Counter((o.status, o.reason) for o in orders) == {("created", ""): 10, ("refused", "sold out"): 40}
    assert (await item(shop, seminar)).seats_left == 0
    assert await shop.dead_letters() == []
    for refused in (o for o in orders if o.status == "refused"):
        with pytest.raises(NotFound):
            await shop.query(GetInvoice(order_id=refused.order_id))
    counts = await shop.query(GetOrdersByStatus())
    assert (counts.reserving, counts.created, counts.refused, counts.paid) == (0, 10, 40, 1)

    held = [o for o in orders if o.status == "created"]
    bills = [await shop.query(GetInvoice(order_id=o.order_id)) for o in held]
    await asyncio.gather(*(shop.dispatch(PayInvoice(invoice_id=b.invoice_id, amount=b.amount)) for b in bills))
    await settle(shop)

    assert {(await summary(shop, o.order_id)).status for o in held} == {"paid"}
    assert await sold_seats(shop, seminar) == 12
    assert await never_oversold(shop, seminar)
    assert (await item(shop, seminar)).seats_left == 0
    assert await shop.dead_letters() == []


async def test_an_order_of_a_workshop_is_billed_once_its_seat_is_held(shop: Application) -> None:
    seminar = await workshop(shop, seats=3)
    placed = await order(shop, await register(shop), seminar)
    assert placed.status == "reserving"

    await settle(shop)

    assert (await summary(shop, placed.order_id)).status == "created"
    assert (await shop.query(GetInvoice(order_id=placed.order_id))).amount == 1000
    assert (await item(shop, seminar)).seats_left == 2


async def test_paying_confirms_the_seat_and_grants_access(shop: Application) -> None:
    customer, seminar = await register(shop), await workshop(shop, seats=1)
    placed = await order(shop, customer, seminar)

    await pay(shop, placed.order_id)

    assert (await summary(shop, placed.order_id)).status == "paid"
    assert await sold_seats(shop, seminar) == 1
    assert await can_read(shop, customer, seminar)
    late = await order(shop, await register(shop, "late@example.com"), seminar)
    await settle(shop)
    assert (await summary(shop, late.order_id)).reason == "sold out"


async def test_cancelling_a_reserved_order_releases_its_seat(shop: Application) -> None:
    seminar = await workshop(shop, seats=1)
    placed = await order(shop, await register(shop), seminar)
    await settle(shop)
    assert (await item(shop, seminar)).seats_left == 0

    await shop.dispatch(CancelOrder(order_id=placed.order_id))
    await settle(shop)

    assert (await item(shop, seminar)).seats_left == 1
    assert (await shop.query(GetInvoice(order_id=placed.order_id))).status == "void"
    next_one = await order(shop, await register(shop, "next@example.com"), seminar)
    await settle(shop)
    assert (await summary(shop, next_one.order_id)).status == "created"


async def test_an_order_cancelled_while_reserving_leaves_no_seat_held(shop: Application) -> None:
    seminar = await workshop(shop, seats=1)
    seating = shop.consumers["orders.seating"]
    await seating.stop()  # content has not answered yet when the customer cancels
    placed = await order(shop, await register(shop), seminar)
    await shop.dispatch(CancelOrder(order_id=placed.order_id))

    await seating.start()
    await settle(shop)

    assert (await summary(shop, placed.order_id)).status == "cancelled"
    assert (await item(shop, seminar)).seats_left == 1
    with pytest.raises(NotFound):
        await shop.query(GetInvoice(order_id=placed.order_id))
    assert await shop.dead_letters() == []


async def test_an_expired_hold_is_released_for_the_next_order_and_its_order_refused(shop: Application) -> None:
    seminar = await workshop(shop, seats=1, hold_seconds=0)
    first = await order(shop, await register(shop), seminar)
    await settle(shop)
    bill = await shop.query(GetInvoice(order_id=first.order_id))

    second = await order(shop, await register(shop, "second@example.com"), seminar)
    await settle(shop)

    refused = await summary(shop, first.order_id)
    assert (refused.status, refused.reason, refused.total) == ("refused", "hold expired", 1000)
    assert (await summary(shop, second.order_id)).status == "created"
    assert (await item(shop, seminar)).seats_left == 0
    with pytest.raises(DomainError, match="void"):
        await shop.dispatch(PayInvoice(invoice_id=bill.invoice_id, amount=bill.amount))


async def test_an_expired_hold_nobody_needed_is_still_confirmed_by_payment(shop: Application) -> None:
    seminar = await workshop(shop, seats=1, hold_seconds=0)
    placed = await order(shop, await register(shop), seminar)

    await pay(shop, placed.order_id)

    assert (await summary(shop, placed.order_id)).status == "paid"
    assert await sold_seats(shop, seminar) == 1


async def test_a_payment_that_arrives_after_its_hold_went_to_another_order_is_refunded(shop: Application) -> None:
    customer, seminar = await register(shop), await workshop(shop, seats=1, hold_seconds=0)
    first = await order(shop, customer, seminar)
    await settle(shop)
    bill = await shop.query(GetInvoice(order_id=first.order_id))
    seating = shop.consumers["orders.seating"]
    await seating.stop()  # the next order's request is queued before the payment's confirmation
    second = await order(shop, await register(shop, "second@example.com"), seminar)
    await shop.dispatch(PayInvoice(invoice_id=bill.invoice_id, amount=bill.amount))
    await settle_all_but(shop, "orders.seating")
    assert (await summary(shop, first.order_id)).status == "paid"

    await seating.start()
    await settle(shop)

    assert (await summary(shop, first.order_id)).reason == "hold expired"
    assert (await shop.query(GetInvoice(order_id=first.order_id))).status == "refunded"
    assert not await can_read(shop, customer, seminar)
    assert (await summary(shop, second.order_id)).status == "created"
    assert await shop.query(GetRevenue()) == RevenueReport(paid_orders=0, revenue=0, refunded=1000)
    assert await shop.dead_letters() == []


async def test_an_order_refused_one_workshop_gives_back_the_seats_of_another(shop: Application) -> None:
    morning, evening, guide = await workshop(shop, seats=1), await workshop(shop, seats=1), await publish(shop, 5)
    rival = await order(shop, await register(shop, "rival@example.com"), evening)
    await settle(shop)

    placed = await order(shop, await register(shop), morning, evening, guide)
    await settle(shop)

    assert (await summary(shop, rival.order_id)).status == "created"
    assert (await summary(shop, placed.order_id)).reason == "sold out"
    assert (await item(shop, morning)).seats_left == 1
    assert (await item(shop, guide)).seats_left is None
    assert await shop.dead_letters() == []
