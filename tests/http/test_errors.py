"""Every error class answers an RFC 9457 problem document with the right status, never a stack trace."""

from __future__ import annotations

import httpx
import pytest

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert body["type"] == f"urn:citadel:problem:{slug}"
    assert isinstance(body["title"], str)
    assert "Traceback" not in response.text
    return body


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/orders/place-order", content=b'{"customer": ', headers={"content-type": "application/json"}
    )
    assert_problem(response, 400, "malformed-json")


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"customer": "ann"}, "$.amount"),
        ({"customer": "ann", "amount": "five"}, "$.amount"),
        ({"customer": 3, "amount": 5}, "$.customer"),
        ([1, 2], "$"),
    ],
)
async def test_wrong_or_missing_fields_are_422_with_the_field_named(
    client: httpx.AsyncClient, body: object, loc: str
) -> None:
    problem = assert_problem(await client.post("/orders/place-order", json=body), 422, "validation-error")
    errors = problem["errors"]
    assert isinstance(errors, list)
    assert errors[0]["loc"] == loc


async def test_query_parameters_of_the_wrong_type_or_unknown_are_422(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/orders/order"), 422, "validation-error")
    assert_problem(
        await client.get("/orders/order", params={"order_id": "x", "colour": "red"}), 422, "validation-error"
    )
    assert_problem(
        await client.get("/orders/order", params={"order_id": "x", "min_position": "soon"}), 422, "validation-error"
    )


@pytest.mark.parametrize("path", ["/nowhere/thing", "/orders/nothing", "/billing/open-invoice"])
async def test_unknown_modules_commands_and_queries_are_404(client: httpx.AsyncClient, path: str) -> None:
    assert_problem(await client.post(path, json={}), 404, "not-found")


async def test_an_unknown_entity_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/orders/order", params={"order_id": "missing"}), 404, "not-found")


async def test_a_business_rule_conflict_is_409(client: httpx.AsyncClient) -> None:
    order_id = (await client.post("/orders/place-order", json={"customer": "a", "amount": 1})).json()["order_id"]
    await client.post("/orders/cancel-order", json={"order_id": order_id})
    problem = assert_problem(await client.post("/orders/cancel-order", json={"order_id": order_id}), 409, "conflict")
    assert problem["detail"] == "order is cancelled"


async def test_the_wrong_method_is_405(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/orders/place-order"), 405, "method-not-allowed")


async def test_a_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    big = b'{"customer": "' + b"x" * (2 << 20) + b'", "amount": 1}'
    assert_problem(await client.post("/orders/place-order", content=big), 413, "too-large")


async def test_a_bad_idempotency_key_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/orders/place-order", json={"customer": "a", "amount": 1}, headers={"idempotency-key": "x" * 300}
    )
    assert_problem(response, 400, "bad-idempotency-key")
