"""``GET /ready`` on a node that runs no consumer (``--consumers none``): its administrator's report lists the
async projections as async and the process managers, each at its stored checkpoint and behind by the number
of events written since, on SQLite and on PostgreSQL (where positions are not dense). The store encrypts."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from mini import PlaceOrder, build

from citadel import Application
from citadel.http import create_asgi
from citadel.http.auth import bearer_authenticator
from citadel.messaging.consumer import Consumer
from citadel.security import TokenVerifier, issue_token
from citadel.security.encryption import Keyring, MasterKeys
from citadel.testing import settle

SECRET = "a-test-secret-that-is-long-enough-for-hs256"
ADMIN = {"authorization": f"Bearer {issue_token(SECRET, 'ops', ['admin'])}"}
BEHIND = 3
"""Orders placed while no consumer runs: one event each."""


@contextlib.asynccontextmanager
async def served(application: Application) -> AsyncIterator[httpx.AsyncClient]:
    asgi = create_asgi(
        application, manage_lifecycle=False, authenticate=bearer_authenticator(TokenVerifier(secret=SECRET))
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(asgi), base_url="http://shop") as client:
        yield client


@contextlib.asynccontextmanager
async def lagging_node(store_url: str) -> AsyncIterator[tuple[Application, int]]:
    """A node without consumers on a store whose consumers settled at a position, then fell ``BEHIND`` events
    behind it; yield the node and that position."""
    master = MasterKeys.generate()  # each node has its keyring, as processes have
    async with build(store=store_url, keyring=Keyring(master)) as first:
        await first.dispatch(PlaceOrder(customer="ann", amount=5))
        settled = await settle(first)
    node = build(store=store_url, keyring=Keyring(master))
    node.runs_consumers = False  # what `serve --consumers none` sets
    async with node:
        for amount in range(BEHIND):
            await node.dispatch(PlaceOrder(customer="bob", amount=amount))
        await settle(node)  # no consumer runs: this waits until subscribers can read the orders (PostgreSQL)
        yield node, settled


async def report(node: Application) -> dict[str, Any]:
    async with served(node) as client:
        response = await client.get("/ready", headers=ADMIN)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_node_without_consumers_reports_its_async_projections_as_async_behind_by_a_count_of_events(
    store_url: str,
) -> None:
    async with lagging_node(store_url) as (node, settled):
        body = await report(node)
        head = await node.store.head_position()

    projections = {p["name"]: p for p in body["projections"]}
    assert projections["analytics.revenue"] == {
        "name": "analytics.revenue",
        "module": "analytics",
        "mode": "async",
        "position": settled,
        "lag": BEHIND,
        "running": False,
        "error": None,
    }
    assert (projections["orders.OrderRows"]["mode"], projections["orders.OrderRows"]["lag"]) == ("inline", 0)
    assert body["head"] == head


async def test_a_node_without_consumers_reports_its_process_managers_behind_by_a_count_of_events(
    store_url: str,
) -> None:
    async with lagging_node(store_url) as (node, settled):
        body = await report(node)

    assert body["process_managers"] == [
        {"name": "billing.open_invoices", "position": settled, "lag": BEHIND, "running": False, "error": None}
    ]
    assert body["status"] == "ready"


async def test_a_consumer_that_does_not_hold_its_lease_counts_its_lag_from_the_stored_checkpoint(
    store_url: str,
) -> None:
    async with lagging_node(store_url) as (node, _):
        watcher = Consumer("analytics.revenue", node.store, owner="elsewhere")
        assert await watcher.lag() == BEHIND


async def test_a_consumer_counts_the_events_it_processed(store_url: str) -> None:
    async with build(store=store_url, keyring=Keyring(MasterKeys.generate())) as app:
        for amount in range(BEHIND):
            await app.dispatch(PlaceOrder(customer="ann", amount=amount))
        await settle(app)
        consumers = app.consumers

    assert consumers["analytics.revenue"].processed == BEHIND  # its OrderPlaced events; no invoice was paid
    assert consumers["billing.open_invoices"].processed == BEHIND
