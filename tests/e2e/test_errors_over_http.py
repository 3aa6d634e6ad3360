"""Every error class of the shop, as a client meets it: an RFC 9457 problem document, never a 500."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from deployments import Deployment
from shopper import anonymously, buy, invoice, ok, order, pay, problem, publish, register, token

NOT_WAITING = 5.0
"""Seconds within which a refusal must come, for a query that asked to wait 20 s: it comes before the wait."""


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/users/register-user", content=b'{"email": "ada@', headers={"content-type": "application/json"}
    )
    problem(response, 400, "malformed-json")


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/users/register-user", {"email": "ada@example.com"}, "$.name"),
        ("/users/register-user", {"email": 42, "name": "Ada"}, "$.email"),
        ("/content/publish-content", {"title": "Guide", "body": "...", "price": "five"}, "$.price"),
        ("/orders/create-order", {"customer_id": "c", "items": [{"content_id": "x"}]}, "$.items[0].quantity"),
        ("/orders/create-order", {"customer_id": "c", "items": None}, "$.items"),
        ("/billing/pay-invoice", {"invoice_id": "i", "amount": 1.5}, "$.amount"),
        ("/billing/pay-invoice", [], "$"),
    ],
)
async def test_missing_or_wrong_fields_are_422_naming_the_field(
    client: httpx.AsyncClient, path: str, body: Any, loc: str
) -> None:
    found = problem(await client.post(path, json=body), 422, "validation-error")
    assert found["errors"][0]["loc"] == loc
    assert found["errors"][0]["message"]


@pytest.mark.parametrize(
    ("path", "params", "loc"),
    [
        ("/orders/order", {}, "$.order_id"),
        ("/content/access", {"user_id": "u"}, "$.content_id"),
        ("/orders/order", {"order_id": "o", "colour": "red"}, "$.colour"),
        ("/analytics/revenue", {"min_position": "soon"}, "$.min_position"),
    ],
)
async def test_missing_unknown_or_malformed_query_parameters_are_422_naming_them(
    client: httpx.AsyncClient, path: str, params: dict[str, str], loc: str
) -> None:
    found = problem(await client.get(path, params=params), 422, "validation-error")
    assert found["errors"][0]["loc"] == loc


async def test_a_malformed_email_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/users/register-user", json={"email": "ada at example.com", "name": "Ada"})
    assert "not an email address" in problem(response, 422, "invalid-command")["detail"]


async def test_registering_an_email_again_in_another_case_is_409(client: httpx.AsyncClient) -> None:
    await register(client, "ada@example.com")

    response = await client.post("/users/register-user", json={"email": "ADA@Example.com", "name": "Ada again"})

    assert "email" in problem(response, 409, "conflict")["detail"]


@pytest.mark.parametrize(
    ("customer", "item", "quantity", "detail"),
    [
        ("registered", "nothing", 1, "no such item: nothing"),
        ("registered", "published", 0, "must be 1 to 10000, got 0"),
        ("nobody", "published", 1, "no customer nobody"),
    ],
    ids=["unknown content", "quantity 0", "unknown customer"],
)
async def test_an_order_the_catalog_or_the_customers_cannot_fill_is_422(
    client: httpx.AsyncClient, customer: str, item: str, quantity: int, detail: str
) -> None:
    customer_id = await register(client) if customer == "registered" else customer
    content_id = await publish(client, 500) if item == "published" else item
    body = {"customer_id": customer_id, "items": [{"content_id": content_id, "quantity": quantity}]}

    response = await client.post("/orders/create-order", json=body)

    assert detail in problem(response, 422, "invalid-command")["detail"]


async def test_paying_the_wrong_amount_is_422(client: httpx.AsyncClient) -> None:
    placed = await order(client, await register(client), await publish(client, 500))
    bill = await invoice(client, placed.order_id, placed.position)

    response = await pay(client, {**bill, "amount": 499})

    assert "500 cents, not 499" in problem(response, 422, "invalid-command")["detail"]
    assert (await invoice(client, placed.order_id))["status"] == "open"


async def test_paying_an_already_paid_invoice_with_another_key_is_409(client: httpx.AsyncClient) -> None:
    placed = await buy(client, await register(client), await publish(client, 500), key="first")
    bill = await invoice(client, placed.order_id)

    response = await pay(client, bill, key="second")

    assert "is paid" in problem(response, 409, "conflict")["detail"]


async def test_cancelling_a_paid_order_is_409(client: httpx.AsyncClient) -> None:
    placed = await buy(client, await register(client), await publish(client, 500))

    response = await client.post("/orders/cancel-order", json={"order_id": placed.order_id})

    assert "only an unpaid order can be cancelled" in problem(response, 409, "conflict")["detail"]


async def test_refunding_an_open_invoice_is_409(client: httpx.AsyncClient) -> None:
    placed = await order(client, await register(client), await publish(client, 500))
    bill = await invoice(client, placed.order_id, placed.position)

    response = await client.post("/billing/refund-invoice", json={"invoice_id": bill["invoice_id"]})

    assert "only a paid invoice can be refunded" in problem(response, 409, "conflict")["detail"]


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("GET", "/orders/order", {"order_id": "nothing"}),
        ("GET", "/billing/invoice", {"order_id": "nothing"}),
        ("GET", "/content/item", {"content_id": "nothing"}),
        ("GET", "/users/user", {"user_id": "nothing"}),
        ("POST", "/orders/cancel-order", {"order_id": "nothing"}),
        ("POST", "/billing/pay-invoice", {"invoice_id": "nothing", "amount": 500}),
        ("POST", "/billing/refund-invoice", {"invoice_id": "nothing"}),
    ],
)
async def test_an_unknown_order_invoice_item_or_user_is_404(
    client: httpx.AsyncClient, method: str, path: str, data: dict[str, Any]
) -> None:
    if method == "GET":
        response = await client.get(path, params=data)
    else:
        response = await client.post(path, json=data)
    assert "nothing" in problem(response, 404, "not-found")["detail"]


@pytest.mark.parametrize(
    "path", ["/warehouse/ship-order", "/orders/ship-order", "/billing/open-invoice", "/orders/place-order", "/"]
)
async def test_an_unknown_module_command_or_internal_command_is_404(client: httpx.AsyncClient, path: str) -> None:
    problem(await client.post(path, json={}), 404, "not-found")


@pytest.mark.parametrize(("method", "path"), [("GET", "/orders/create-order"), ("POST", "/orders/order")])
async def test_the_wrong_method_on_a_command_or_query_is_405(client: httpx.AsyncClient, method: str, path: str) -> None:
    problem(await client.request(method, path), 405, "method-not-allowed")


async def test_waiting_for_a_position_the_log_has_not_reached_is_422_at_once(client: httpx.AsyncClient) -> None:
    response = await client.get("/analytics/revenue", params={"min_position": 10_000}, headers={"citadel-wait": "20"})

    problem(response, 422, "position-not-written")


async def test_bad_input_never_changes_what_a_good_request_answers(client: httpx.AsyncClient) -> None:
    customer, guide = await register(client), await publish(client, 500)
    for body in (b"", b"null", b"[]", b'"order"', b"\xff\xfe", b'{"customer_id": ' + b"[" * 10_000):
        response = await client.post("/orders/create-order", content=body)
        assert response.status_code in (400, 422), response.text
        assert response.headers["content-type"] == "application/problem+json"

    assert (await order(client, customer, guide)).total == 500
    assert ok(await client.get("/health")) == {"status": "ok"}


async def test_a_min_position_of_unicode_digits_is_422_not_500(client: httpx.AsyncClient) -> None:
    problem(await client.get("/analytics/revenue", params={"min_position": "²"}), 422, "validation-error")


@pytest.mark.parametrize(
    "path",
    ["/content/grant-access", "/content/revoke-access", "/orders/mark-order-paid", "/orders/mark-order-refunded"],
)
async def test_commands_meant_for_other_modules_only_are_not_offered_over_http(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.post(path, json={})
    assert response.status_code == 404
    assert path not in (await client.get("/schema/openapi.json")).json()["paths"]


async def test_a_command_body_with_a_field_the_command_does_not_have_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/content/publish-content", json={"title": "t", "body": "b", "price": 1, "rebate": 5})
    assert response.status_code == 422
    assert response.json()["errors"][0]["message"] == "Object contains unknown field `rebate`"


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/users/register-user", {"email": "a@" + "b" * 260 + ".com", "name": "A"}, "$.email"),
        ("/users/register-user", {"email": "a@b.co", "name": "x" * 201}, "$.name"),
        ("/users/register-user", {"email": "a@b.co", "name": ""}, "$.name"),
        ("/content/publish-content", {"title": "t" * 201, "body": "b", "price": 1}, "$.title"),
        ("/content/publish-content", {"title": "t", "body": "b" * 100_001, "price": 1}, "$.body"),
        ("/orders/create-order", {"customer_id": "has spaces", "items": []}, "$.customer_id"),
        (
            "/orders/create-order",
            {"customer_id": "c", "items": [{"content_id": f"c{i}", "quantity": 1} for i in range(101)]},
            "$.items",
        ),
    ],
    ids=["long-email", "long-name", "empty-name", "long-title", "long-body", "bad-id", "too-many-items"],
)
async def test_strings_and_lists_beyond_the_contracts_bounds_are_422(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], loc: str
) -> None:
    found = problem(await client.post(path, json=body), 422, "validation-error")
    assert found["errors"][0]["loc"] == loc


async def test_every_response_carries_the_security_headers(client: httpx.AsyncClient) -> None:
    for response in (await client.get("/health"), await client.get("/nowhere"), await client.get("/docs")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    api = await client.get("/health")
    assert api.headers["cache-control"] == "no-store"
    assert api.headers["content-security-policy"].startswith("default-src 'none'")


@pytest.mark.parametrize(
    "url",
    ["/%ff", "/%zz", "/users/user%f", "/users/user?user_id=%ff", "/users/user?user_id=%zz", "/users/user?user_id=a%"],
)
async def test_a_url_with_a_malformed_escape_or_bytes_that_are_not_utf8_is_400(
    client: httpx.AsyncClient, url: str
) -> None:
    problem(await client.get(url), 400, "malformed-url")
    assert ok(await client.get("/health")) == {"status": "ok"}


@pytest.mark.parametrize(
    "position", ["9" * 5000, "orders:" + "9" * 5000, str(1 << 63)], ids=["5000 digits", "module:5000 digits", "2**63"]
)
async def test_a_min_position_beyond_a_signed_64_bit_integer_is_422_naming_it(
    client: httpx.AsyncClient, position: str
) -> None:
    found = problem(await client.get("/analytics/revenue", params={"min_position": position}), 422, "validation-error")
    assert found["errors"][0]["loc"] == "$.min_position"


@pytest.mark.parametrize("wait", ["soon", "nan", "-1", "31"])
async def test_a_citadel_wait_that_is_not_a_number_from_0_to_30_is_422_naming_it(
    client: httpx.AsyncClient, wait: str
) -> None:
    response = await client.get("/analytics/revenue", params={"min_position": "1"}, headers={"citadel-wait": wait})
    assert problem(response, 422, "validation-error")["errors"][0]["loc"] == "Citadel-Wait"


async def test_an_anonymous_query_far_ahead_is_401_at_once_not_after_its_wait(client: httpx.AsyncClient) -> None:
    params = {"order_id": "x", "min_position": "999999999"}
    asking = anonymously(client, "GET", "/billing/invoice", params=params, headers={"citadel-wait": "20"})
    problem(await asyncio.wait_for(asking, NOT_WAITING), 401, "unauthenticated")


async def test_a_query_far_ahead_by_a_role_without_its_permission_is_403_at_once(client: httpx.AsyncClient) -> None:
    headers = {"authorization": f"Bearer {token('ann', 'customer')}", "citadel-wait": "20"}
    asking = client.get("/analytics/revenue", params={"min_position": "999999999"}, headers=headers)
    problem(await asyncio.wait_for(asking, NOT_WAITING), 403, "forbidden")


async def test_an_oversized_correlation_id_is_replaced_and_never_stored(
    client: httpx.AsyncClient, deployment: Deployment
) -> None:
    store = deployment.app_of("users").store
    head = await store.head_position()
    for n in range(5):
        body = {"email": f"user{n}@example.com", "name": "Ann"}
        headers = {"x-correlation-id": "x" * (8 << 20)}
        ok(await anonymously(client, "POST", "/users/register-user", json=body, headers=headers))

    registered = [r for r in await store.read_all(head + 1) if r.type == "users.UserRegistered"]
    assert len(registered) == 5
    assert all(r.correlation_id and len(r.correlation_id) == 36 for r in registered)


async def test_a_malformed_idempotency_key_is_400_and_nothing_is_written(
    client: httpx.AsyncClient, deployment: Deployment
) -> None:
    store = deployment.app_of("users").store
    head = await store.head_position()
    body = {"email": "ann@example.com", "name": "Ann"}
    response = await client.post("/users/register-user", json=body, headers={"idempotency-key": "a key with spaces"})
    problem(response, 400, "bad-idempotency-key")
    assert await store.head_position() == head
