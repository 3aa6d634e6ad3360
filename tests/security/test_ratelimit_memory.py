"""The in-process token bucket, driven by a fake clock so every number is exact."""

from __future__ import annotations

import asyncio

import pytest
from clocks import FakeClock
from hypothesis import given, settings
from hypothesis import strategies as st

from citadel.errors import ConfigurationError
from citadel.security.ratelimit import (
    Decision,
    MemoryRateLimiter,
    RateRule,
    open_rate_limiter,
    rate_limit_headers,
    rate_limit_raw_headers,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limiter(clock: FakeClock) -> MemoryRateLimiter:
    return MemoryRateLimiter(clock=clock)


async def test_a_fresh_bucket_allows_the_burst_then_refuses_until_a_token_refills(limiter: MemoryRateLimiter) -> None:
    rule = RateRule(rate=2, burst=3)

    decisions = [await limiter.check("alice", rule) for _ in range(4)]

    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[-1].retry_after == pytest.approx(0.5)
    assert decisions[-1].reset == pytest.approx(1.5)


async def test_an_allowed_request_has_no_retry_after_and_reports_the_time_to_full(limiter: MemoryRateLimiter) -> None:
    decision = await limiter.check("alice", RateRule(rate=2, burst=3))

    assert decision == Decision(allowed=True, remaining=2, retry_after=0.0, reset=0.5, rule=RateRule(2, 3))


async def test_waiting_retry_after_is_enough_for_the_refused_request(
    limiter: MemoryRateLimiter, clock: FakeClock
) -> None:
    rule = RateRule(rate=0.3, burst=1)
    await limiter.check("alice", rule)
    refused = await limiter.check("alice", rule)

    clock.advance(refused.retry_after)

    assert (await limiter.check("alice", rule)).allowed


async def test_tokens_refill_at_the_rule_rate_and_never_beyond_the_burst(
    limiter: MemoryRateLimiter, clock: FakeClock
) -> None:
    rule = RateRule(rate=10, burst=5)
    for _ in range(5):
        await limiter.check("alice", rule)

    clock.advance(0.25)  # 2.5 tokens back
    assert (await limiter.check("alice", rule)).remaining == 1
    clock.advance(60)  # far more than a full bucket's worth
    assert (await limiter.check("alice", rule)).remaining == 4


async def test_a_request_costing_several_tokens_takes_them_all(limiter: MemoryRateLimiter) -> None:
    rule = RateRule(rate=1, burst=10)

    first = await limiter.check("upload", rule, cost=4)
    second = await limiter.check("upload", rule, cost=4)
    third = await limiter.check("upload", rule, cost=4)

    assert (first.allowed, first.remaining) == (True, 6)
    assert (second.allowed, second.remaining) == (True, 2)
    assert (third.allowed, third.remaining, third.retry_after) == (False, 2, 2.0)


async def test_a_refused_costly_request_leaves_the_tokens_for_cheaper_ones(limiter: MemoryRateLimiter) -> None:
    rule = RateRule(rate=1, burst=3)
    await limiter.check("upload", rule, cost=2)

    assert not (await limiter.check("upload", rule, cost=2)).allowed
    assert (await limiter.check("upload", rule, cost=1)).allowed


async def test_a_cost_above_the_burst_is_a_configuration_error(limiter: MemoryRateLimiter) -> None:
    with pytest.raises(ConfigurationError, match="raise the burst"):
        await limiter.check("upload", RateRule(rate=1, burst=3), cost=4)


async def test_each_key_has_its_own_bucket(limiter: MemoryRateLimiter) -> None:
    rule = RateRule(rate=1, burst=1)
    await limiter.check("alice", rule)

    assert not (await limiter.check("alice", rule)).allowed
    assert (await limiter.check("bob", rule)).allowed


async def test_rules_with_different_names_keep_separate_buckets_for_one_key(limiter: MemoryRateLimiter) -> None:
    await limiter.check("alice", RateRule(rate=1, burst=1, name="login"))

    assert (await limiter.check("alice", RateRule(rate=1, burst=1, name="search"))).allowed


async def test_buckets_never_outnumber_max_keys(clock: FakeClock) -> None:
    limiter = MemoryRateLimiter(max_keys=100, clock=clock)
    rule = RateRule(rate=1, burst=5)

    for i in range(1_000):
        await limiter.check(f"client-{i}", rule)

    assert len(limiter) == 100


async def test_when_over_max_keys_the_least_recently_used_bucket_is_forgotten(clock: FakeClock) -> None:
    limiter = MemoryRateLimiter(max_keys=2, clock=clock)
    rule = RateRule(rate=1, burst=1)
    for key in ("a", "b", "a", "c"):  # "b" is now the least recently used
        await limiter.check(key, rule)

    assert not (await limiter.check("a", rule)).allowed
    assert (await limiter.check("b", rule)).allowed  # a fresh, full bucket


async def test_buckets_that_would_be_full_again_are_dropped_as_new_keys_arrive(clock: FakeClock) -> None:
    limiter = MemoryRateLimiter(max_keys=1_000, clock=clock)
    rule = RateRule(rate=1, burst=1)
    for i in range(10):
        await limiter.check(f"idle-{i}", rule)
    clock.advance(1)  # every idle bucket is full again: forgetting them changes nothing

    for i in range(5):
        await limiter.check(f"new-{i}", rule)

    assert len(limiter) == 5


async def test_close_forgets_every_bucket(limiter: MemoryRateLimiter) -> None:
    await limiter.check("alice", RateRule(rate=1, burst=1))

    await limiter.close()

    assert len(limiter) == 0


@settings(max_examples=300, deadline=None, database=None)
@given(
    rate=st.floats(min_value=0.01, max_value=1_000),
    burst=st.integers(min_value=1, max_value=50),
    steps=st.lists(
        st.tuples(st.floats(min_value=0, max_value=10), st.integers(min_value=0, max_value=49)), max_size=80
    ),
)
def test_allowed_tokens_never_exceed_the_burst_plus_the_refill(
    rate: float, burst: int, steps: list[tuple[float, int]]
) -> None:
    # Over every stretch of time between two checks, not only since the first one: an uncapped bucket saves
    # tokens while idle and still passes the bound counted from the start.
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock)
    rule = RateRule(rate=rate, burst=burst)

    async def hammer() -> None:
        times: list[float] = []
        taken_before: list[int] = []  # tokens allowed before each check
        taken = 0
        for advance, extra in steps:
            clock.advance(advance)
            times.append(clock.now)
            taken_before.append(taken)
            cost = 1 + extra % burst
            decision = await limiter.check("k", rule, cost)
            taken += cost if decision.allowed else 0
            assert decision.remaining >= 0
            for since, before in zip(times, taken_before, strict=True):
                assert taken - before <= burst + rate * (clock.now - since) + 1e-6

    asyncio.run(hammer())


def test_headers_of_an_allowed_request() -> None:
    rule = RateRule(rate=10, burst=100, name="api")
    decision = Decision(allowed=True, remaining=99, retry_after=0.0, reset=0.1, rule=rule)

    assert rate_limit_headers(decision) == {
        "RateLimit-Policy": '"api";q=100;w=10',
        "RateLimit": '"api";r=99;t=1',
    }


def test_headers_of_a_refused_request_add_retry_after_rounded_up() -> None:
    rule = RateRule(rate=0.5, burst=3)
    decision = Decision(allowed=False, remaining=0, retry_after=1.2, reset=5.2, rule=rule)

    assert rate_limit_headers(decision) == {
        "RateLimit-Policy": '"default";q=3;w=6',
        "RateLimit": '"default";r=0;t=6',
        "Retry-After": "2",
    }


def test_retry_after_is_at_least_one_second() -> None:
    decision = Decision(allowed=False, remaining=0, retry_after=0.01, reset=0.01, rule=RateRule(rate=100, burst=1))

    assert rate_limit_headers(decision)["Retry-After"] == "1"


def test_window_ignores_float_noise_and_is_never_zero() -> None:
    noisy = RateRule(rate=10 / 3, burst=100)  # 100 / (10 / 3) == 30.000000000000004
    fast = RateRule(rate=1_000, burst=1)
    full = Decision(allowed=True, remaining=0, retry_after=0.0, reset=0.0, rule=noisy)

    assert rate_limit_headers(full)["RateLimit-Policy"] == '"default";q=100;w=30'
    assert rate_limit_headers(Decision(True, 0, 0.0, 0.0, fast))["RateLimit-Policy"] == '"default";q=1;w=1'


def test_a_policy_name_is_quoted_as_a_structured_field_string() -> None:
    decision = Decision(True, 0, 0.0, 0.0, RateRule(rate=1, burst=1, name='say "hi" \\o/'))

    assert rate_limit_headers(decision)["RateLimit"] == '"say \\"hi\\" \\\\o/";r=0;t=0'


def test_raw_headers_are_the_same_headers_as_asgi_byte_pairs() -> None:
    for rule in (RateRule(rate=10, burst=100, name="api"), RateRule(rate=1, burst=1, name='say "hi" \\o/')):
        decision = Decision(allowed=True, remaining=7, retry_after=0.0, reset=2.5, rule=rule)
        expected = [(k.lower().encode(), v.encode()) for k, v in rate_limit_headers(decision).items()]
        assert rate_limit_raw_headers(decision) == expected


def test_raw_headers_refuse_a_refused_decision() -> None:
    decision = Decision(allowed=False, remaining=0, retry_after=1.0, reset=1.0, rule=RateRule(rate=1, burst=1))
    with pytest.raises(ValueError, match="Retry-After"):
        rate_limit_raw_headers(decision)


@pytest.mark.parametrize(
    ("rate", "burst", "name", "fix"),
    [
        (0, 10, "default", "number > 0"),
        (float("nan"), 10, "default", "number > 0"),
        (1, 0, "default", "whole number >= 1"),
        (1, 2.5, "default", "whole number >= 1"),
        (1, 10, "", "printable ASCII"),
        (1, 10, "café", "printable ASCII"),
    ],
)
def test_an_invalid_rule_says_how_to_fix_it(rate: float, burst: int, name: str, fix: str) -> None:
    with pytest.raises(ConfigurationError, match=fix):
        RateRule(rate=rate, burst=burst, name=name)


def test_without_a_redis_url_the_limiter_is_in_memory() -> None:
    assert isinstance(open_rate_limiter(None), MemoryRateLimiter)
