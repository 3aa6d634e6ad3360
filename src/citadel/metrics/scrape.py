"""``GET /metrics``: the Prometheus text exposition, for an administrator or a scraper holding the scrape token.

The token (the ``metrics_token`` setting) is sent as ``Authorization: Bearer <token>``; any other bearer token is
verified as usual, and its actor must hold an administrator role. Anonymous callers get 401, other actors 403.
What the log and the consumers say (lag, dead letters, leases, events processed) is read when scraped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import weakref
from collections.abc import AsyncIterator, Collection
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.types import Receive, Scope

from citadel.errors import AccessDenied, CitadelError, Unauthenticated
from citadel.metrics.registry import Metrics, exposition, multiprocess_dir

if TYPE_CHECKING:
    from citadel.app import Application
    from citadel.http.endpoints import Authenticator
    from citadel.http.raw import Reply
    from citadel.http.routing import Endpoint

__all__ = ["ConsumerWatch", "metrics_endpoint"]

_CONTENT_TYPE = CONTENT_TYPE_LATEST.encode()


class ConsumerWatch:
    """Copies what an application's consumers hold in memory (events processed, leases held) into the metrics."""

    def __init__(self, application: Application, recorded: Metrics) -> None:
        self.application = application
        self.recorded = recorded
        self._seen: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()

    def sync(self) -> None:
        """Add each consumer's events processed since the last sync, and set its lease gauge."""
        recorded = self.recorded
        for name, consumer in self.application.consumers.items():
            processed = int(getattr(consumer, "processed", 0))
            before = self._seen.get(consumer, 0)
            if processed > before:
                recorded.consumer_processed.labels(name).inc(processed - before)
            self._seen[consumer] = processed
            recorded.consumer_lease.labels(name).set(1 if consumer.active else 0)

    async def refresh(self) -> None:
        """``sync``, then read each consumer's lag and the dead letters from the store.

        Raises:
            CitadelError: the store cannot be read.
        """
        self.sync()
        recorded = self.recorded
        for name, consumer in self.application.consumers.items():
            recorded.consumer_lag.labels(name).set(await consumer.lag())
        recorded.dead_letters.set(await self.application.store.count_dead_letters())

    @contextlib.asynccontextmanager
    async def syncing(self, interval: float, *, read_store: bool = False) -> AsyncIterator[None]:
        """Sync every ``interval`` seconds while inside (``read_store``: ``refresh``, for a process that answers
        no scrape), in multiprocess mode, where another process answers the scrape; a single process syncs when
        scraped."""
        if multiprocess_dir() is None:
            yield
            return

        async def loop() -> None:
            while True:
                if read_store:
                    with contextlib.suppress(CitadelError):  # the next round, or the scrape, tells
                        await self.refresh()
                else:
                    self.sync()
                await asyncio.sleep(interval)

        task = asyncio.create_task(loop())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def metrics_endpoint(
    watch: ConsumerWatch, authenticate: Authenticator, admins: Collection[str], token: str | None
) -> Endpoint:
    """Return the ``/metrics`` endpoint: the scrape token or an administrator's credentials, then the exposition
    (503 when the store cannot be read)."""
    from citadel.http.raw import failure_reply  # here: the HTTP package imports this module

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
