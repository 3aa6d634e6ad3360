"""The last seats of a workshop, ordered by fifty customers at once over HTTP, in every deployment: exactly as
many orders hold seats as there were seats, the others are refused with the reason, and nothing is parked."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
from shopper import (
    dead_letters,
    eventually,
    invoice,
    item,
    ok,
    order,
    order_status,
    order_summary,
    pay,
    problem,
    publish_workshop,
    register,
    settle,
)


async def answered(client: httpx.AsyncClient, order_id: str) -> dict[str, Any]:
    """The order once content has answered its reservation (polling until it is no longer ``reserving``)."""
    return await eventually(lambda: order_summary(client, order_id), lambda o: o["status"] != "reserving")


async def test_fifty_orders_at_once_for_ten_seats_sell_ten_and_refuse_forty(client: httpx.AsyncClient) -> None:
    seminar = await publish_workshop(client, seats=10)
    customers = [await register(client, f"c{i}@example.com") for i in range(50)]

    placed = await asyncio.gather(*(order(client, c, seminar) for c in customers))
    orders = [await answered(client, p.order_id) for p in placed]
    await settle(client)

    assert Counter((o["status"], o["reason"]) for o in orders) == {("created", ""): 10, ("refused", "sold out"): 40}
    assert (await item(client, seminar))["seats_left"] == 0
    assert await dead_letters(client) == {}
    refused = next(o for o in orders if o["status"] == "refused")
    problem(await client.get("/billing/invoice", params={"order_id": refused["order_id"]}), 404, "not-found")

    held = [p for p, o in zip(placed, orders, strict=True) if o["status"] == "created"]
    bills = [await invoice(client, p.order_id, p.position) for p in held]
    for response in await asyncio.gather(*(pay(client, b) for b in bills)):
        ok(response)
    assert {await order_status(client, p.order_id, "paid") for p in held} == {"paid"}
    await settle(client)

    assert await item(client, seminar) == {
        "content_id": seminar,
        "title": "Live workshop",
        "price": 1000,
        "seats": 10,
        "seats_left": 0,
    }
    assert await dead_letters(client) == {}
    assert ok(await client.get("/ready"))["status"] == "ready"


async def test_a_cancelled_order_gives_its_seat_to_the_next_customer(client: httpx.AsyncClient) -> None:
    seminar = await publish_workshop(client, seats=1)
    first = await order(client, await register(client), seminar)
    assert (await answered(client, first.order_id))["status"] == "created"

    ok(await client.post("/orders/cancel-order", json={"order_id": first.order_id}))
    freed = await eventually(lambda: item(client, seminar), lambda i: i["seats_left"] == 1)
    second = await order(client, await register(client, "second@example.com"), seminar)

    assert freed["seats_left"] == 1
    assert (await order_summary(client, first.order_id))["status"] == "cancelled"
    assert (await answered(client, second.order_id))["status"] == "created"
    assert (await item(client, seminar))["seats_left"] == 0
