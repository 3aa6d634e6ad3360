"""Who may call what: every shop endpoint for every role, over HTTP with real bearer tokens.

Anonymous callers get 401 with ``WWW-Authenticate`` where an identity is needed; identified callers
without the permission, or on what they do not own, get 403; both as problem documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from deployments import Deployment
from shopper import buy, invoice, ok, order, problem, publish, register, settle, token


@dataclass(frozen=True)
class World:
    """A small shop: Ada (a customer) with an unpaid order, Bob (another customer) with a paid one."""

    ada: str
    bob: str
    item: str
    ada_order: str
    ada_invoice: dict[str, Any]
    bob_order: str


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """Access control is decided at the bus, whatever the store: one backend is enough here."""
    return f"sqlite:///{tmp_path / 'access.db'}"


@pytest.fixture
async def world(client: httpx.AsyncClient) -> World:
    ada = await register(client, "ada@example.com")
    bob = await register(client, "bob@example.com")
    item = await publish(client, 700)
    ada_order = await order(client, ada, item)
    bob_order = await buy(client, bob, item)
    ada_invoice = await invoice(client, ada_order.order_id, ada_order.position)
    await settle(client)
    return World(ada, bob, item, ada_order.order_id, ada_invoice, bob_order.order_id)


def as_(who: str | None, world: World) -> dict[str, str]:
    """Request headers of an actor: ``None`` sends no credentials."""
    identities = {
        "ada": (world.ada, "customer"),
        "bob": (world.bob, "customer"),
        "editor": ("edith", "editor"),
        "admin": ("root", "admin"),
    }
    if who is None:
        return {"authorization": ""}  # overrides the client's default admin token: see `call`
    subject, role = identities[who]
    return {"authorization": f"Bearer {token(subject, role)}"}


async def call(client: httpx.AsyncClient, who: str | None, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = as_(who, kwargs.pop("world"))
    if who is None:
        client.headers.pop("authorization", None)
        try:
            return await client.request(method, path, **kwargs)
        finally:
            client.headers["authorization"] = f"Bearer {token('e2e-admin', 'admin')}"
    return await client.request(method, path, headers=headers, **kwargs)


def requests(world: World) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Every shop endpoint, aimed at Ada's things."""
    mine = {"order_id": world.ada_order}
    return {
        "register": ("POST", "/users/register-user", {"json": {"email": "new@example.com", "name": "New"}}),
        "user": ("GET", "/users/user", {"params": {"user_id": world.ada}}),
        "assign-role": ("POST", "/users/assign-role", {"json": {"user_id": world.bob, "role": "editor"}}),
        "forget": ("POST", "/users/forget-user", {"json": {"user_id": "someone-unknown"}}),
        "publish": ("POST", "/content/publish-content", {"json": {"title": "T", "body": "B", "price": 1}}),
        "item": ("GET", "/content/item", {"params": {"content_id": world.item}}),
        "access": ("GET", "/content/access", {"params": {"user_id": world.ada, "content_id": world.item}}),
        "create-order": (
            "POST",
            "/orders/create-order",
            {"json": {"customer_id": world.ada, "items": [{"content_id": world.item, "quantity": 1}]}},
        ),
        "order": ("GET", "/orders/order", {"params": mine}),
        "invoice": ("GET", "/billing/invoice", {"params": mine}),
        "pay": (
            "POST",
            "/billing/pay-invoice",
            {"json": {"invoice_id": world.ada_invoice["invoice_id"], "amount": world.ada_invoice["amount"]}},
        ),
        "refund": ("POST", "/billing/refund-invoice", {"json": {"invoice_id": world.ada_invoice["invoice_id"]}}),
        "cancel": ("POST", "/orders/cancel-order", {"json": mine}),
        "revenue": ("GET", "/analytics/revenue", {}),
        "orders-by-status": ("GET", "/analytics/orders-by-status", {}),
    }


ALLOWED = "allowed"  # any answer but 401 and 403 (a refused business rule is still "allowed to ask")
# who -> the endpoints it may call on Ada's things; every other endpoint answers 401 (anonymous) or 403
MATRIX: dict[str | None, set[str]] = {
    None: {"register", "item"},
    "ada": {"register", "item", "user", "access", "create-order", "order", "invoice", "pay", "cancel"},
    "bob": {"register", "item"},
    "editor": {"register", "item", "publish"},
    "admin": {
        "register",
        "item",
        "user",
        "assign-role",
        "forget",
        "publish",
        "access",
        "create-order",
        "order",
        "invoice",
        "pay",
        "refund",
        "cancel",
        "revenue",
        "orders-by-status",
    },
}
ENDPOINTS = list(requests(World("a", "b", "i", "o", {"invoice_id": "x", "amount": 1}, "p")))


@pytest.mark.parametrize("who", list(MATRIX), ids=lambda w: w or "anonymous")
@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_each_role_may_call_exactly_its_endpoints(
    client: httpx.AsyncClient, world: World, who: str | None, endpoint: str
) -> None:
    method, path, kwargs = requests(world)[endpoint]
    response = await call(client, who, method, path, world=world, **kwargs)
    if endpoint in MATRIX[who]:
        assert response.status_code not in (401, 403), response.text
        assert response.status_code < 500, response.text
    elif who is None:
        body = problem(response, 401, "unauthenticated")
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "bearer token" in body["detail"]
    else:
        problem(response, 403, "forbidden")


async def test_a_customer_cannot_order_for_someone_else(client: httpx.AsyncClient, world: World) -> None:
    body = {"customer_id": world.bob, "items": [{"content_id": world.item, "quantity": 1}]}
    response = await call(client, "ada", "POST", "/orders/create-order", world=world, json=body)
    problem(response, 403, "forbidden")


async def test_a_customer_reads_its_own_paid_order_but_not_anothers(client: httpx.AsyncClient, world: World) -> None:
    bobs = await call(client, "bob", "GET", "/orders/order", world=world, params={"order_id": world.bob_order})
    assert ok(bobs)["status"] == "paid"
    adas = await call(client, "ada", "GET", "/orders/order", world=world, params={"order_id": world.bob_order})
    problem(adas, 403, "forbidden")


@pytest.mark.parametrize(
    "authorization",
    ["Bearer not-a-token", "Basic YWRhOnNlY3JldA==", "Bearer", f"Bearer {token('x', 'admin')}x"],
    ids=["garbage", "basic", "empty", "bad-signature"],
)
async def test_bad_credentials_are_401_never_anonymous(client: httpx.AsyncClient, authorization: str) -> None:
    response = await client.get("/content/item", params={"content_id": "x"}, headers={"authorization": authorization})
    problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_an_expired_token_is_401(client: httpx.AsyncClient) -> None:
    from shopper import SECRET

    from citadel.security import issue_token

    expired = issue_token(SECRET, "ada", ["customer"], ttl=-120)
    response = await client.get(
        "/content/item", params={"content_id": "x"}, headers={"authorization": f"Bearer {expired}"}
    )
    problem(response, 401, "unauthenticated")


async def test_the_event_log_records_who_did_what(
    client: httpx.AsyncClient, world: World, deployment: Deployment
) -> None:
    await call(client, "ada", "POST", "/orders/cancel-order", world=world, json={"order_id": world.ada_order})
    (cancelled,) = [
        r
        for r in await deployment.app_of("orders").store.read_stream(f"order-{world.ada_order}")
        if r.type == "orders.OrderCancelled"
    ]
    assert cancelled.actor == world.ada
