"""The generated ASGI app mounts inside an existing Starlette (or FastAPI) application."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from mini import build
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from citadel.http import create_asgi


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


@contextlib.asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan as a server would, and talk to it over ASGI."""
    transport = httpx.ASGITransport(app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://h") as client:
        yield client


async def test_a_mounted_citadel_app_serves_its_routes_under_the_prefix_beside_the_hosts(store_url: str) -> None:
    application = build(store=store_url)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with application:  # the host's lifespan starts and stops the Citadel application
            yield

    host = Starlette(
        routes=[Route("/hello", hello), Mount("/shop", app=create_asgi(application, manage_lifecycle=False))],
        lifespan=lifespan,
    )
    async with serving(host) as client:
        assert (await client.get("/hello")).text == "hello"
        placed = await client.post("/shop/orders/place-order", json={"customer": "ann", "amount": 2})
        assert placed.status_code == 200
        order = await client.get("/shop/orders/order", params={"order_id": placed.json()["order_id"]})
        assert order.json()["amount"] == 2
        assert (await client.get("/shop/schema/openapi.json")).status_code == 200
        assert (await client.get("/shop/nowhere")).status_code == 404


async def test_the_app_starts_and_stops_the_application_with_its_own_lifespan(store_url: str) -> None:
    application = build(store=store_url)
    async with serving(create_asgi(application)) as client:
        assert (await client.get("/ready")).json()["status"] == "ready"
        assert application.consumers
    assert not application.consumers
