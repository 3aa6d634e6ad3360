"""Admission, before authentication: every request takes a token from its client address's bucket (a flood of bad
tokens is limited too), and the client address comes from a trusted proxy's headers, never from anyone else's."""

from __future__ import annotations

import httpx
import pytest

from citadel import Application
from citadel.http import create_asgi
from citadel.http.auth import bearer_authenticator
from citadel.security import MemoryRateLimiter, RateRule, TokenVerifier, issue_token

SECRET = "a-secret-for-the-admission-tests-long-enough"


def client_from(asgi: object, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(asgi, client=(address, 5555))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://shop")


@pytest.fixture
def gated(application: Application) -> object:
    return create_asgi(
        application,
        manage_lifecycle=False,
        authenticate=bearer_authenticator(TokenVerifier(secret=SECRET)),
        address_limiter=MemoryRateLimiter(),
        address_rule=RateRule(rate=0.001, burst=3, name="address"),
        trusted_proxies=["10.0.0.1"],
    )


async def test_bad_tokens_are_limited_per_address_before_they_are_verified(gated: object) -> None:
    async with client_from(gated, "192.0.2.10") as client:
        headers = {"authorization": "Bearer not-a-token"}
        statuses = [(await client.get("/orders/order?order_id=x", headers=headers)).status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 429, 429]


async def test_the_address_bucket_is_taken_by_good_callers_too_and_tells_when_to_retry(gated: object) -> None:
    token = issue_token(SECRET, "ann", ["admin"])
    async with client_from(gated, "192.0.2.11") as client:
        answers = [await client.get("/health", headers={"authorization": f"Bearer {token}"}) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["ratelimit-policy"].startswith('"address";q=3;')
    assert int(refused.headers["retry-after"]) >= 1


async def test_each_address_has_its_own_bucket(gated: object) -> None:
    for address in ("192.0.2.20", "192.0.2.21"):
        async with client_from(gated, address) as client:
            assert [(await client.get("/health")).status_code for _ in range(3)] == [200, 200, 200]


async def test_one_ipv6_host_cannot_escape_its_bucket_by_changing_address_within_its_64(gated: object) -> None:
    statuses = []
    for host in range(1, 6):
        async with client_from(gated, f"2001:db8:1:2::{host}") as client:
            statuses.append((await client.get("/health")).status_code)
    assert statuses == [200, 200, 200, 429, 429]


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket(gated: object) -> None:
    async with client_from(gated, "10.0.0.1") as proxy:
        for client in ("198.51.100.1", "198.51.100.2"):
            headers = {"x-forwarded-for": client}
            assert [(await proxy.get("/health", headers=headers)).status_code for _ in range(3)] == [200] * 3
        assert (await proxy.get("/health", headers={"x-forwarded-for": "198.51.100.1"})).status_code == 429


async def test_an_untrusted_client_cannot_pick_its_bucket_with_forwarding_headers(gated: object) -> None:
    async with client_from(gated, "192.0.2.30") as client:
        statuses = []
        for n in range(5):
            spoofed = {"x-forwarded-for": f"203.0.113.{n}", "forwarded": f"for=203.0.113.{n}"}
            statuses.append((await client.get("/health", headers=spoofed)).status_code)
    assert statuses == [200, 200, 200, 429, 429]
