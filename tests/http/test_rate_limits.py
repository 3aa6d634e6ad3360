"""Rate limits at the HTTP edge: a token bucket per caller, 429 with the IETF headers when it runs dry."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from mini import PlaceOrder
from starlette.requests import Request

from citadel import Actor, Application
from citadel.http import create_asgi
from citadel.security import MemoryRateLimiter, RateRule


async def by_header(request: Request) -> Actor:
    """Test authenticator: the caller names itself in a header (anonymous without it)."""
    who = request.headers.get("x-who")
    return Actor(who) if who else Actor("anonymous")


@pytest.fixture
async def limited(application: Application) -> AsyncIterator[httpx.AsyncClient]:
    asgi = create_asgi(
        application,
        manage_lifecycle=False,
        authenticate=by_header,
        limiter=MemoryRateLimiter(),
        rate_rule=RateRule(rate=0.001, burst=3),
        rate_rules={PlaceOrder: RateRule(rate=0.001, burst=1, name="writes")},
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(asgi), base_url="http://shop") as client:
        yield client


async def test_a_caller_past_its_burst_gets_429_with_retry_after_and_the_ratelimit_headers(
    limited: httpx.AsyncClient,
) -> None:
    answers = [await limited.get("/orders/order", params={"order_id": "x"}, headers={"x-who": "ann"}) for _ in range(4)]
    assert [a.status_code for a in answers] == [404, 404, 404, 429]
    refused = answers[-1]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "urn:citadel:problem:rate-limited"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-policy"].startswith('"default";q=3;w=')
    assert refused.headers["ratelimit"].startswith('"default";r=0;t=')
    assert answers[0].headers["ratelimit"].startswith('"default";r=2;')  # every answer tells what is left


async def test_callers_have_buckets_of_their_own(limited: httpx.AsyncClient) -> None:
    for who in ("ann", "bob"):
        for _ in range(3):
            response = await limited.get("/orders/order", params={"order_id": "x"}, headers={"x-who": who})
            assert response.status_code == 404
    assert (await limited.get("/orders/order", params={"order_id": "x"}, headers={"x-who": "ann"})).status_code == 429


async def test_a_message_type_may_have_its_own_rule(limited: httpx.AsyncClient) -> None:
    body = {"customer": "ann", "amount": 1}
    first = await limited.post("/orders/place-order", json=body, headers={"x-who": "ann"})
    second = await limited.post("/orders/place-order", json=body, headers={"x-who": "ann"})
    assert (first.status_code, second.status_code) == (200, 429)
    assert second.headers["ratelimit-policy"].startswith('"writes";q=1;')
    # the query bucket is another one, still full
    assert (await limited.get("/orders/order", params={"order_id": "x"}, headers={"x-who": "ann"})).status_code == 404


async def test_anonymous_callers_share_the_bucket_of_their_address(limited: httpx.AsyncClient) -> None:
    statuses = [(await limited.get("/orders/order", params={"order_id": "x"})).status_code for _ in range(4)]
    assert statuses == [404, 404, 404, 429]
