"""``GET /metrics`` of an application served in process: what its requests, commands, commits, consumers and
refusals record, and who may read it."""

from __future__ import annotations

import asyncio

import pytest
from mini import GetRevenue, PlaceOrder
from scraping import ADMIN, SCRAPE_TOKEN, SECRET, parse, scrape, served, value

from citadel import Application
from citadel.errors import UnverifiedMessage
from citadel.messaging.nats import NatsBroker
from citadel.messaging.signing import ServiceKeys
from citadel.security import issue_token
from citadel.security.ratelimit import RateRule, open_rate_limiter
from citadel.testing import settle

REQUESTS = "citadel_http_requests_total"


async def events_between(application: Application, after: int, upto: int) -> int:
    """How many events the log holds after position ``after`` up to ``upto``."""
    return len([r for r in await application.store.read_all(after + 1, 100_000) if r.position <= upto])


async def settle_all_but(application: Application, stopped: str) -> int:
    """Wait until every consumer but ``stopped`` has processed the whole log (their reactions included)."""
    store = application.store
    while True:
        last = await store.last_position()
        for name, consumer in application.consumers.items():
            if name != stopped:
                assert await consumer.wait_for(last, 10.0), f"{name} did not reach {last}"
        if await store.last_position() == last:
            return last


async def test_a_placed_order_is_counted_by_route_and_status_and_timed_by_command_type(
    application: Application,
) -> None:
    async with served(application) as client:
        before = await scrape(client)
        placed = await client.post("/orders/place-order", json={"customer": "ann", "amount": 5})
        assert placed.status_code == 200, placed.text
        refused = await client.post("/orders/place-order", json={"customer": "ann"})
        assert refused.status_code == 422
        await settle(application)
        after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta(REQUESTS, route="/orders/place-order", method="POST", status="200") == 1
    assert delta(REQUESTS, route="/orders/place-order", method="POST", status="422") == 1
    assert delta(REQUESTS, route="/metrics", method="GET", status="200") == 1  # the first scrape
    assert delta("citadel_command_duration_seconds_count", type="orders.PlaceOrder") == 1
    assert delta("citadel_command_duration_seconds_count", type="billing.OpenInvoice") == 1  # its process manager


async def test_events_appended_and_commit_batches_follow_the_log(application: Application) -> None:
    async with served(application) as client:
        start = await settle(application)
        before = await scrape(client)
        for customer in ("ann", "bob", "cy"):
            await application.dispatch(PlaceOrder(customer=customer, amount=1))
        end = await settle(application)
        after = await scrape(client)
    appended = value(after, "citadel_events_appended_total") - value(before, "citadel_events_appended_total")
    assert appended == await events_between(application, start, end) == 6  # three orders, three invoices
    batches = value(after, "citadel_commit_batch_size_count") - value(before, "citadel_commit_batch_size_count")
    commits = value(after, "citadel_commit_batch_size_sum") - value(before, "citadel_commit_batch_size_sum")
    assert 1 <= batches <= commits
    timed = "citadel_commit_duration_seconds_count"
    assert value(after, timed) - value(before, timed) == batches


async def test_queries_dispatched_in_process_are_timed_by_type(application: Application) -> None:
    async with served(application) as client:
        before = await scrape(client)
        await application.query(GetRevenue())
        await application.query(GetRevenue())
        after = await scrape(client)
    name = "citadel_query_duration_seconds_count"
    assert value(after, name, type="analytics.GetRevenue") - value(before, name, type="analytics.GetRevenue") == 2


async def test_the_lag_of_a_stopped_consumer_is_the_events_it_has_yet_to_process(application: Application) -> None:
    await settle(application)
    consumer = application.consumers["analytics.revenue"]
    await consumer.stop()
    stopped_at = consumer.position
    for customer in ("ann", "bob"):
        await application.dispatch(PlaceOrder(customer=customer, amount=1))
    head = await settle_all_but(application, "analytics.revenue")
    async with served(application) as client:
        samples = await scrape(client)
    lag = value(samples, "citadel_consumer_lag_events", consumer="analytics.revenue")
    assert lag == await events_between(application, stopped_at, head) == 4
    assert value(samples, "citadel_consumer_lag_events", consumer="billing.open_invoices") == 0
    assert value(samples, "citadel_consumer_lease_held", consumer="analytics.revenue") == 0
    assert value(samples, "citadel_consumer_lease_held", consumer="billing.open_invoices") == 1


async def test_the_dead_letters_gauge_is_the_number_of_events_parked(application: Application) -> None:
    await application.dispatch(PlaceOrder(customer="ann", amount=5))
    await settle(application)
    async with served(application) as client:
        assert value(await scrape(client), "citadel_dead_letters") == 0
        for record in (await application.store.read_all(1, 10))[:2]:
            await application.store.add_dead_letter("billing.open_invoices", record, "RuntimeError: unlucky", 5)
        assert value(await scrape(client), "citadel_dead_letters") == 2


async def test_events_a_consumer_processed_are_counted(application: Application) -> None:
    consumer = application.consumers["analytics.revenue"]
    name = "citadel_consumer_processed_events_total"
    async with served(application) as client:
        await settle(application)
        before = await scrape(client)
        seen = getattr(consumer, "processed", None)
        await application.dispatch(PlaceOrder(customer="ann", amount=5))
        await settle(application)
        after = await scrape(client)
    added = value(after, name, consumer="analytics.revenue") - value(before, name, consumer="analytics.revenue")
    if seen is None:  # consumers that do not count what they process report nothing
        assert added == 0
    else:
        assert added == consumer.processed - seen >= 1


async def test_a_refused_request_counts_as_a_rate_limit_refusal_of_the_callers_bucket(
    application: Application,
) -> None:
    limited = {"limiter": open_rate_limiter(None), "rate_rule": RateRule(rate=0.001, burst=1)}
    async with served(application, **limited) as client, served(application) as scraper:
        before = await scrape(scraper)
        order = {"customer": "ann", "amount": 1}
        statuses = [(await client.post("/orders/place-order", json=order)).status_code for _ in range(3)]
        after = await scrape(scraper)
    assert statuses == [200, 429, 429]
    refusals = "citadel_rate_limit_refusals_total"
    assert value(after, refusals, scope="caller") - value(before, refusals, scope="caller") == 2
    labels = {"route": "/orders/place-order", "method": "POST", "status": "429"}
    assert value(after, REQUESTS, **labels) - value(before, REQUESTS, **labels) == 2


async def test_a_request_refused_by_its_address_bucket_counts_before_routing(application: Application) -> None:
    limited = {"address_limiter": open_rate_limiter(None), "address_rule": RateRule(rate=0.001, burst=1)}
    async with served(application, **limited) as client, served(application) as scraper:
        before = await scrape(scraper)
        statuses = [(await client.get("/health")).status_code for _ in range(3)]
        after = await scrape(scraper)
    assert statuses == [200, 429, 429]
    refusals = "citadel_rate_limit_refusals_total"
    assert value(after, refusals, scope="address") - value(before, refusals, scope="address") == 2
    labels = {"route": "other", "method": "GET", "status": "429"}
    assert value(after, REQUESTS, **labels) - value(before, REQUESTS, **labels) == 2


async def test_unknown_paths_and_methods_share_one_label_each(application: Application) -> None:
    async with served(application) as client:
        before = await scrape(client)
        for n in range(5):
            assert (await client.get(f"/no/such-path-{n}")).status_code == 404
        assert (await client.request("BREW", "/no/such-pot")).status_code == 404
        response = await client.get("/metrics", headers=ADMIN)
    after = parse(response.text)
    assert (
        value(after, REQUESTS, route="other", method="GET", status="404")
        - value(before, REQUESTS, route="other", method="GET", status="404")
        == 5
    )
    assert value(after, REQUESTS, route="other", method="other", status="404") >= 1
    assert "such" not in response.text
    assert "BREW" not in response.text


async def test_a_signature_refusal_is_counted_by_reason(application: Application) -> None:
    broker = NatsBroker("nats://127.0.0.1:4222/metrics", keys=ServiceKeys.generate())
    async with served(application) as client:
        before = await scrape(client)
        for _ in range(2):
            with pytest.raises(UnverifiedMessage) as refused:
                broker.verified("request", "metrics.command.x", b"{}", {})
            assert refused.value.reason == "unsigned"
        after = await scrape(client)
    name = "citadel_signature_refusals_total"
    assert value(after, name, reason="unsigned") - value(before, name, reason="unsigned") == 2


async def test_metrics_need_the_scrape_token_or_an_administrator(application: Application) -> None:
    member = {"authorization": f"Bearer {issue_token(SECRET, 'ann', ['member'])}"}
    async with served(application) as client:
        anonymous = await client.get("/metrics")
        forged = await client.get("/metrics", headers={"authorization": "Bearer not-the-token"})
        hostile = await client.get("/metrics", headers={"authorization": "Bearer " + "x" * 20_000})
        other = await client.get("/metrics", headers=member)
        scraper = await client.get("/metrics", headers={"authorization": f"Bearer {SCRAPE_TOKEN}"})
        admin = await client.get("/metrics", headers=ADMIN)
    assert [r.status_code for r in (anonymous, forged, hostile, other)] == [401, 401, 401, 403]
    assert all(r.headers["content-type"] == "application/problem+json" for r in (anonymous, other))
    assert "citadel_" not in anonymous.text + forged.text + other.text
    assert (scraper.status_code, admin.status_code) == (200, 200)
    assert "citadel_http_requests_total" in scraper.text


async def test_metrics_turned_off_serve_no_endpoint(application: Application) -> None:
    async with served(application, metrics=False) as client:
        response = await client.get("/metrics", headers=ADMIN)
    assert response.status_code == 404


async def test_a_scrape_while_the_store_answers_slowly_still_answers(application: Application) -> None:
    async with served(application) as client:
        responses = await asyncio.gather(*(client.get("/metrics", headers=ADMIN) for _ in range(5)))
    assert {r.status_code for r in responses} == {200}
