"""The console's pages over ASGI, as an administrator: the module map, the streams browser following the purchase,
one event decrypted with its correlation chain, the projections and the deployment."""

from __future__ import annotations

import re

from .conftest import ADMIN, EMAIL, Shop


async def test_the_module_map_lists_modules_dependencies_and_messages_between_them(shop: Shop) -> None:
    response = await shop.client.get("/console", headers=ADMIN)

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    for module in ("users", "content", "orders", "billing", "analytics"):
        assert f'id="module-{module}"' in page
    assert '<a href="#module-orders">orders</a>' in page  # billing depends on orders
    crossing = re.compile(r"<td>orders</td><td>billing</td><td>event</td><td><code>orders.OrderCreated</code>")
    assert crossing.search(page)
    assert re.search(r"<td>billing</td><td>orders</td><td>command</td><td><code>orders.MarkOrderPaid</code>", page)
    assert "billing -.-&gt;|depends on| orders" in page  # the Mermaid source, escaped


async def test_the_last_events_of_the_log_are_listed_with_links_to_each(shop: Shop) -> None:
    head = await shop.app.store.head_position()

    response = await shop.client.get("/console/streams", headers=ADMIN)

    assert response.status_code == 200
    assert f'href="/console/event?position={head}"' in response.text
    assert "orders.OrderCreated" in response.text


async def test_a_search_by_type_finds_the_purchases_events_only(shop: Shop) -> None:
    response = await shop.client.get("/console/streams", params={"type": "billing.InvoicePaid"}, headers=ADMIN)

    assert response.status_code == 200
    types = re.findall(r"<td><code>([\w.]+)</code>", response.text)
    assert types == ["billing.InvoicePaid"]


async def test_a_search_by_stream_prefix_and_time_finds_the_order_stream(shop: Shop) -> None:
    params = {"stream": "order-*", "since": "2000-01-01", "until": "2999-12-31T23:59"}

    response = await shop.client.get("/console/streams", params=params, headers=ADMIN)

    streams = set(re.findall(r">(order-[^<]+)</a>@", response.text))
    assert len(streams) == 1
    assert f"order-{shop.order_id}" in streams or any(shop.order_id in s for s in streams)


async def test_a_search_after_the_time_range_finds_nothing(shop: Shop) -> None:
    response = await shop.client.get("/console/streams", params={"until": "2000-01-01"}, headers=ADMIN)

    assert response.status_code == 200
    assert "No event found." in response.text


async def test_an_event_shows_its_decrypted_payload_and_correlation_chain(shop: Shop) -> None:
    (registered,) = [r for r in await shop.app.store.read_all(1, 1000) if r.type == "users.UserRegistered"]

    response = await shop.client.get("/console/event", params={"position": registered.position}, headers=ADMIN)

    assert response.status_code == 200
    assert EMAIL in response.text  # sealed in the store, opened for the administrator
    assert registered.correlation_id is not None
    assert registered.correlation_id in response.text
    assert 'class="current"' in response.text


async def test_the_order_chain_holds_the_invoice_the_process_manager_opened(shop: Shop) -> None:
    records = await shop.app.store.read_all(1, 1000)
    created = next(r for r in records if r.type == "orders.OrderCreated")
    chained = [r.position for r in records if r.correlation_id == created.correlation_id]

    response = await shop.client.get("/console/event", params={"position": created.position}, headers=ADMIN)

    chain = response.text.split("Correlation chain", 1)[1]
    assert [int(p) for p in re.findall(r"event\?position=(\d+)", chain)] == chained
    assert "billing.InvoiceOpened" in chain


async def test_projections_show_position_lag_and_a_rebuild_button(shop: Shop) -> None:
    head = await shop.app.store.head_position()

    response = await shop.client.get("/console/consumers", headers=ADMIN)

    assert response.status_code == 200
    row = re.search(r"<td>analytics.RevenueTotals</td>(.*?)</tr>", response.text, re.S)
    assert row is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    assert cells[:4] == ["analytics", "async", str(head), "0"]
    assert 'name="projection" value="analytics.RevenueTotals"' in row.group(1)
    assert "billing.invoicing" in response.text


async def test_the_deployment_of_one_process_runs_every_module_here(shop: Shop) -> None:
    response = await shop.client.get("/console/deployment", headers=ADMIN)

    assert response.status_code == 200
    assert "Every module runs in this service" in response.text
    assert response.text.count("<td>here (") == 5


async def test_the_assets_are_served_by_the_application_with_a_digest_and_revalidation(shop: Shop) -> None:
    page = (await shop.client.get("/console/consumers", headers=ADMIN)).text
    (css,) = re.findall(r'href="(/console/assets/console\.css\?v=\w+)"', page)

    first = await shop.client.get(css)
    again = await shop.client.get(css, headers={"if-none-match": first.headers["etag"]})

    assert first.status_code == 200
    assert first.headers["content-type"] == "text/css; charset=utf-8"
    assert again.status_code == 304
    assert "<script>" not in page
    assert "style=" not in page
