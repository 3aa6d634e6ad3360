"""``GET /metrics``: the Prometheus text exposition, for an administrator or a scraper holding the scrape token.

The token (the ``metrics_token`` setting) is sent as ``Authorization: Bearer <token>``; any other bearer token is
verified as usual, and its actor must hold an administrator role. Anonymous callers get 401, other actors 403.
What the log and the consumers say (lag, dead letters, leases, events processed) is read when scraped
(``citadel.metrics.scrape.ConsumerWatch``).
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Collection
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.types import Receive, Scope

from citadel.errors import AccessDenied, CitadelError, Unauthenticated
from citadel.http.raw import failure_reply
from citadel.metrics.registry import exposition, multiprocess_dir

if TYPE_CHECKING:
    from citadel.http.endpoints import Authenticator
    from citadel.http.types import Endpoint, Reply
    from citadel.metrics.scrape import ConsumerWatch

__all__ = ["metrics_endpoint"]

_CONTENT_TYPE = CONTENT_TYPE_LATEST.encode()


def metrics_endpoint(
    watch: ConsumerWatch, authenticate: Authenticator, admins: Collection[str], token: str | None
) -> Endpoint:
    """Return the ``/metrics`` endpoint: the scrape token or an administrator's credentials, then the exposition
    (503 when the store cannot be read)."""
    roles = frozenset(admins)
    expected = b"Bearer " + token.encode() if token else None

    async def endpoint(scope: Scope, receive: Receive) -> Reply:
        if expected is None or not _presents(scope, expected):
            try:
                actor = await authenticate(Request(scope, receive))
            except Exception as exc:
                return failure_reply(exc, [])
            if actor.subject == "anonymous":
                return failure_reply(Unauthenticated("send the scrape token or an administrator's token"), [])
            if actor.roles.isdisjoint(roles):
                return failure_reply(AccessDenied("metrics are for administrators and the scraper"), [])
        try:
            await watch.refresh()
        except CitadelError as exc:
            return failure_reply(exc, [])
        recorded = watch.recorded
        if multiprocess_dir() is None:
            return 200, exposition(recorded), _CONTENT_TYPE, []
        return 200, await asyncio.to_thread(exposition, recorded), _CONTENT_TYPE, []  # reads every worker's file

    return endpoint


def _presents(scope: Scope, expected: bytes) -> bool:
    """Whether the request's ``Authorization`` header is the scrape token (compared in constant time)."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            return hmac.compare_digest(value, expected)
    return False
