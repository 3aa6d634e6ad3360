"""Token buckets: the rule, the decision, one refill-and-take step, and ``RateLimiter``, the port every backend
implements (``ratelimit``: in this process and in Redis; ``shared_ratelimit``: shared by a node's workers).

Each key (per rule name) has a bucket that holds up to ``burst`` tokens and refills at ``rate`` tokens per
second. A request costing ``cost`` tokens is allowed when the bucket holds that many, and takes them: a
client may send ``burst`` requests at once, then ``rate`` per second.
"""

from __future__ import annotations

import math
from typing import Protocol

import msgspec

from citadel.errors import ConfigurationError

__all__ = ["Decision", "RateLimiter", "RateRule", "check_cost", "take"]

# Absorbs float error, so that waiting exactly ``retry_after`` is always enough (0.1 * 3 != 0.3).
_EPSILON = 1e-9


class RateRule(msgspec.Struct, frozen=True, gc=False):
    """Allow bursts of ``burst`` requests, refilled at ``rate`` per second; ``name`` labels it in headers.

    Raises:
        ConfigurationError: the rate is not a positive number, the burst not a whole number >= 1, or the
            name not printable ASCII.
    """

    rate: float
    burst: int
    name: str = "default"

    def __post_init__(self) -> None:
        rate_ok = isinstance(self.rate, int | float) and not isinstance(self.rate, bool)
        if not rate_ok or not math.isfinite(self.rate) or self.rate <= 0:
            raise ConfigurationError(
                f"rate limit rule {self.name!r} has rate {self.rate!r}; give the tokens per second as a number > 0 "
                "(0.5 means one request every two seconds)"
            )
        if not isinstance(self.burst, int) or isinstance(self.burst, bool) or self.burst < 1:
            raise ConfigurationError(
                f"rate limit rule {self.name!r} has burst {self.burst!r}; give the bucket size as a whole number "
                ">= 1 (the most requests allowed at once)"
            )
        if not self.name or not all(" " <= c <= "~" for c in self.name):
            raise ConfigurationError(
                f"rate limit rule name {self.name!r} must be non-empty printable ASCII (it is sent in headers)"
            )


class Decision(msgspec.Struct, frozen=True, gc=False):
    """The outcome of one check: whether to serve the request, and what to tell the client."""

    allowed: bool
    remaining: int
    """Whole tokens left after this request."""
    retry_after: float
    """Seconds until the same request would be allowed; 0 when allowed."""
    reset: float
    """Seconds until the bucket is full again."""
    rule: RateRule


class RateLimiter(Protocol):
    """Where buckets live: in this process (``MemoryRateLimiter``), shared by the workers of a node
    (``SharedMemoryRateLimiter``) or by every node (``RedisRateLimiter``)."""

    async def check(self, key: str, rule: RateRule, cost: int = 1) -> Decision:
        """Take ``cost`` tokens from the bucket of ``key`` under ``rule`` if it holds them; return the decision.

        Raises:
            ConfigurationError: ``cost`` is below 1 or above the rule's burst (it could never be allowed).
        """

    async def close(self) -> None:
        """Release the limiter's connections and memory."""


def check_cost(rule: RateRule, cost: int) -> None:
    """Refuse a cost that no bucket under ``rule`` could ever allow.

    Raises:
        ConfigurationError: ``cost`` is below 1 or above the rule's burst.
    """
    if not 1 <= cost <= rule.burst:
        raise ConfigurationError(
            f"a request costing {cost} tokens can never pass rule {rule.name!r} (burst {rule.burst}); "
            "give each request a cost between 1 and the rule's burst, or raise the burst"
        )


def take(rule: RateRule, tokens: float, cost: int) -> tuple[Decision, float]:
    """Decide on a refilled bucket holding ``tokens``; return the decision and the tokens left."""
    allowed = tokens + _EPSILON >= cost
    retry_after = 0.0
    if allowed:
        tokens = max(0.0, tokens - cost)
    else:
        retry_after = (cost - tokens) / rule.rate
    reset = (rule.burst - tokens) / rule.rate
    return Decision(allowed, math.floor(tokens + _EPSILON), retry_after, reset, rule), tokens
