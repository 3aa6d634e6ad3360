"""``GET /ready`` with dead letters: the node still serves (200, so load balancers keep it) but says it is
``degraded``; the administrator's report counts the letters per consumer."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from mini import PlaceOrder

from citadel import Application
from citadel.http import create_asgi
from citadel.http.auth import bearer_authenticator
from citadel.security import TokenVerifier, issue_token
from citadel.testing import settle

SECRET = "a-test-secret-that-is-long-enough-for-hs256"
ADMIN = {"authorization": f"Bearer {issue_token(SECRET, 'ops', ['admin'])}"}


@contextlib.asynccontextmanager
async def served(application: Application) -> AsyncIterator[httpx.AsyncClient]:
    asgi = create_asgi(
        application, manage_lifecycle=False, authenticate=bearer_authenticator(TokenVerifier(secret=SECRET))
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(asgi), base_url="http://shop") as client:
        yield client


async def park_one(application: Application) -> int:
    """Place an order and park its event as a dead letter of the invoicing process manager; return its id."""
    await application.dispatch(PlaceOrder(customer="ann", amount=5))
    await settle(application)  # the order's event is readable, and the consumers are done with it
    (record, *_) = await application.store.read_all(1, 10)
    await application.store.add_dead_letter("billing.open_invoices", record, "RuntimeError: unlucky", 5)
    (letter,) = await application.store.dead_letters()
    return letter.id


async def test_an_anonymous_caller_of_a_node_with_dead_letters_learns_it_is_degraded_but_serving(
    application: Application,
) -> None:
    await park_one(application)
    async with served(application) as client:
        response = await client.get("/ready")
    assert (response.status_code, response.json()) == (200, {"status": "degraded"})


async def test_an_admin_sees_the_dead_letters_by_consumer_in_a_degraded_report(application: Application) -> None:
    await park_one(application)
    async with served(application) as client:
        response = await client.get("/ready", headers=ADMIN)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["dead_letters"] == {"billing.open_invoices": 1}
    assert all(p["running"] for p in body["projections"])


async def test_a_node_is_ready_again_once_its_dead_letters_are_discarded(application: Application) -> None:
    letter = await park_one(application)
    await application.discard_dead_letter(letter)
    async with served(application) as client:
        anonymous = await client.get("/ready")
        admin = await client.get("/ready", headers=ADMIN)
    assert (anonymous.status_code, anonymous.json()) == (200, {"status": "ready"})
    assert (admin.status_code, admin.json()["status"], admin.json()["dead_letters"]) == (200, "ready", {})


async def test_a_stopped_consumer_outweighs_dead_letters_and_takes_the_node_out(application: Application) -> None:
    await park_one(application)
    await application.consumers["analytics.revenue"].stop()
    async with served(application) as client:
        anonymous = await client.get("/ready")
        admin = await client.get("/ready", headers=ADMIN)
    assert (anonymous.status_code, anonymous.json()) == (503, {"status": "degraded"})
    assert (admin.status_code, admin.json()["status"]) == (503, "degraded")
