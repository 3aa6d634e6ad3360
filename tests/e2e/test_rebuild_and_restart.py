"""Rebuilding read models and restarting the shop on its file: a client sees the same shop afterwards."""

from __future__ import annotations

import httpx
from deployments import Deployment
from shopper import (
    buy,
    can_read,
    invoice,
    ok,
    order,
    order_status,
    over_http,
    position,
    publish,
    register,
    revenue,
    settle,
    statuses,
)

from examples.shop import build_app

ANALYTICS = ("analytics.RevenueTotals", "analytics.OrdersByStatus")


async def shop_with_history(client: httpx.AsyncClient) -> tuple[str, str]:
    """One order kept, one refunded, one cancelled and one left open; return the customer and the item."""
    customer, guide = await register(client), await publish(client, 500)
    await buy(client, customer, guide)
    refunded = await buy(client, customer, guide)
    bill = await invoice(client, refunded.order_id)
    ok(await client.post("/billing/refund-invoice", json={"invoice_id": bill["invoice_id"]}))
    cancelled = await order(client, customer, guide)
    await invoice(client, cancelled.order_id, cancelled.position)
    ok(await client.post("/orders/cancel-order", json={"order_id": cancelled.order_id}))
    await order(client, customer, guide)
    await settle(client)
    return customer, guide


async def test_the_analytics_projections_are_the_ones_a_rebuild_replays(deployment: Deployment) -> None:
    shop = deployment.app_of("analytics")
    assert set(ANALYTICS) <= set(shop.projections)
    assert all(not shop.projections[name].inline for name in ANALYTICS)


async def test_rebuilding_the_analytics_projections_gives_exactly_the_live_results(
    client: httpx.AsyncClient, deployment: Deployment
) -> None:
    await shop_with_history(client)
    shop = deployment.app_of("analytics")
    live = (await revenue(client), await statuses(client))
    assert live == (
        {"paid_orders": 1, "revenue": 500, "refunded": 500},
        {"created": 1, "paid": 1, "cancelled": 1, "refunded": 1},
    )

    for name in ANALYTICS:
        await shop.rebuild_projection(name)

    assert (await revenue(client), await statuses(client)) == live
    await settle(client)
    assert (await revenue(client), await statuses(client)) == live


async def test_a_restarted_shop_keeps_its_orders_invoices_access_and_analytics(store_url: str) -> None:
    async with build_app(store=store_url, secure=False) as first, over_http(first) as client:
        customer, guide = await register(client), await publish(client, 500)
        paid = await buy(client, customer, guide)
        open_order = await order(client, customer, guide)
        open_bill = await invoice(client, open_order.order_id, open_order.position)
        await settle(client)
        before = (await revenue(client), await statuses(client))

    async with build_app(store=store_url, secure=False) as second, over_http(second) as client:
        assert await order_status(client, paid.order_id) == "paid"
        assert (await invoice(client, paid.order_id))["status"] == "paid"
        assert await order_status(client, open_order.order_id) == "created"
        assert await invoice(client, open_order.order_id) == open_bill
        assert await can_read(client, customer, guide)
        assert (await revenue(client), await statuses(client)) == before
        duplicate = await client.post("/users/register-user", json={"email": "ADA@example.com", "name": "Ada"})
        assert duplicate.status_code == 409


async def test_after_a_restart_the_async_projections_count_only_the_new_events(store_url: str) -> None:
    async with build_app(store=store_url, secure=False) as first, over_http(first) as client:
        customer, guide = await register(client), await publish(client, 500)
        await buy(client, customer, guide)
        waiting = await order(client, customer, guide)
        await settle(client)

    async with build_app(store=store_url, secure=False) as second, over_http(second) as client:
        bill = await invoice(client, waiting.order_id)
        paid = await client.post("/billing/pay-invoice", json={"invoice_id": bill["invoice_id"], "amount": 500})
        assert await revenue(client, position(paid)) == {"paid_orders": 2, "revenue": 1000, "refunded": 0}
        assert await order_status(client, waiting.order_id, "paid") == "paid"
        await settle(client)
        assert await revenue(client) == {"paid_orders": 2, "revenue": 1000, "refunded": 0}
        assert await statuses(client) == {"created": 0, "paid": 2, "cancelled": 0, "refunded": 0}
        assert await can_read(client, customer, guide)


async def test_an_order_placed_just_before_a_stop_is_billed_once_after_the_restart(store_url: str) -> None:
    async with build_app(store=store_url, secure=False) as first, over_http(first) as client:
        customer, guide = await register(client), await publish(client, 500)
        await first.consumers["billing.invoicing"].stop()  # the shop stops before billing saw the order
        placed = await order(client, customer, guide)

    async with build_app(store=store_url, secure=False) as second, over_http(second) as client:
        bill = await invoice(client, placed.order_id, placed.position)
        await settle(client)
        assert (bill["amount"], bill["status"]) == (500, "open")
        opened = [r for r in await second.store.read_all(1, 1000) if r.type == "billing.InvoiceOpened"]
        assert [r.event.order_id for r in opened] == [placed.order_id]


async def test_an_order_placed_just_before_a_stop_is_counted_once_after_the_restart(store_url: str) -> None:
    async with build_app(store=store_url, secure=False) as first, over_http(first) as client:
        customer, guide = await register(client), await publish(client, 500)
        await order(client, customer, guide)  # the shop stops while analytics may be applying this order

    async with build_app(store=store_url, secure=False) as second, over_http(second) as client:
        await settle(client)
        assert await statuses(client) == {"created": 1, "paid": 0, "cancelled": 0, "refunded": 0}
