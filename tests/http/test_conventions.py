"""The HTTP conventions every Citadel application gets: routes from contracts, results, positions, waits."""

from __future__ import annotations

import asyncio

import httpx
from mini import unprocessed_position

from citadel import Application
from citadel.http import create_asgi
from citadel.http.auth import bearer_authenticator
from citadel.security import TokenVerifier, issue_token


async def place(client: httpx.AsyncClient, amount: int = 5, **headers: str) -> httpx.Response:
    return await client.post("/orders/place-order", json={"customer": "ann", "amount": amount}, headers=headers)


async def test_a_contract_command_is_a_post_that_answers_its_result_and_position(
    client: httpx.AsyncClient, application: Application
) -> None:
    response = await place(client)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"order_id"}
    assert int(response.headers["citadel-position"]) == await application.store.head_position()


async def test_a_contract_query_is_a_get_with_its_fields_as_parameters(client: httpx.AsyncClient) -> None:
    order_id = (await place(client, 7)).json()["order_id"]
    response = await client.get("/orders/order", params={"order_id": order_id})
    assert response.status_code == 200
    assert response.json() == {"order_id": order_id, "customer": "ann", "amount": 7, "status": "placed"}


async def test_a_command_without_result_answers_an_empty_object(client: httpx.AsyncClient) -> None:
    order_id = (await place(client)).json()["order_id"]
    response = await client.post("/orders/cancel-order", json={"order_id": order_id})
    assert (response.status_code, response.json()) == (200, {})


async def test_internal_commands_are_not_exposed(client: httpx.AsyncClient) -> None:
    response = await client.post("/billing/open-invoice", json={"order_id": "x", "amount": 1})
    assert response.status_code == 404


async def test_min_position_waits_for_the_modules_async_read_models(client: httpx.AsyncClient) -> None:
    position = (await place(client, 11)).headers["citadel-position"]
    response = await client.get("/analytics/revenue", params={"min_position": position})
    assert response.status_code == 200
    assert response.json()["orders"] == 1


async def test_min_position_beyond_the_log_answers_422_at_once(client: httpx.AsyncClient) -> None:
    response = await client.get("/analytics/revenue", params={"min_position": 10_000}, headers={"citadel-wait": "20"})
    assert response.status_code == 422
    assert response.json()["type"] == "urn:citadel:problem:position-not-written"
    assert response.headers["content-type"] == "application/problem+json"


async def test_min_position_the_read_models_have_not_reached_answers_503_with_retry_after_in_bounded_time(
    client: httpx.AsyncClient, application: Application
) -> None:
    position = await unprocessed_position(application)
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await client.get(
        "/analytics/revenue", params={"min_position": position}, headers={"citadel-wait": "0.3"}
    )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/problem+json"
    assert loop.time() - started < 5


async def test_a_retry_with_the_same_idempotency_key_answers_the_same_and_writes_nothing(
    client: httpx.AsyncClient, application: Application
) -> None:
    first = await place(client, 3, **{"idempotency-key": "abc"})
    head = await application.store.head_position()
    again = await place(client, 3, **{"idempotency-key": "abc"})
    assert (again.status_code, again.json(), again.headers["citadel-position"]) == (
        first.status_code,
        first.json(),
        first.headers["citadel-position"],
    )
    assert await application.store.head_position() == head


async def test_the_same_idempotency_key_with_another_body_answers_422(client: httpx.AsyncClient) -> None:
    await place(client, 3, **{"idempotency-key": "abc"})
    response = await place(client, 4, **{"idempotency-key": "abc"})
    assert response.status_code == 422
    assert response.json()["type"] == "urn:citadel:problem:idempotency-key-reused"


async def test_health_and_readiness_report_the_store_and_every_consumer(
    client: httpx.AsyncClient, application: Application
) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    await place(client)
    secret = "a-test-secret-that-is-long-enough-for-hs256"
    asgi = create_asgi(
        application, manage_lifecycle=False, authenticate=bearer_authenticator(TokenVerifier(secret=secret))
    )
    admin = {"authorization": f"Bearer {issue_token(secret, 'ops', ['admin'])}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(asgi), base_url="http://shop", headers=admin) as ops:
        ready = await ops.get("/ready")  # the report is for administrators; others get the status alone
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert {p["name"] for p in body["projections"]} == {"orders.OrderRows", "billing.invoices", "analytics.revenue"}
    assert [m["name"] for m in body["process_managers"]] == ["billing.open_invoices"]
    assert all("lag" in p for p in body["projections"])


async def test_the_openapi_document_describes_every_public_route(client: httpx.AsyncClient) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {
        "/orders/place-order",
        "/orders/cancel-order",
        "/orders/order",
        "/billing/pay-invoice",
        "/billing/invoice",
        "/analytics/revenue",
    }
    place_order = document["paths"]["/orders/place-order"]["post"]
    schema_ref = place_order["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
    assert schema["required"] == ["customer", "amount"]
    order = document["paths"]["/orders/order"]["get"]
    assert {p["name"] for p in order["parameters"]} == {"order_id", "min_position", "Citadel-Wait"}


async def test_the_docs_page_is_served_without_external_assets(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert "schema/openapi.json" in response.text
    assert "http://" not in response.text
    assert "https://" not in response.text
