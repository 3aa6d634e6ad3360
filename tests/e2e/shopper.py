"""Steps of the shop's flows over HTTP only: what a client of the served shop can do and see.

Nothing here touches the ``Application``: every step is a request, every wait is ``min_position`` (the
``Citadel-Position`` of a write) or a poll with a deadline, so the same steps drive an in-process ASGI app
and a real ``citadel serve`` process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from citadel import Application
from citadel.http import create_asgi
from citadel.http.auth import bearer_authenticator
from citadel.security import TokenVerifier, issue_token

T = TypeVar("T")

PROBLEM = "application/problem+json"
DEADLINE = 10.0
"""Seconds a step waits for the shop's modules to react before it gives up (and the test fails)."""


@contextlib.asynccontextmanager
async def over_http(app: Application) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app``'s HTTP API in this process (the app is started and stopped by the caller).

    Unexpected exceptions become the 500 responses a real server sends, so "never a 500" is checked the
    same way in process as over TCP.
    """
    asgi = create_asgi(app, manage_lifecycle=False, authenticate=bearer_authenticator(TokenVerifier(secret=SECRET)))
    transport = httpx.ASGITransport(asgi, raise_app_exceptions=False)
    admin = {"authorization": f"Bearer {token('e2e-admin', 'admin')}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://shop", headers=admin) as client:
        yield client


SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def token(subject: str, *roles: str) -> str:
    """A bearer token for ``subject`` with ``roles``, signed with the tests' secret."""
    return issue_token(SECRET, subject, roles)


async def anonymously(client: httpx.AsyncClient, method: str, url: str, **options: Any) -> httpx.Response:
    """Send a request without the client's default credentials (``over_http``'s administrator token)."""
    request = client.build_request(method, url, **options)
    request.headers.pop("authorization", None)
    return await client.send(request)


def describe(response: httpx.Response) -> str:
    return f"{response.request.method} {response.request.url} -> {response.status_code} {response.text}"


def ok(response: httpx.Response) -> Any:
    """The JSON body of a successful response (fails the test, saying why, on any other)."""
    assert response.status_code == 200, describe(response)
    assert response.headers["content-type"] == "application/json", describe(response)
    return response.json()


def position(response: httpx.Response) -> str:
    """The ``Citadel-Position`` of a successful command: a number with one log, ``module:number`` with several
    services; either way what ``min_position`` takes back."""
    ok(response)
    return response.headers["citadel-position"]


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """The RFC 9457 document of an error response, checked to be one of ``status`` and type ``slug``."""
    assert response.status_code == status, describe(response)
    assert response.headers["content-type"] == PROBLEM, describe(response)
    assert "Traceback" not in response.text, describe(response)
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:citadel:problem:{slug}", describe(response)
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert isinstance(body["detail"], str)
    return body


async def eventually(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout: float = DEADLINE) -> T:
    """Poll ``probe`` until ``done`` holds for its result; return the last result (the caller asserts on it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await probe()
        if done(value) or loop.time() >= deadline:
            return value
        await asyncio.sleep(0.02)


async def read(client: httpx.AsyncClient, path: str, min_position: str = "", **params: Any) -> httpx.Response:
    """GET a query; with ``min_position``, retry its 503s (as ``Retry-After`` asks) until the deadline."""
    if min_position:
        params["min_position"] = min_position
    return await eventually(lambda: client.get(path, params=params), lambda r: r.status_code != 503)


async def settle(client: httpx.AsyncClient, timeout: float = DEADLINE) -> None:
    """Wait until ``/ready`` of every node shows every consumer at its head and an empty inbox, twice with the
    same heads (so the reactions to the last events are in the logs too).

    The nodes are ``client.nodes`` when the shop runs as several services (one log each), else the client's."""
    nodes: list[httpx.AsyncClient] = getattr(client, "nodes", [client])
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    previous: list[int | None] = []
    while True:
        heads: list[int | None] = []
        reports = [ok(await node.get("/ready")) for node in nodes]
        for report in reports:
            consumers = [*report["projections"], *report["process_managers"]]
            quiet = all(c["lag"] == 0 for c in consumers) and not report.get("inbox", {}).get("pending")
            heads.append(int(report["head"]) if quiet else None)
        if None not in heads and heads == previous:
            return
        assert loop.time() < deadline, f"the shop did not settle within {timeout} s: {reports}"
        previous = heads
        await asyncio.sleep(0.02)


@dataclass(frozen=True)
class Placed:
    """An order as ``CreateOrder`` answered it, with the position of its event."""

    order_id: str
    total: int
    position: str


async def register(client: httpx.AsyncClient, email: str = "ada@example.com", name: str = "Ada") -> str:
    return str(ok(await client.post("/users/register-user", json={"email": email, "name": name}))["user_id"])


async def publish(client: httpx.AsyncClient, price: int, title: str = "") -> str:
    body = {"title": title or f"Item at {price}", "body": "...", "price": price}
    return str(ok(await client.post("/content/publish-content", json=body))["content_id"])


async def price(client: httpx.AsyncClient, content_id: str) -> int:
    return int(ok(await client.get("/content/item", params={"content_id": content_id}))["price"])


async def order(client: httpx.AsyncClient, customer_id: str, *content_ids: str, quantity: int = 1) -> Placed:
    items = [{"content_id": c, "quantity": quantity} for c in content_ids]
    response = await client.post("/orders/create-order", json={"customer_id": customer_id, "items": items})
    created = ok(response)
    return Placed(created["order_id"], created["total"], position(response))


async def invoice(client: httpx.AsyncClient, order_id: str, min_position: str = "") -> dict[str, Any]:
    """The order's invoice, waiting (``min_position``, then polling) until billing has opened it."""
    response = await eventually(
        lambda: read(client, "/billing/invoice", min_position, order_id=order_id), lambda r: r.status_code != 404
    )
    return dict(ok(response))


async def pay(client: httpx.AsyncClient, bill: dict[str, Any], key: str | None = None) -> httpx.Response:
    """Pay ``bill`` in full (the raw response: callers check its status, body and position)."""
    headers = {} if key is None else {"idempotency-key": key}
    body = {"invoice_id": bill["invoice_id"], "amount": bill["amount"]}
    return await client.post("/billing/pay-invoice", json=body, headers=headers)


async def order_status(client: httpx.AsyncClient, order_id: str, expected: str | None = None) -> str:
    """The order's status; with ``expected``, polls until it is that (or the deadline passes)."""

    async def status() -> str:
        return str(ok(await client.get("/orders/order", params={"order_id": order_id}))["status"])

    return await eventually(status, lambda s: expected is None or s == expected)


async def can_read(client: httpx.AsyncClient, user_id: str, content_id: str, expected: bool | None = None) -> bool:
    """Whether the user may read the item; with ``expected``, polls until it is that (or the deadline passes)."""

    async def granted() -> bool:
        params = {"user_id": user_id, "content_id": content_id}
        return bool(ok(await client.get("/content/access", params=params))["granted"])

    return await eventually(granted, lambda g: expected is None or g == expected)


async def revenue(client: httpx.AsyncClient, min_position: str = "") -> dict[str, int]:
    return dict(ok(await read(client, "/analytics/revenue", min_position)))


async def statuses(client: httpx.AsyncClient, min_position: str = "") -> dict[str, int]:
    return dict(ok(await read(client, "/analytics/orders-by-status", min_position)))


async def buy(client: httpx.AsyncClient, customer_id: str, *content_ids: str, key: str = "") -> Placed:
    """Order the items, pay the invoice once it is open, and wait until the order is paid."""
    placed = await order(client, customer_id, *content_ids)
    bill = await invoice(client, placed.order_id, placed.position)
    ok(await pay(client, bill, key or f"pay-{placed.order_id}"))
    assert await order_status(client, placed.order_id, "paid") == "paid"
    return placed


async def publish_workshop(client: httpx.AsyncClient, seats: int, price: int = 1000, hold_seconds: int = 900) -> str:
    """Publish an item with limited ``seats`` (a live workshop); return its id."""
    body = {"title": "Live workshop", "body": "...", "price": price, "seats": seats, "hold_seconds": hold_seconds}
    return str(ok(await client.post("/content/publish-content", json=body))["content_id"])


async def item(client: httpx.AsyncClient, content_id: str) -> dict[str, Any]:
    """The catalog's item: title, price, and for a workshop its ``seats`` and ``seats_left``."""
    return dict(ok(await client.get("/content/item", params={"content_id": content_id})))


async def order_summary(client: httpx.AsyncClient, order_id: str) -> dict[str, Any]:
    """The order as ``GET /orders/order`` shows it: status, total, and why it was refused if it was."""
    return dict(ok(await client.get("/orders/order", params={"order_id": order_id})))


async def dead_letters(client: httpx.AsyncClient) -> dict[str, int]:
    """The dead letters of every node by consumer, from the administrator's ``/ready`` report."""
    nodes: list[httpx.AsyncClient] = getattr(client, "nodes", [client])
    parked: dict[str, int] = {}
    for node in nodes:
        parked.update(ok(await node.get("/ready"))["dead_letters"])
    return parked
