"""The token bucket shared through Redis: a real server at 127.0.0.1:6379, which CI guarantees.

These tests fail, never skip, when that server is missing. Each test uses its own random key prefix and
deletes its keys afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from citadel.errors import ConfigurationError
from citadel.security.ratelimit import RateRule, RedisRateLimiter, open_rate_limiter

REDIS_URL = "redis://127.0.0.1:6379/0"

# One node of the two-process test: warm up (connection, script), wait for the common start, hammer one key
# until the common end, print how many checks were allowed. Failing closed, so a Redis hiccup cannot add any.
HAMMER = """
import asyncio, sys, time
from citadel.security.ratelimit import RateRule, RedisRateLimiter

async def main(url, prefix, rate, burst, start, end):
    limiter = RedisRateLimiter(url, prefix=prefix, fail_open=False, timeout=5.0)
    rule = RateRule(rate=rate, burst=burst)
    await limiter.check("warm-up", rule)
    await asyncio.sleep(max(0.0, start - time.time()))
    allowed = 0
    while time.time() < end:
        allowed += (await limiter.check("shared", rule)).allowed
    await limiter.close()
    print(allowed)

url, prefix, rate, burst, start, end = sys.argv[1:]
asyncio.run(main(url, prefix, float(rate), int(burst), float(start), float(end)))
"""


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except RedisError as exc:
        await client.aclose()
        pytest.fail(f"these tests need Redis at 127.0.0.1:6379 (start one: redis-server): {exc}")
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis: Redis) -> AsyncIterator[str]:
    prefix = f"citadel:test:{uuid.uuid4().hex}:"
    yield prefix
    keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
    if keys:
        await redis.delete(*keys)


@pytest.fixture
async def limiter(prefix: str) -> AsyncIterator[RedisRateLimiter]:
    limiter = RedisRateLimiter(REDIS_URL, prefix=prefix)
    yield limiter
    await limiter.close()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections (in the kernel's backlog) and never answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as server:
        yield int(server.getsockname()[1])


async def test_a_shared_bucket_allows_the_burst_then_refuses_with_retry_after(limiter: RedisRateLimiter) -> None:
    rule = RateRule(rate=1, burst=3)

    decisions = [await limiter.check("alice", rule) for _ in range(4)]

    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert 0.9 < decisions[-1].retry_after <= 1.0
    assert 2.9 < decisions[-1].reset <= 3.0


async def test_waiting_retry_after_is_enough_for_the_refused_request(limiter: RedisRateLimiter) -> None:
    rule = RateRule(rate=20, burst=1)
    await limiter.check("alice", rule)
    refused = await limiter.check("alice", rule)

    await asyncio.sleep(refused.retry_after)

    assert not refused.allowed
    assert (await limiter.check("alice", rule)).allowed


async def test_each_key_has_its_own_shared_bucket(limiter: RedisRateLimiter) -> None:
    rule = RateRule(rate=1, burst=1)
    await limiter.check("alice", rule)

    assert not (await limiter.check("alice", rule)).allowed
    assert (await limiter.check("bob", rule)).allowed


async def test_a_request_costing_several_tokens_takes_them_all(limiter: RedisRateLimiter) -> None:
    rule = RateRule(rate=1, burst=10)

    decisions = [await limiter.check("upload", rule, cost=4) for _ in range(3)]

    assert [(d.allowed, d.remaining) for d in decisions] == [(True, 6), (True, 2), (False, 2)]


async def test_a_bucket_vanishes_from_redis_once_it_would_be_full(
    limiter: RedisRateLimiter, redis: Redis, prefix: str
) -> None:
    await limiter.check("alice", RateRule(rate=50, burst=1))  # full again after 20 ms
    assert await redis.keys(f"{prefix}*")

    await asyncio.sleep(0.1)

    assert await redis.keys(f"{prefix}*") == []


async def test_two_processes_share_one_bucket(prefix: str) -> None:
    rate, burst, window = 50.0, 20, 1.0
    start = time.time() + 2.0  # time for both interpreters to start and warm up
    argv = [REDIS_URL, prefix, str(rate), str(burst), str(start), str(start + window)]
    nodes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", HAMMER, *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(2)
    ]
    outputs = [await node.communicate() for node in nodes]

    assert [node.returncode for node in nodes] == [0, 0], [err.decode() for _, err in outputs]
    allowed = [int(out) for out, _ in outputs]
    assert all(allowed), allowed  # both nodes drew from the bucket
    # One bucket: burst + rate * window = 70 (two buckets would allow 140). A node that starts late only
    # lowers the total; 2 tokens of slack cover the last check landing up to 40 ms after the window.
    assert burst + rate * window * 0.8 <= sum(allowed) <= burst + rate * window + 2


async def test_each_check_is_one_evalsha_round_trip(limiter: RedisRateLimiter, redis: Redis) -> None:
    rule = RateRule(rate=1_000, burst=1_000)
    await limiter.check("alice", rule)  # loads the script and opens the connection
    before = await redis.info("commandstats")

    for _ in range(25):
        await limiter.check("alice", rule)

    after = await redis.info("commandstats")

    def calls(stats: dict[str, dict[str, int]], command: str) -> int:
        return stats.get(f"cmdstat_{command}", {}).get("calls", 0)

    assert calls(after, "evalsha") - calls(before, "evalsha") == 25
    assert calls(after, "eval") - calls(before, "eval") == 0
    assert calls(after, "script|load") - calls(before, "script|load") == 0


async def test_the_script_is_reloaded_after_script_flush(limiter: RedisRateLimiter, redis: Redis) -> None:
    rule = RateRule(rate=1, burst=3)
    await limiter.check("alice", rule)

    await redis.script_flush()
    decision = await limiter.check("alice", rule)

    assert (decision.allowed, decision.remaining) == (True, 1)  # the same bucket, one more token taken


async def test_unreachable_redis_fails_open_promptly(closed_port: int) -> None:
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{closed_port}/0", fail_open=True)
    try:
        started = time.perf_counter()
        decision = await limiter.check("alice", RateRule(rate=1, burst=1))
        elapsed = time.perf_counter() - started
    finally:
        await limiter.close()

    assert elapsed < 2
    assert (decision.allowed, decision.retry_after) == (True, 0.0)


async def test_unreachable_redis_fails_closed_promptly(closed_port: int) -> None:
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{closed_port}/0", fail_open=False)
    try:
        started = time.perf_counter()
        decision = await limiter.check("alice", RateRule(rate=1, burst=1))
        elapsed = time.perf_counter() - started
    finally:
        await limiter.close()

    assert elapsed < 2
    assert (decision.allowed, decision.retry_after) == (False, 1.0)


async def test_a_redis_that_never_answers_gives_up_after_the_timeout(silent_server: int) -> None:
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{silent_server}/0", fail_open=False, timeout=0.2)
    try:
        started = time.perf_counter()
        decision = await limiter.check("alice", RateRule(rate=1, burst=1))
        elapsed = time.perf_counter() - started
    finally:
        await limiter.close()

    assert 0.15 < elapsed < 1
    assert not decision.allowed


async def test_failures_are_logged_at_most_once_per_ten_seconds(
    closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{closed_port}/0")
    try:
        with caplog.at_level(logging.WARNING, logger="citadel.ratelimit"):
            for _ in range(3):
                await limiter.check("alice", RateRule(rate=1, burst=1))
    finally:
        await limiter.close()

    warnings = [r for r in caplog.records if r.name == "citadel.ratelimit"]
    assert len(warnings) == 1
    assert "allowing requests" in warnings[0].getMessage()


async def test_a_redis_url_opens_a_shared_limiter() -> None:
    limiter = open_rate_limiter(REDIS_URL, fail_open=False)
    try:
        assert isinstance(limiter, RedisRateLimiter)
        assert not limiter.fail_open
    finally:
        await limiter.close()


def test_a_url_that_is_not_redis_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="Redis URL"):
        RedisRateLimiter("http://127.0.0.1:6379")
