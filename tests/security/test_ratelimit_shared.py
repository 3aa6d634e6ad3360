"""Token buckets in shared memory: the decisions of the in-process limiter, held across forked workers."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections.abc import Callable

import pytest
from clocks import FakeClock
from hypothesis import given, settings
from hypothesis import strategies as st

from citadel.errors import ConfigurationError
from citadel.security import shared_ratelimit
from citadel.security.ratelimit import MemoryRateLimiter, RateLimiter, RateRule, open_rate_limiter
from citadel.security.shared_ratelimit import WAYS, SharedBuckets, SharedMemoryRateLimiter

FORK = multiprocessing.get_context("fork")
# Refills a millionth of a token a second: over a test, no bucket gains a single token back.
NO_REFILL = 1e-6


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_000.0)


@pytest.fixture
def limiter(clock: FakeClock) -> SharedMemoryRateLimiter:
    return SharedMemoryRateLimiter(SharedBuckets(1024), clock=clock)


def one_set(clock: FakeClock) -> SharedMemoryRateLimiter:
    """A limiter on a table of one set: every key competes for the same 8 slots."""
    return SharedMemoryRateLimiter(SharedBuckets(WAYS, locks=1), clock=clock)


# one process: the semantics of MemoryRateLimiter


async def test_a_fresh_bucket_allows_the_burst_then_refuses_until_a_token_refills(
    limiter: SharedMemoryRateLimiter, clock: FakeClock
) -> None:
    rule = RateRule(rate=2, burst=3)

    decisions = [await limiter.check("alice", rule) for _ in range(4)]
    clock.advance(decisions[-1].retry_after)

    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[-1].retry_after == pytest.approx(0.5)
    assert (await limiter.check("alice", rule)).allowed


async def test_each_key_and_each_rule_name_has_its_own_bucket(limiter: SharedMemoryRateLimiter) -> None:
    rule = RateRule(rate=1, burst=1, name="login")
    await limiter.check("alice", rule)

    assert not (await limiter.check("alice", rule)).allowed
    assert (await limiter.check("bob", rule)).allowed
    assert (await limiter.check("alice", RateRule(rate=1, burst=1, name="search"))).allowed


@pytest.mark.parametrize("cost", [0, -1, 4])
async def test_a_cost_outside_one_to_the_burst_is_a_configuration_error(
    limiter: SharedMemoryRateLimiter, cost: int
) -> None:
    with pytest.raises(ConfigurationError, match="raise the burst"):
        await limiter.check("upload", RateRule(rate=1, burst=3), cost=cost)


@settings(max_examples=200, deadline=None, database=None)
@given(
    steps=st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=5),
            st.integers(min_value=0, max_value=WAYS - 1),
            st.integers(min_value=1, max_value=5),
        ),
        max_size=60,
    ),
    rate=st.floats(min_value=0.01, max_value=100),
)
def test_every_decision_is_the_one_the_in_process_limiter_makes(
    steps: list[tuple[float, int, int]], rate: float
) -> None:
    # At most 8 distinct buckets, so that even if they all fell in one set none would be evicted.
    clock = FakeClock()
    shared = SharedMemoryRateLimiter(SharedBuckets(64), clock=clock)
    memory = MemoryRateLimiter(clock=clock)
    rules = [RateRule(rate=rate, burst=5, name="a"), RateRule(rate=rate * 3, burst=2, name="b")]

    async def compare() -> None:
        for advance, bucket, cost in steps:
            clock.advance(advance)
            rule = rules[bucket % 2]
            key, cost = f"client-{bucket // 2}", min(cost, rule.burst)
            assert await shared.check(key, rule, cost) == await memory.check(key, rule, cost)

    asyncio.run(compare())


async def test_closing_the_limiter_leaves_the_table_to_the_other_workers(clock: FakeClock) -> None:
    buckets = SharedBuckets(64)
    rule = RateRule(rate=1, burst=1)
    await SharedMemoryRateLimiter(buckets, clock=clock).check("alice", rule)

    await SharedMemoryRateLimiter(buckets, clock=clock).close()

    assert not (await SharedMemoryRateLimiter(buckets, clock=clock).check("alice", rule)).allowed


def test_open_rate_limiter_shares_the_buckets_it_is_given() -> None:
    buckets = SharedBuckets(64)

    limiter = open_rate_limiter(None, buckets=buckets)

    assert isinstance(limiter, SharedMemoryRateLimiter)
    assert limiter.buckets is buckets


@pytest.mark.parametrize(
    ("slots", "locks", "fix"),
    [(0, 1, "multiple of 8"), (12, 1, "multiple of 8"), (1 << 30, 1, "multiple of 8"), (64, 0, "between 1")],
)
def test_a_bad_table_size_or_lock_count_says_how_to_fix_it(slots: int, locks: int, fix: str) -> None:
    with pytest.raises(ConfigurationError, match=fix):
        SharedBuckets(slots, locks=locks)


# forked workers sharing one table


def allowed_across_processes(make: Callable[[], RateLimiter], keys: list[str], rule: RateRule, tries: int) -> int:
    """Fork two processes that check every key ``tries`` times each, all at once; return the total allowed."""
    limiter = make()  # before the fork, as ``citadel serve --workers`` does
    start = FORK.Barrier(2)
    results = FORK.SimpleQueue()

    def hammer() -> None:
        async def run() -> int:
            allowed = 0
            for _ in range(tries):
                for key in keys:
                    allowed += (await limiter.check(key, rule)).allowed
            return allowed

        start.wait(timeout=10)
        results.put(asyncio.run(run()))

    workers = [FORK.Process(target=hammer) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert [worker.exitcode for worker in workers] == [0, 0]
    return int(results.get()) + int(results.get())


def test_two_forked_workers_let_exactly_one_burst_through_in_total() -> None:
    rule = RateRule(rate=NO_REFILL, burst=5_000)

    assert allowed_across_processes(lambda: SharedMemoryRateLimiter(SharedBuckets(64)), ["k"], rule, 5_000) == 5_000


def test_the_same_harness_lets_two_bursts_through_in_process_memory() -> None:
    # The harness detects memory that is not shared: each forked copy of an in-process limiter counts alone.
    rule = RateRule(rate=NO_REFILL, burst=500)

    assert allowed_across_processes(MemoryRateLimiter, ["k"], rule, 500) == 1000


def test_workers_hammering_many_keys_at_once_never_pass_more_than_each_burst() -> None:
    rule = RateRule(rate=NO_REFILL, burst=20)
    keys = [f"client-{i}" for i in range(200)]

    total = allowed_across_processes(lambda: SharedMemoryRateLimiter(SharedBuckets(4096, locks=4)), keys, rule, 20)

    assert total == 20 * len(keys)


def test_a_lock_left_held_by_a_dead_worker_is_released(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(shared_ratelimit, "_STUCK_AFTER", 0.05)
    buckets = SharedBuckets(WAYS, locks=1)
    pid = os.fork()
    if pid == 0:  # the worker takes the lock and is killed before releasing it
        buckets._locks[0].acquire()
        os._exit(0)
    os.waitpid(pid, 0)

    with caplog.at_level(logging.WARNING, logger="citadel.ratelimit"):
        decision = buckets.take("alice", RateRule(rate=1, burst=1), 1)

    assert decision.allowed
    assert "died holding it" in caplog.text
    assert buckets.take("alice", RateRule(rate=1, burst=1), 1).allowed is False  # and the lock works again


# a full table


async def test_a_new_key_in_a_full_set_evicts_the_least_recently_updated_bucket(clock: FakeClock) -> None:
    limiter = one_set(clock)
    rule = RateRule(rate=NO_REFILL, burst=1)
    for i in range(WAYS):
        await limiter.check(f"k{i}", rule)
        clock.advance(1)
    await limiter.check("k0", rule)  # k1 is now the least recently updated

    assert (await limiter.check("new", rule)).allowed
    assert limiter.buckets.evictions == 1
    assert (await limiter.check("k1", rule)).allowed  # forgotten: a full bucket again (evicting k2 in turn)
    assert not (await limiter.check("k0", rule)).allowed
    assert not (await limiter.check("new", rule)).allowed


async def test_a_bucket_full_again_is_replaced_before_any_still_refilling(clock: FakeClock) -> None:
    limiter = one_set(clock)
    slow, fast = RateRule(rate=NO_REFILL, burst=1, name="slow"), RateRule(rate=1, burst=1, name="fast")
    for i in range(WAYS - 1):
        await limiter.check(f"k{i}", slow)
    await limiter.check("refilled", fast)
    clock.advance(2)  # "refilled" is full again though the most recently updated; k0 is the least

    await limiter.check("new", slow)

    assert limiter.buckets.evictions == 0
    assert not (await limiter.check("k0", slow)).allowed


async def test_buckets_never_outnumber_the_slots(clock: FakeClock) -> None:
    limiter = SharedMemoryRateLimiter(SharedBuckets(64), clock=clock)
    rule = RateRule(rate=NO_REFILL, burst=5)

    for i in range(1_000):
        await limiter.check(f"client-{i}", rule)

    assert len(limiter.buckets) == 64
    assert limiter.buckets.evictions == 1_000 - 64


# hostile keys


async def test_a_megabyte_key_is_hashed_into_one_slot_like_any_other(limiter: SharedMemoryRateLimiter) -> None:
    rule = RateRule(rate=NO_REFILL, burst=1)
    huge = "x" * 1_000_000

    assert (await limiter.check(huge, rule)).allowed
    assert not (await limiter.check(huge, rule)).allowed
    assert (await limiter.check(huge + "y", rule)).allowed
    assert len(limiter.buckets) == 2


async def test_keys_that_are_not_valid_text_still_have_buckets(limiter: SharedMemoryRateLimiter) -> None:
    rule = RateRule(rate=NO_REFILL, burst=1)
    for key in ("\ud800", "\x00", "é", ""):
        assert (await limiter.check(key, rule)).allowed
        assert not (await limiter.check(key, rule)).allowed


async def test_a_flood_of_distinct_keys_keeps_memory_fixed_and_the_next_client_limited(clock: FakeClock) -> None:
    buckets = SharedBuckets(1024)
    limiter = SharedMemoryRateLimiter(buckets, clock=clock)
    rule = RateRule(rate=NO_REFILL, burst=2)
    size = len(buckets._memory)

    for i in range(50_000):
        await limiter.check(f"attacker-{i}", rule)

    assert (len(buckets._memory), len(buckets)) == (size, 1024)
    decisions = [(await limiter.check("alice", rule)).allowed for _ in range(3)]
    assert decisions == [True, True, False]
