"""``/metrics`` of a real ``citadel serve --workers 2``: whichever worker answers a scrape reports the whole
node's requests, summed over both workers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from shopper import register
from test_serve_process import ADMIN, environment, serving, workers_of

pytestmark = pytest.mark.slow

TOKEN = "the-scrape-token-of-this-test"
SCRAPER = {"authorization": f"Bearer {TOKEN}"}
SENT = 40


def samples(text: str, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """The samples called ``name`` in an exposition, by their labels (parsing it checks its format)."""
    return {
        frozenset(s.labels.items()): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def health_requests(text: str) -> float:
    return samples(text, "citadel_http_requests_total").get(
        frozenset({("route", "/health"), ("method", "GET"), ("status", "200")}), 0.0
    )


async def test_a_scrape_of_either_worker_sums_the_requests_of_both(tmp_path: Path) -> None:
    env = environment(tmp_path) | {"CITADEL_METRICS_TOKEN": TOKEN}
    with serving(tmp_path, f"sqlite:///{tmp_path / 'shop.db'}", workers=2, env=env) as server:
        assert len(workers_of(server.pid)) == 2
        fresh = httpx.Limits(max_keepalive_connections=0)  # a connection per request: both workers get some
        async with httpx.AsyncClient(base_url=server.url, limits=fresh) as client:
            before = health_requests((await client.get("/metrics", headers=SCRAPER)).text)  # the start-up probes
            for _ in range(SENT):
                assert (await client.get("/health")).status_code == 200
            anonymous = await client.get("/metrics")
            scrapes = [await client.get("/metrics", headers=SCRAPER) for _ in range(10)]
        async with httpx.AsyncClient(base_url=server.url, headers=ADMIN) as client:
            await register(client)
            admin = await client.get("/metrics")

    assert anonymous.status_code == 401
    assert all(r.status_code == 200 for r in (*scrapes, admin)), [r.status_code for r in scrapes]
    assert [health_requests(r.text) for r in scrapes] == [before + SENT] * 10
    durations = samples(admin.text, "citadel_command_duration_seconds_count")
    assert durations.get(frozenset({("type", "users.RegisterUser")}), 0) == 1


async def test_each_consumers_lease_is_held_by_one_worker_of_the_node(tmp_path: Path) -> None:
    env = environment(tmp_path) | {"CITADEL_METRICS_TOKEN": TOKEN}
    with serving(tmp_path, f"sqlite:///{tmp_path / 'shop.db'}", workers=2, env=env) as server:
        async with httpx.AsyncClient(base_url=server.url, headers=SCRAPER) as client:
            deadline = asyncio.get_running_loop().time() + 20.0
            while True:
                leases = samples((await client.get("/metrics")).text, "citadel_consumer_lease_held")
                if (leases and set(leases.values()) == {1.0}) or asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.2)
    assert len(leases) == 5  # three process managers, two async projections
    assert set(leases.values()) == {1.0}
