"""``GET /ready``: the status for anyone, the report behind it only for an authenticated administrator."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from mini import build

from citadel import Application
from citadel.http import create_asgi
from citadel.http.auth import bearer_authenticator
from citadel.security import Policy, TokenVerifier, issue_token

SECRET = "a-test-secret-that-is-long-enough-for-hs256"
REPORT = {"status", "head", "projections", "dead_letters", "process_managers"}


def bearer(subject: str, *roles: str) -> dict[str, str]:
    return {"authorization": f"Bearer {issue_token(SECRET, subject, roles)}"}


@contextlib.asynccontextmanager
async def served(application: Application) -> AsyncIterator[httpx.AsyncClient]:
    asgi = create_asgi(
        application, manage_lifecycle=False, authenticate=bearer_authenticator(TokenVerifier(secret=SECRET))
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(asgi), base_url="http://shop") as client:
        yield client


async def test_an_anonymous_caller_gets_only_the_status_of_a_ready_node(application: Application) -> None:
    async with served(application) as client:
        response = await client.get("/ready")
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


async def test_a_caller_without_an_admin_role_gets_only_the_status(application: Application) -> None:
    async with served(application) as client:
        response = await client.get("/ready", headers=bearer("ann", "customer", "editor"))
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


async def test_an_admin_gets_the_full_report(application: Application) -> None:
    async with served(application) as client:
        response = await client.get("/ready", headers=bearer("ops", "admin"))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == REPORT
    assert {p["name"] for p in body["projections"]} == {"orders.OrderRows", "billing.invoices", "analytics.revenue"}


async def test_a_bad_token_is_401_not_the_status(application: Application) -> None:
    async with served(application) as client:
        response = await client.get("/ready", headers={"authorization": "Bearer not-a-token"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:citadel:problem:unauthenticated"


async def test_an_anonymous_caller_of_a_degraded_node_learns_only_that_it_is_degraded(
    application: Application,
) -> None:
    await application.consumers["analytics.revenue"].stop()
    async with served(application) as client:
        anonymous = await client.get("/ready")
        admin = await client.get("/ready", headers=bearer("ops", "admin"))
    assert (anonymous.status_code, anonymous.json()) == (503, {"status": "degraded"})
    assert admin.status_code == 503
    assert admin.json()["status"] == "degraded"
    assert any(not p["running"] for p in admin.json()["projections"])


async def test_an_anonymous_caller_of_a_node_without_its_store_learns_only_that_it_is_unavailable(
    store_url: str,
) -> None:
    async with served(build(store=store_url)) as client:  # never started: no store
        anonymous = await client.get("/ready")
        admin = await client.get("/ready", headers=bearer("ops", "admin"))
    assert (anonymous.status_code, anonymous.json()) == (503, {"status": "unavailable"})
    assert anonymous.headers["retry-after"] == "1"
    assert admin.status_code == 503
    assert "not started" in admin.json()["detail"]


async def test_with_a_policy_the_report_is_for_its_superusers(store_url: str) -> None:
    async with (
        build(store=store_url, policy=Policy(superusers=("root",))) as application,
        served(application) as client,
    ):
        root = await client.get("/ready", headers=bearer("ops", "root"))
        admin = await client.get("/ready", headers=bearer("ops", "admin"))
    assert set(root.json()) == REPORT
    assert admin.json() == {"status": "ready"}
