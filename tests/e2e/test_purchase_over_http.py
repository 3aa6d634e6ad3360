"""The shop's purchase flows end to end, over HTTP only: a client sees what the modules do between them."""

from __future__ import annotations

import asyncio

import httpx
from deployments import Deployment
from shopper import (
    buy,
    can_read,
    invoice,
    ok,
    order,
    order_status,
    pay,
    position,
    price,
    problem,
    publish,
    register,
    revenue,
    settle,
    statuses,
)


async def test_buying_two_items_bills_the_catalog_total_and_grants_access_once_paid(
    client: httpx.AsyncClient,
) -> None:
    customer = await register(client)
    guide, video = await publish(client, 500), await publish(client, 250)
    placed = await order(client, customer, guide, video, quantity=2)
    assert placed.total == 2 * await price(client, guide) + 2 * await price(client, video) == 1500

    bill = await invoice(client, placed.order_id, placed.position)
    assert bill == {"invoice_id": bill["invoice_id"], "order_id": placed.order_id, "amount": 1500, "status": "open"}
    assert not await can_read(client, customer, guide)

    paid = await pay(client, bill, key="pay-1")
    assert ok(paid) == {}
    paid_at = position(paid)
    assert (await invoice(client, placed.order_id, paid_at))["status"] == "paid"
    assert await order_status(client, placed.order_id, "paid") == "paid"
    assert await can_read(client, customer, guide, True)
    assert await can_read(client, customer, video, True)
    assert await revenue(client, paid_at) == {"paid_orders": 1, "revenue": 1500, "refunded": 0}
    await settle(client)
    assert await statuses(client) == {"created": 0, "paid": 1, "cancelled": 0, "refunded": 0}


async def test_an_order_is_unpaid_and_grants_nothing_until_its_invoice_is_paid(client: httpx.AsyncClient) -> None:
    customer, guide = await register(client), await publish(client, 500)
    placed = await order(client, customer, guide)
    await invoice(client, placed.order_id, placed.position)
    await settle(client)

    assert await order_status(client, placed.order_id) == "created"
    assert not await can_read(client, customer, guide)
    assert await revenue(client) == {"paid_orders": 0, "revenue": 0, "refunded": 0}
    assert await statuses(client) == {"created": 1, "paid": 0, "cancelled": 0, "refunded": 0}


async def test_cancelling_an_order_voids_its_invoice(client: httpx.AsyncClient) -> None:
    placed = await order(client, await register(client), await publish(client, 500))
    await invoice(client, placed.order_id, placed.position)

    cancelled = await client.post("/orders/cancel-order", json={"order_id": placed.order_id})

    assert ok(cancelled) == {}
    assert (await invoice(client, placed.order_id, position(cancelled)))["status"] == "void"
    assert await order_status(client, placed.order_id) == "cancelled"
    await settle(client)
    assert await statuses(client) == {"created": 0, "paid": 0, "cancelled": 1, "refunded": 0}
    assert await revenue(client) == {"paid_orders": 0, "revenue": 0, "refunded": 0}


async def test_refunding_an_invoice_revokes_access_and_counts_as_refunded(client: httpx.AsyncClient) -> None:
    customer, guide, video = await register(client), await publish(client, 500), await publish(client, 250)
    placed = await buy(client, customer, guide, video)
    bill = await invoice(client, placed.order_id)
    assert await can_read(client, customer, guide, True)

    refunded = await client.post("/billing/refund-invoice", json={"invoice_id": bill["invoice_id"]})

    assert ok(refunded) == {}
    assert (await invoice(client, placed.order_id, position(refunded)))["status"] == "refunded"
    assert await order_status(client, placed.order_id, "refunded") == "refunded"
    assert not await can_read(client, customer, guide, False)
    assert not await can_read(client, customer, video, False)
    await settle(client)
    assert await revenue(client) == {"paid_orders": 0, "revenue": 0, "refunded": 750}
    assert await statuses(client) == {"created": 0, "paid": 0, "cancelled": 0, "refunded": 1}


async def test_a_payment_retried_with_its_idempotency_key_answers_the_same_and_appends_nothing(
    client: httpx.AsyncClient, deployment: Deployment
) -> None:
    placed = await order(client, await register(client), await publish(client, 500))
    bill = await invoice(client, placed.order_id, placed.position)
    first = await pay(client, bill, key="pay-once")
    await settle(client)
    heads = await deployment.heads()

    again = await pay(client, bill, key="pay-once")

    assert (again.status_code, again.content, again.headers["citadel-position"]) == (
        first.status_code,
        first.content,
        first.headers["citadel-position"],
    )
    assert again.status_code == 200
    await settle(client)
    assert await deployment.heads() == heads
    assert await revenue(client) == {"paid_orders": 1, "revenue": 500, "refunded": 0}


async def test_the_same_idempotency_key_with_another_body_is_422_and_appends_nothing(
    client: httpx.AsyncClient, deployment: Deployment
) -> None:
    customer, guide = await register(client), await publish(client, 500)
    first, second = await order(client, customer, guide), await order(client, customer, guide)
    first_bill = await invoice(client, first.order_id, first.position)
    second_bill = await invoice(client, second.order_id, second.position)
    ok(await pay(client, first_bill, key="shared"))
    await settle(client)
    heads = await deployment.heads()

    reused = await pay(client, second_bill, key="shared")

    problem(reused, 422, "idempotency-key-reused")
    assert await deployment.heads() == heads
    assert (await invoice(client, second.order_id))["status"] == "open"


async def test_of_ten_concurrent_payments_of_one_invoice_exactly_one_succeeds_and_the_rest_are_409(
    client: httpx.AsyncClient, deployment: Deployment
) -> None:
    placed = await order(client, await register(client), await publish(client, 500))
    bill = await invoice(client, placed.order_id, placed.position)

    responses = await asyncio.gather(*(pay(client, bill, key=f"attempt-{i}") for i in range(10)))

    assert sorted(r.status_code for r in responses) == [200] + [409] * 9, [r.text for r in responses]
    for refused in (r for r in responses if r.status_code == 409):
        assert problem(refused, 409, "conflict")["detail"].endswith("only an open invoice can be paid")
    paid = [
        r
        for r in await deployment.app_of("billing").store.read_stream(f"invoice-{bill['invoice_id']}")
        if r.type == "billing.InvoicePaid"
    ]
    assert len(paid) == 1
    await settle(client)
    assert await revenue(client) == {"paid_orders": 1, "revenue": 500, "refunded": 0}


async def test_concurrent_retries_with_the_same_idempotency_key_all_answer_as_the_first_payment(
    client: httpx.AsyncClient,
) -> None:
    placed = await order(client, await register(client), await publish(client, 500))
    bill = await invoice(client, placed.order_id, placed.position)

    responses = await asyncio.gather(*(pay(client, bill, key="impatient-client") for _ in range(10)))

    assert [r.status_code for r in responses] == [200] * 10, [r.text for r in responses]
    assert len({r.headers["citadel-position"] for r in responses}) == 1
