"""``GET /ready``: whether this node can serve (for load balancers and orchestrators), and for an
administrator, what is behind the answer.

Anyone gets the status alone: ``ready`` (200), ``degraded`` (503: a consumer has stopped, or the inbox cannot be
asked how far it is; 200: events are parked as dead letters, which an operator must retry or discard, but the
node serves, so load balancers keep it) or ``unavailable`` (503: the store cannot be reached). The report behind
it (the log's head, each consumer's position, lag and last error, the dead letters, the inbox) describes the
system's inside and costs store reads, so only an authenticated caller holding one of the administrator roles
gets it. It lists the consumers of this service's modules, running here or not: a lag is the count of events
a consumer has yet to process, from its stored checkpoint when it runs in another process.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from starlette.requests import Request
from starlette.types import Receive, Scope

from citadel.app import Application
from citadel.errors import CitadelError
from citadel.http.endpoints import Authenticator
from citadel.http.raw import Reply, failure_reply, json_reply
from citadel.http.routing import Endpoint
from citadel.projection_admin import consumer_status, process_manager_statuses, projection_statuses

__all__ = ["readiness"]

_RETRY = [(b"retry-after", b"1")]
_READY = json_reply({"status": "ready"})
_DEGRADED = json_reply({"status": "degraded"}, 503)
_SERVING_DEGRADED = json_reply({"status": "degraded"})
_UNAVAILABLE = json_reply({"status": "unavailable"}, 503, _RETRY)


def readiness(application: Application, authenticate: Authenticator, admins: Collection[str]) -> Endpoint:
    """Return the ``/ready`` endpoint of ``application``; callers authenticated with a role in ``admins`` get
    the full report (a request ``authenticate`` refuses gets its problem, 401 for a bad token)."""
    roles = frozenset(admins)

    async def ready(scope: Scope, receive: Receive) -> Reply:
        try:
            actor = await authenticate(Request(scope, receive))
        except Exception as exc:
            return failure_reply(exc, [])
        if actor.subject == "anonymous" or actor.roles.isdisjoint(roles):
            return await _status(application)
        return await _report(application)

    return ready


async def _status(application: Application) -> Reply:
    try:
        await application.store.head_position()
    except CitadelError:
        return _UNAVAILABLE
    if not all(c.running for c in application.consumers.values()):
        return _DEGRADED
    inbox = application.topology.inbox
    if inbox is not None:
        try:
            await inbox.pending()
        except Exception:
            return _DEGRADED
    try:
        parked = await application.store.count_dead_letters()
    except CitadelError:
        return _UNAVAILABLE
    return _SERVING_DEGRADED if parked else _READY


async def _report(application: Application) -> Reply:
    consumers = application.consumers
    try:
        local = application.topology.local  # a node never started has neither topology nor store
        store = application.store
        head = await store.head_position()
        # By the store's checkpoints for the consumers that run in another process (``--consumers none``)
        projections = await projection_statuses(application.projections, consumers, store, local=local)
        managers = await process_manager_statuses(application.modules.values(), consumers, store, local=local)
        relay = application.topology.relay
        if relay is not None:
            managers.append(await consumer_status(relay.name, "", "relay", relay, store))
        letters = await store.dead_letters()
    except CitadelError as exc:
        return json_reply({"status": "unavailable", "detail": str(exc)}, 503, _RETRY)
    report: dict[str, Any] = {"status": "ready", "head": head}
    report["projections"] = [
        {
            "name": s.name,
            "module": s.module,
            "mode": s.mode,
            "position": s.position,
            "lag": s.lag,
            "running": s.running,
            "error": s.error,
        }
        for s in projections
    ]
    parked: dict[str, int] = {}
    for letter in letters:
        parked[letter.consumer] = parked.get(letter.consumer, 0) + 1
    report["dead_letters"] = parked  # events a consumer gave up on: each is missing from a read model
    report["process_managers"] = [
        {"name": s.name, "position": s.position, "lag": s.lag, "running": s.running, "error": s.error} for s in managers
    ]
    healthy = all(c.running for c in consumers.values())
    inbox = application.topology.inbox
    if inbox is not None:  # events of other services that this one's consumers have yet to import
        try:
            report["inbox"] = {"name": inbox.durable, "pending": await inbox.pending(), "running": inbox.running}
        except Exception as exc:
            report["inbox"] = {"name": inbox.durable, "pending": None, "running": False, "error": str(exc)}
            healthy = False
    if not healthy or letters:
        report["status"] = "degraded"
    return json_reply(report, 200 if healthy else 503)
