"""Rate limits of real ``citadel serve`` processes: one bucket per caller shared by every node through Redis,
problem documents and ``RateLimit`` headers on 429, and what a server does when Redis is unreachable.

Redis runs at 127.0.0.1:6379 (CI guarantees it; these tests fail, never skip, without it). Each test limits a
caller of its own (a random subject, or a random loopback address) and deletes that caller's keys afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis import Redis
from redis.exceptions import RedisError
from shopper import SECRET, describe, problem, token
from test_serve_process import CITADEL, ROOT, Server, free_port, master_key_file, stop, wait_until_healthy

pytestmark = pytest.mark.slow

REDIS_URL = "redis://127.0.0.1:6379/0"
PREFIX = "citadel:rl:"  # RedisRateLimiter's default key prefix
SHARED = {"CITADEL_REDIS_URL": REDIS_URL, "CITADEL_RATE_LIMIT_BURST": "10", "CITADEL_RATE_LIMIT_RATE": "0.01"}
ITEM = "/content/item"
PROMPTLY = 1.0  # seconds: the limiter waits at most 0.25 s for Redis


@contextlib.contextmanager
def serving(folder: Path, store_url: str, **settings: str) -> Iterator[Server]:
    """Run ``citadel serve examples.shop:app`` with these ``CITADEL_*`` settings until the block ends."""
    port = free_port()
    server = Server(f"http://127.0.0.1:{port}", folder / f"server-{port}.log")
    command = [CITADEL, "serve", "examples.shop:app", "--port", str(port), "--store", store_url]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITADEL_")}
    env |= {"CITADEL_AUTH_SECRET": SECRET, "CITADEL_MASTER_KEY_FILE": str(master_key_file(folder)), **settings}
    with server.output.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until_healthy(process, server)
        try:
            yield server
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- server output ---\n{server.log()}") from exc
    finally:
        stop(process)


@pytest.fixture(scope="module")
def redis() -> Iterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except RedisError as exc:
        client.close()
        pytest.fail(f"these tests need Redis at 127.0.0.1:6379 (start one: redis-server): {exc}")
    yield client
    client.close()


@pytest.fixture
def forget(redis: Redis) -> Iterator[list[str]]:
    """Callers (``subject:...`` or ``address:...``) whose buckets are deleted from Redis after the test."""
    callers: list[str] = []
    yield callers
    for caller in callers:
        keys = list(redis.scan_iter(match=f"{PREFIX}*:{caller}"))
        if keys:
            redis.delete(*keys)


@pytest.fixture
def subject(forget: list[str]) -> str:
    """A subject no other test run has used, so its bucket starts full."""
    name = f"limits-{uuid.uuid4().hex}"
    forget.append(f"subject:{name}")
    return name


def loopback(forget: list[str]) -> str:
    """A random loopback address for an anonymous client to connect from (its bucket starts full)."""
    found = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    forget.append(f"address:{found}")
    return found


@pytest.fixture(scope="module")
def two_servers(redis: Redis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    """Two servers on one SQLite file, sharing buckets of 10 in Redis that refill one token per 100 s."""
    folder = tmp_path_factory.mktemp("two-servers")
    store_url = f"sqlite:///{folder / 'shop.db'}"
    with serving(folder, store_url, **SHARED) as first, serving(folder, store_url, **SHARED) as second:
        yield first, second


@pytest.fixture(scope="module")
def small_server(redis: Redis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose Redis buckets hold 3 tokens."""
    folder = tmp_path_factory.mktemp("small")
    with serving(folder, f"sqlite:///{folder / 'shop.db'}", **(SHARED | {"CITADEL_RATE_LIMIT_BURST": "3"})) as server:
        yield server


@contextlib.contextmanager
def unreachable_redis(tmp_path: Path, fail_open: bool) -> Iterator[Server]:
    settings = {"CITADEL_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}  # nothing listens there
    settings["CITADEL_RATE_LIMIT_FAIL_OPEN"] = str(fail_open).lower()
    with serving(tmp_path, f"sqlite:///{tmp_path / 'shop.db'}", **settings) as server:
        yield server


async def hammer(servers: tuple[Server, ...], subject: str, requests: int) -> list[httpx.Response]:
    """Send ``requests`` reads as ``subject`` (an admin), one after the other, to each server in turn."""
    headers = {"authorization": f"Bearer {token(subject, 'admin')}"}
    async with httpx.AsyncClient(headers=headers) as client:
        return [
            await client.get(f"{servers[i % len(servers)].url}{ITEM}", params={"content_id": "x"})
            for i in range(requests)
        ]


async def anonymous_reads(server: Server, address: str, requests: int) -> list[int]:
    """The statuses of ``requests`` anonymous reads sent from the loopback ``address``."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(transport=transport, base_url=server.url) as client:
        return [(await client.get(ITEM, params={"content_id": "x"})).status_code for _ in range(requests)]


async def timed_read(server: Server) -> tuple[httpx.Response, float]:
    headers = {"authorization": f"Bearer {token('limits', 'admin')}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers) as client:
        started = time.monotonic()
        response = await client.get(ITEM, params={"content_id": "x"})
        return response, time.monotonic() - started


# -- one bucket for every node ---------------------------------------------------------------------------------


async def test_one_caller_alternating_between_two_servers_gets_exactly_the_burst_of_10_in_total(
    two_servers: tuple[Server, Server], subject: str
) -> None:
    answers = await hammer(two_servers, subject, 30)

    statuses = [a.status_code for a in answers]
    assert sum(s != 429 for s in statuses) == 10, statuses
    assert statuses[:10] == [404] * 10, statuses  # the item does not exist: admitted, then not found
    assert statuses[10:] == [429] * 20, statuses


async def test_every_refusal_is_a_rate_limited_problem_with_a_retry_after_of_at_least_one_second(
    two_servers: tuple[Server, Server], subject: str
) -> None:
    refused = [a for a in await hammer(two_servers, subject, 30) if a.status_code == 429]

    assert len(refused) == 20
    for response in refused:
        problem(response, 429, "rate-limited")
        assert re.fullmatch(r"[0-9]+", response.headers["retry-after"]), describe(response)
        assert int(response.headers["retry-after"]) >= 1


async def test_every_refusal_states_the_policy_and_an_empty_bucket_as_structured_fields(
    two_servers: tuple[Server, Server], subject: str
) -> None:
    refused = [a for a in await hammer(two_servers, subject, 30) if a.status_code == 429]

    assert len(refused) == 20
    for response in refused:
        assert response.headers["ratelimit-policy"] == '"default";q=10;w=1000'  # 10 tokens / 0.01 per second
        found = re.fullmatch(r'"default";r=([0-9]+);t=([0-9]+)', response.headers["ratelimit"])
        assert found, describe(response)
        assert int(found[1]) == 0
        assert 0 < int(found[2]) <= 1000


async def test_another_caller_keeps_its_own_full_bucket_when_one_is_empty(
    two_servers: tuple[Server, Server], forget: list[str]
) -> None:
    greedy, patient = f"limits-{uuid.uuid4().hex}", f"limits-{uuid.uuid4().hex}"
    forget += [f"subject:{greedy}", f"subject:{patient}"]
    await hammer(two_servers, greedy, 12)

    assert [a.status_code for a in await hammer(two_servers, patient, 10)] == [404] * 10


# -- anonymous callers -------------------------------------------------------------------------------------------


async def test_four_anonymous_reads_from_one_address_with_a_burst_of_3_refuse_the_fourth(
    small_server: Server, forget: list[str]
) -> None:
    statuses = await anonymous_reads(small_server, loopback(forget), 4)

    assert 429 not in statuses[:3], statuses
    assert statuses[3] == 429, statuses


async def test_anonymous_readers_from_two_addresses_have_a_bucket_each(small_server: Server, forget: list[str]) -> None:
    await anonymous_reads(small_server, loopback(forget), 4)

    assert 429 not in await anonymous_reads(small_server, loopback(forget), 3)


# -- Redis unreachable -------------------------------------------------------------------------------------------


async def test_a_server_failing_closed_refuses_promptly_with_429_when_redis_is_unreachable(tmp_path: Path) -> None:
    with unreachable_redis(tmp_path, fail_open=False) as server:
        response, elapsed = await timed_read(server)

        problem(response, 429, "rate-limited")
        assert elapsed < PROMPTLY


async def test_a_server_failing_open_serves_promptly_when_redis_is_unreachable(tmp_path: Path) -> None:
    with unreachable_redis(tmp_path, fail_open=True) as server:
        response, elapsed = await timed_read(server)

        assert response.status_code in (200, 404), describe(response)
        assert elapsed < PROMPTLY


async def test_a_server_that_cannot_reach_redis_logs_a_warning_naming_the_rate_limiter(tmp_path: Path) -> None:
    with unreachable_redis(tmp_path, fail_open=True) as server:
        await timed_read(server)
        deadline = time.monotonic() + 5.0
        while "rate limiter cannot reach Redis" not in server.log() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

        assert "rate limiter cannot reach Redis, allowing requests (fail_open)" in server.log()
