"""Scraping ``/metrics`` in the tests: the exposition parsed into samples, and the change between two scrapes
(the metrics of a process add up over every test it runs)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from citadel import Application
from citadel.http import create_asgi
from citadel.http.auth import bearer_authenticator
from citadel.security import TokenVerifier, issue_token

SECRET = "a-test-secret-that-is-long-enough-for-hs256"
ADMIN = {"authorization": f"Bearer {issue_token(SECRET, 'ops', ['admin'])}"}
SCRAPE_TOKEN = "a-scrape-token-of-the-tests"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when absent: a counter not incremented yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


@contextlib.asynccontextmanager
async def served(application: Application, **options: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``application``'s HTTP API with metrics (tokens of the tests' secret verify)."""
    asgi = create_asgi(
        application,
        manage_lifecycle=False,
        authenticate=bearer_authenticator(TokenVerifier(secret=SECRET)),
        metrics_token=SCRAPE_TOKEN,
        **options,
    )
    transport = httpx.ASGITransport(asgi, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        yield client


async def scrape(client: httpx.AsyncClient) -> Samples:
    """Scrape as an administrator; the samples."""
    response = await client.get("/metrics", headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)
