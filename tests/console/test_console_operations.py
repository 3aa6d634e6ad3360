"""The console's actions over ASGI: dead letters grouped by failure, retried or discarded one by one or by group;
rebuilds that run in the background while the node serves; a forgotten subject's events shown as forgotten."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from citadel.store.base import RecordedEvent

from .conftest import ADMIN, EMAIL, SAME_ORIGIN, Shop

POST = {**ADMIN, **SAME_ORIGIN}
GATEWAY = "RuntimeError: the payment gateway answered 503"


async def park(shop: Shop, event_type: str, *errors: str) -> RecordedEvent:
    """Park the purchase's event of ``event_type`` for billing's process manager once per error, as the consumer
    does when it gives up."""
    records = await shop.app.store.read_all(1, 1000)
    record = next(r for r in records if r.type == event_type)
    for error in errors:
        await shop.app.store.add_dead_letter("billing.invoicing", record, error, 5)
    return record


async def test_dead_letters_are_grouped_by_exception_and_message_type(shop: Shop) -> None:
    await park(shop, "orders.OrderCreated", GATEWAY, f"{GATEWAY} again", "KeyError: 'invoice'")

    response = await shop.client.get("/console/dead-letters", headers=ADMIN)

    headings = re.findall(
        r"<h2><code>(\w+)</code> on <code>([\w.]+)</code> <span class=\"tag\">(\d+)</span>", response.text
    )
    assert headings == [("RuntimeError", "orders.OrderCreated", "2"), ("KeyError", "orders.OrderCreated", "1")]


async def test_retrying_a_group_processes_each_letter_and_removes_them(shop: Shop) -> None:
    await park(shop, "orders.OrderCreated", GATEWAY, GATEWAY)
    ids = [letter.id for letter in await shop.app.dead_letters()]

    response = await shop.client.post("/console/dead-letters", data={"action": "retry", "letter": ids}, headers=POST)

    assert response.status_code == 303
    assert response.headers["location"] == "/console/dead-letters?action=retry&done=2"
    assert await shop.app.dead_letters() == []
    page = await shop.client.get(response.headers["location"], headers=ADMIN)
    assert "Retried 2 letters." in page.text
    assert "No dead letter" in page.text


async def test_discarding_one_letter_leaves_the_others(shop: Shop) -> None:
    await park(shop, "orders.OrderCreated", GATEWAY, "KeyError: 'invoice'")
    first, second = await shop.app.dead_letters()

    response = await shop.client.post(
        "/console/dead-letters", data={"action": "discard", "letter": str(first.id)}, headers=POST
    )

    assert response.status_code == 303
    assert [letter.id for letter in await shop.app.dead_letters()] == [second.id]


async def test_a_letter_resolved_meanwhile_is_reported_and_the_others_are_done(shop: Shop) -> None:
    await park(shop, "orders.OrderCreated", GATEWAY)
    (letter,) = await shop.app.dead_letters()

    response = await shop.client.post(
        "/console/dead-letters", data={"action": "discard", "letter": [str(letter.id), "777"]}, headers=POST
    )

    assert response.status_code == 409
    assert "letter 777: NotFound" in response.text
    assert "Discarded 1 letter." in response.text
    assert await shop.app.dead_letters() == []


async def progress_until_done(shop: Shop, projection: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    for _ in range(200):
        answer = await shop.client.get("/console/rebuild.json", params={"projection": projection}, headers=ADMIN)
        assert answer.status_code == 200
        seen.append(answer.json())
        if seen[-1]["state"] != "running":
            return seen
        await asyncio.sleep(0.05)
    raise AssertionError(f"the rebuild of {projection} did not end: {seen[-1]}")


async def test_a_rebuild_runs_in_the_background_to_the_head_while_the_node_serves(shop: Shop) -> None:
    head = await shop.app.store.head_position()

    started = await shop.client.post("/console/rebuild", data={"projection": "analytics.RevenueTotals"}, headers=POST)
    serving = await shop.client.get("/health")
    seen = await progress_until_done(shop, "analytics.RevenueTotals")

    assert started.status_code == 303
    assert started.headers["location"] == "/console/rebuild?projection=analytics.RevenueTotals"
    assert serving.status_code == 200
    assert seen[-1] == {
        "projection": "analytics.RevenueTotals",
        "state": "done",
        "reached": head,
        "target": head,
        "percent": 100,
        "error": None,
    }
    assert all(0 <= s["percent"] <= 100 for s in seen)
    page = await shop.client.get(started.headers["location"], headers=ADMIN)
    assert 'value="100"' in page.text
    revenue = await shop.client.get("/analytics/revenue", headers=ADMIN)
    assert revenue.status_code == 200, revenue.text
    assert revenue.json()["revenue"] == 700


async def test_an_inline_projection_is_rebuilt_too(shop: Shop) -> None:
    started = await shop.client.post("/console/rebuild", data={"projection": "users.Users"}, headers=POST)
    seen = await progress_until_done(shop, "users.Users")

    assert started.status_code == 303
    assert (seen[-1]["state"], seen[-1]["percent"]) == ("done", 100)


async def test_the_progress_of_an_async_projection_not_rebuilt_here_is_read_from_its_checkpoint(shop: Shop) -> None:
    head = await shop.app.store.head_position()

    progress = await shop.client.get(
        "/console/rebuild.json", params={"projection": "analytics.OrdersByStatus"}, headers=ADMIN
    )

    assert progress.status_code == 200
    assert progress.json() == {
        "projection": "analytics.OrdersByStatus",
        "state": "done",
        "reached": head,
        "target": head,
        "percent": 100,
        "error": None,
    }


async def test_the_progress_of_an_inline_projection_never_rebuilt_here_is_404(shop: Shop) -> None:
    page = await shop.client.get("/console/rebuild", params={"projection": "users.Users"}, headers=ADMIN)
    progress = await shop.client.get("/console/rebuild.json", params={"projection": "users.Users"}, headers=ADMIN)

    assert (page.status_code, progress.status_code) == (404, 404)


async def test_a_forgotten_subjects_events_show_as_forgotten(shop: Shop) -> None:
    forgot = await shop.client.post("/users/forget-user", json={"user_id": shop.user_id}, headers=ADMIN)
    assert forgot.status_code == 200, forgot.text
    records = await shop.app.store.read_all(1, 1000)
    registered = next(r for r in records if r.type == "users.UserRegistered")

    event = await shop.client.get("/console/event", params={"position": registered.position}, headers=ADMIN)
    listing = await shop.client.get("/console/streams", params={"type": "users.UserRegistered"}, headers=ADMIN)

    assert event.status_code == 200
    assert EMAIL not in event.text
    assert '<pre class="payload">&lt;forgotten&gt;</pre>' in event.text
    assert 'class="tag forgotten"' in listing.text
