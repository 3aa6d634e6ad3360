"""Security: identity (bearer tokens), role-based access control at the bus, rate limits."""

from __future__ import annotations

from citadel.security.identity import TokenVerifier, issue_token, load_or_create_secret
from citadel.security.ratelimit import (
    Decision,
    MemoryRateLimiter,
    RateLimiter,
    RateRule,
    RedisRateLimiter,
    open_rate_limiter,
    rate_limit_headers,
)
from citadel.security.rbac import Grant, Owner, Policy, authorization
from citadel.security.shared_ratelimit import SharedBuckets, SharedMemoryRateLimiter

__all__ = [
    "Decision",
    "Grant",
    "MemoryRateLimiter",
    "Owner",
    "Policy",
    "RateLimiter",
    "RateRule",
    "RedisRateLimiter",
    "SharedBuckets",
    "SharedMemoryRateLimiter",
    "TokenVerifier",
    "authorization",
    "issue_token",
    "load_or_create_secret",
    "open_rate_limiter",
    "rate_limit_headers",
]
