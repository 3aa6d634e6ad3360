"""Read-your-writes over HTTP across the shop's reactions: a query at a command's ``Citadel-Position`` answers
with what the process managers did in answer to it, on its first try (no retry of a 503 or a 404), every time.

A ``min_position`` beyond the highest position written is refused at once with a 422 (no write a client saw can
have it), instead of a wait that could only end in a 503.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from deployments import Deployment
from shopper import describe, ok, order, pay, position, problem, publish, register

TRIES = 20
WAIT = "10"
"""The ``Citadel-Wait`` each read asks for: far longer than the shop takes to react."""
FAR_AHEAD = 1 << 62


async def at_once(client: httpx.AsyncClient, path: str, min_position: str, **params: Any) -> Any:
    """The body of a query at ``min_position``, which must succeed on its first request."""
    params["min_position"] = min_position
    response = await client.get(path, params=params, headers={"citadel-wait": WAIT})
    assert response.status_code == 200, describe(response)
    return response.json()


async def test_an_invoice_opened_in_answer_to_an_order_is_read_at_the_order_s_position(
    client: httpx.AsyncClient,
) -> None:
    customer, guide = await register(client), await publish(client, 500)
    for _ in range(TRIES):
        placed = await order(client, customer, guide)
        bill = await at_once(client, "/billing/invoice", placed.position, order_id=placed.order_id)
        assert (bill["order_id"], bill["status"]) == (placed.order_id, "open")


async def test_access_granted_two_reactions_after_a_payment_is_read_at_the_payment_s_position(
    client: httpx.AsyncClient,
) -> None:
    customer = await register(client)
    for n in range(TRIES):
        item = await publish(client, 100 + n)
        placed = await order(client, customer, item)
        bill = await at_once(client, "/billing/invoice", placed.position, order_id=placed.order_id)
        paid = position(await pay(client, bill))
        access = await at_once(client, "/content/access", paid, user_id=customer, content_id=item)
        assert access == {"granted": True}


async def test_a_min_position_beyond_the_log_is_422_at_once_and_the_next_read_works(
    client: httpx.AsyncClient, deployment: Deployment
) -> None:
    customer = await register(client)
    head = await deployment.app_of("users").store.last_position()
    far = f"users:{FAR_AHEAD}" if len(deployment.services) > 1 else str(FAR_AHEAD)
    params = {"user_id": customer, "content_id": "x", "min_position": far}
    async with asyncio.timeout(5):  # a query that waited would wait the 20 s it asks for
        response = await client.get("/content/access", params=params, headers={"citadel-wait": "20"})
    found = problem(response, 422, "position-not-written")
    assert f"({head})" in found["detail"]
    assert ok(await client.get("/content/access", params={"user_id": customer, "content_id": "x"})) == {
        "granted": False
    }


async def test_a_min_position_beyond_the_log_of_the_service_that_answers_is_422_there(
    client: httpx.AsyncClient, deployment: Deployment
) -> None:
    head = await deployment.app_of("analytics").store.last_position()
    params = {"min_position": str(FAR_AHEAD)}  # a plain number: the log of the service that answers
    async with asyncio.timeout(5):
        response = await client.get("/analytics/revenue", params=params, headers={"citadel-wait": "20"})
    assert f"({head})" in problem(response, 422, "position-not-written")["detail"]


async def test_a_min_position_beyond_the_log_of_another_service_is_422_from_that_service(
    client: httpx.AsyncClient, deployment: Deployment
) -> None:
    customer = await register(client)
    head = await deployment.app_of("billing").store.last_position()
    params = {"user_id": customer, "content_id": "x", "min_position": f"billing:{FAR_AHEAD}"}
    async with asyncio.timeout(5):  # in three services, asked on the shop's; billing's refuses the position
        response = await client.get("/content/access", params=params, headers={"citadel-wait": "20"})
    assert f"({head})" in problem(response, 422, "position-not-written")["detail"]
