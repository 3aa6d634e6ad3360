"""Who may make a request at all, decided before anything else about it is read: the client's address (through
trusted proxies), and that address's bucket.

The address's bucket is taken before authentication, so a flood of requests with bad tokens is limited as
surely as any other: verifying a token is work, and a client must not get it for free. It keeps a node from
doing more for one address than ``rule`` allows, whoever the requests claim to be; the caller's own bucket
(per subject, or per address when anonymous) is taken after authentication, by the endpoints.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from citadel.errors import RateLimited
from citadel.http.clients import TrustedProxies, client_key
from citadel.http.raw import Reply, failure_reply
from citadel.metrics.instrument import OTHER_ROUTE, method_label
from citadel.security.ratelimit import RateLimiter, RateRule, rate_limit_headers

if TYPE_CHECKING:
    from citadel.metrics.registry import Metrics

__all__ = ["Admission", "caller_address"]


def caller_address(scope: Any) -> str:
    """The rate-limit key of the request's client address (an IPv6 client: its /64)."""
    client = scope.get("client")
    return "address:" + client_key(client[0] if client else None)


class Admission:
    """Resolves a request's client address, then takes a token from the address's bucket."""

    def __init__(
        self,
        *,
        trusted_proxies: Iterable[str] = (),
        limiter: RateLimiter | None = None,
        rule: RateRule | None = None,
        recorded: Metrics | None = None,
    ) -> None:
        """Args:
        trusted_proxies: addresses or networks of reverse proxies whose ``Forwarded`` or ``X-Forwarded-For``
            headers name the client.
        limiter: where the addresses' buckets live (None: no bucket per address).
        rule: the bucket of an address.
        recorded: where refusals are counted (as refusals of the ``address`` scope, and as requests of the
            ``other`` route: they are refused before routing).

        Raises:
            ConfigurationError: a trusted proxy is not an address or network.
        """
        self.proxies = TrustedProxies(trusted_proxies)
        self.limiter = limiter if rule is not None else None
        self.rule = rule
        self.recorded = recorded
        self._refused: dict[str, Any] = {}  # by method label: the 429s' request counter

    async def refusal(self, scope: Any) -> Reply | None:
        """Resolve the client of ``scope`` in place; return the 429 reply when its address has no token left."""
        self.proxies.resolve(scope)
        limiter = self.limiter
        if limiter is None:
            return None
        assert self.rule is not None
        decision = await limiter.check(caller_address(scope), self.rule)
        if decision.allowed:
            return None
        self._count_refusal(scope)
        return failure_reply(RateLimited(rate_limit_headers(decision)), [])

    def _count_refusal(self, scope: Any) -> None:
        recorded = self.recorded
        if recorded is None:
            return
        recorded.rate_limit_refusals.labels("address").inc()
        method = method_label(scope.get("method", ""))
        child = self._refused.get(method)
        if child is None:
            child = self._refused[method] = recorded.http_requests.labels(OTHER_ROUTE, method, "429")
        child.inc()

    async def close(self) -> None:
        """Release the limiter of the addresses' buckets."""
        if self.limiter is not None:
            await self.limiter.close()
