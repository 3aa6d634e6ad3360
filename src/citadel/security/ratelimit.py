"""Token-bucket rate limiting (the rules and the port: ``buckets``), in one process or shared by every node
through Redis.

Refill is lazy: a bucket stores its tokens and when it last changed, and a check first adds ``elapsed * rate``
(capped at ``burst``); so idle buckets cost nothing, and a bucket that would be full again can be forgotten.

``MemoryRateLimiter`` keeps buckets in this process; ``SharedMemoryRateLimiter`` (``shared_ratelimit``) in memory
shared by the worker processes of one node. ``RedisRateLimiter`` keeps them in Redis, one bucket per
key for every node: one Lua script per check refills, takes and writes atomically, in one round trip. The
script reads the clock with Redis's ``TIME``, not the caller's: nodes' clocks disagree, and with their own
timestamps a node running ahead would refill every bucket early while one running behind refilled nothing.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from citadel.errors import ConfigurationError
from citadel.extras import require
from citadel.security.buckets import Decision, RateLimiter, RateRule, check_cost, take
from citadel.security.shared_ratelimit import SharedBuckets, SharedMemoryRateLimiter

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = [
    "Decision",
    "MemoryRateLimiter",
    "RateLimiter",
    "RateRule",
    "RedisRateLimiter",
    "open_rate_limiter",
    "rate_limit_headers",
    "rate_limit_raw_headers",
]

log = logging.getLogger("citadel.ratelimit")


def rate_limit_headers(decision: Decision) -> dict[str, str]:
    """Return the ``RateLimit-Policy`` and ``RateLimit`` headers, and ``Retry-After`` when refused."""
    policy, name, _, _ = _rule_fields(decision.rule)
    remaining = f"{name};r={decision.remaining};t={_whole_seconds(decision.reset)}"
    headers = {"RateLimit-Policy": policy, "RateLimit": remaining}
    if not decision.allowed:
        headers["Retry-After"] = str(max(1, _whole_seconds(decision.retry_after)))
    return headers


def rate_limit_raw_headers(decision: Decision) -> list[tuple[bytes, bytes]]:
    """Return the headers of an allowed decision as ASGI byte pairs (``rate_limit_headers``, lowercased).

    Raises:
        ValueError: the decision refuses the request (use ``rate_limit_headers``; it adds ``Retry-After``).
    """
    if not decision.allowed:
        raise ValueError("a refused decision needs Retry-After: use rate_limit_headers")
    _, _, policy, name = _rule_fields(decision.rule)
    return [
        (b"ratelimit-policy", policy),
        (b"ratelimit", b"%s;r=%d;t=%d" % (name, decision.remaining, _whole_seconds(decision.reset))),
    ]


_RULE_FIELDS: dict[RateRule, tuple[str, str, bytes, bytes]] = {}


def _rule_fields(rule: RateRule) -> tuple[str, str, bytes, bytes]:
    # draft-ietf-httpapi-ratelimit-headers-11 (May 2026), sections 3 and 4: each field is a Structured Field
    # List whose Item is the policy name as an sf-string, with q (quota) and w (window, whole seconds > 0)
    # in RateLimit-Policy and r (available quota) and t (effective window, whole seconds) in RateLimit.
    # Returns the RateLimit-Policy value and the quoted name, as text and bytes: they depend on the rule only.
    found = _RULE_FIELDS.get(rule)
    if found is None:
        name = '"' + rule.name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        policy = f"{name};q={rule.burst};w={max(1, _whole_seconds(rule.burst / rule.rate))}"
        found = policy, name, policy.encode("ascii"), name.encode("ascii")
        if len(_RULE_FIELDS) < 1000:  # rules are few and long-lived; a program making them anew is not cached
            _RULE_FIELDS[rule] = found
    return found


def _whole_seconds(seconds: float) -> int:
    # Round up, ignoring float noise: a wait of 30.000000000000004 is 30, not 31.
    return max(0, math.ceil(seconds - 1e-6))


class MemoryRateLimiter:
    """Buckets in this process: exact and fast, but each process (each node) counts on its own.

    At most ``max_keys`` buckets are kept. Buckets are ordered by last use; the oldest ones are dropped once
    they would be full anyway (forgetting them changes nothing), and when more than ``max_keys`` are still
    refilling, the least recently used one is forgotten (its key starts again with a full bucket).
    """

    def __init__(self, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        if max_keys < 1:
            raise ConfigurationError(f"max_keys is {max_keys}; keep at least 1 bucket (each takes ~300 bytes)")
        self.max_keys = max_keys
        self._clock = clock
        # (rule name, key) -> (tokens, updated at, full at); ordered from least to most recently used
        self._buckets: OrderedDict[tuple[str, str], tuple[float, float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    async def check(self, key: str, rule: RateRule, cost: int = 1) -> Decision:
        """Take ``cost`` tokens from this process's bucket for ``key`` if it holds them (see ``RateLimiter``)."""
        burst = rule.burst
        if not 1 <= cost <= burst:
            check_cost(rule, cost)
        now = self._clock()
        buckets = self._buckets
        bucket_key = (rule.name, key)
        state = buckets.get(bucket_key)
        if state is None:
            self._make_room(now)
            tokens = float(burst)
        else:
            buckets.move_to_end(bucket_key)
            elapsed = now - state[1]
            tokens = state[0] + elapsed * rule.rate if elapsed > 0.0 else state[0]
            if tokens > burst:
                tokens = float(burst)
        decision, tokens = take(rule, tokens, cost)
        buckets[bucket_key] = (tokens, now, now + decision.reset)
        return decision

    def _make_room(self, now: float) -> None:
        # Called before adding a bucket: at most a few evictions per check, so each check stays O(1).
        buckets = self._buckets
        for _ in range(2):
            if not buckets:
                return
            oldest = next(iter(buckets))
            if buckets[oldest][2] > now and len(buckets) < self.max_keys:
                return
            del buckets[oldest]

    async def close(self) -> None:
        """Forget every bucket."""
        self._buckets.clear()


# KEYS[1]: the bucket, a hash {tokens, at (microseconds)}; ARGV: rate (tokens per second), burst, cost.
# Returns {allowed (0/1), remaining, retry_after, reset}, seconds as strings (Redis truncates Lua numbers).
_BUCKET_SCRIPT = """
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tokens = burst
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
if state[1] and state[2] then
  local elapsed = math.max(0, now - tonumber(state[2])) / 1000000
  tokens = math.min(burst, tonumber(state[1]) + elapsed * rate)
end
local allowed, retry_after = 0, 0
if tokens + 1e-9 >= cost then
  allowed = 1
  tokens = math.max(0, tokens - cost)
else
  retry_after = (cost - tokens) / rate
end
local reset = (burst - tokens) / rate
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil(reset * 1000)))
return {allowed, math.floor(tokens + 1e-9), tostring(retry_after), tostring(reset)}
"""


class RedisRateLimiter:
    """Buckets in Redis, shared by every node; one atomic script (one round trip) per check.

    Needs Redis 5 or later. A check waits at most ``timeout`` seconds; when Redis fails or is too slow, it logs
    a warning (at most one each 10 s) and allows the request if ``fail_open``, else refuses it (retry after 1 s).

    Raises:
        ConfigurationError: the URL is not a ``redis://``, ``rediss://`` or ``unix://`` URL, ``timeout`` is not
            positive, or the ``redis`` extra is not installed.
    """

    def __init__(self, url: str, *, fail_open: bool = True, timeout: float = 0.25, prefix: str = "citadel:rl:") -> None:
        require("redis", "redis", "Redis rate limiting")
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import RedisError

        if not timeout > 0:
            raise ConfigurationError(f"timeout is {timeout!r}; give the seconds a check may wait for Redis, > 0")
        try:
            # One immediate retry: a pooled connection broken by a Redis restart fails once, then reconnects.
            self._client: Redis = Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 1)
            )
        except ValueError as exc:
            raise ConfigurationError(f"invalid Redis URL for the rate limiter: {exc}") from exc
        self._script: AsyncScript = self._client.register_script(_BUCKET_SCRIPT)
        self._failures = (RedisError, OSError, TimeoutError)
        self.fail_open = fail_open
        self.timeout = timeout
        self.prefix = prefix
        self._warned_at, self._unreported = -math.inf, 0

    async def check(self, key: str, rule: RateRule, cost: int = 1) -> Decision:
        """Take ``cost`` tokens from the shared bucket for ``key`` (see ``RateLimiter``).

        When Redis fails or is too slow, the decision allows the request if ``fail_open``, else refuses it.
        """
        check_cost(rule, cost)
        try:
            async with asyncio.timeout(self.timeout):
                reply = await self._script(keys=[f"{self.prefix}{rule.name}:{key}"], args=[rule.rate, rule.burst, cost])
        except self._failures as exc:
            return self._unavailable(rule, exc)
        allowed, remaining, retry_after, reset = reply
        return Decision(bool(allowed), int(remaining), float(retry_after), float(reset), rule)

    def _unavailable(self, rule: RateRule, exc: BaseException) -> Decision:
        now = time.monotonic()
        if now - self._warned_at >= 10.0:
            outcome = "allowing requests (fail_open)" if self.fail_open else "refusing requests (fail_open=False)"
            reason = f"{type(exc).__name__}: {str(exc) or 'timed out'}"
            log.warning(
                "rate limiter cannot reach Redis, %s (%s; %d failures unlogged)", outcome, reason, self._unreported
            )
            self._warned_at, self._unreported = now, 0
        else:
            self._unreported += 1
        wait = 0.0 if self.fail_open else 1.0  # the bucket is unknown: report nothing left, and no wait if open
        return Decision(allowed=self.fail_open, remaining=0, retry_after=wait, reset=wait, rule=rule)

    async def close(self) -> None:
        """Close the connections to Redis."""
        await self._client.aclose()


def open_rate_limiter(
    redis_url: str | None, *, fail_open: bool = True, buckets: SharedBuckets | None = None
) -> RateLimiter:
    """Return a limiter shared through Redis when ``redis_url`` is given (not None or empty), else one on
    ``buckets`` (shared by the workers of this node) when given, else one in this process's memory.

    Raises:
        ConfigurationError: ``redis_url`` is not a Redis URL.
    """
    if redis_url:
        return RedisRateLimiter(redis_url, fail_open=fail_open)
    if buckets is not None:
        return SharedMemoryRateLimiter(buckets)
    return MemoryRateLimiter()
