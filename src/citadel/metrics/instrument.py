"""Recording on the hot paths: each records with a child of a metric bound once per label value and kept
(``labels`` is never called per request), then one ``inc`` or ``observe``."""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import Histogram
from starlette.types import Receive, Scope

from citadel.bus import CallNext, Middleware
from citadel.context import DispatchContext
from citadel.messages import Message
from citadel.metrics.registry import Metrics

if TYPE_CHECKING:
    from citadel.app import Application
    from citadel.http.types import Endpoint, Reply

__all__ = ["OTHER_ROUTE", "count_requests", "instrument", "method_label", "status_counter"]

OTHER_ROUTE = "other"
"""The route label of a request that matched no route (or was refused before routing)."""

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_instrumented: weakref.WeakSet[Application] = weakref.WeakSet()


def method_label(method: str) -> str:
    """``method`` as a label: a standard method, else ``other`` (a client may send any token)."""
    return method if method in _METHODS else "other"


def status_counter(recorded: Metrics, route: str, method: str) -> Callable[[int], None]:
    """Return a function counting one request of ``route`` and ``method`` by its status."""
    children: dict[int, Any] = {}
    requests = recorded.http_requests

    def count(status: int) -> None:
        child = children.get(status)
        if child is None:
            child = children[status] = requests.labels(route, method, str(status))
        child.inc()

    return count


def count_requests(endpoint: Endpoint, recorded: Metrics, route: str, method: str) -> Endpoint:
    """Return ``endpoint``, counting its replies by status (a failure as 500, as the server answers it)."""
    count = status_counter(recorded, route, method)

    async def counted(scope: Scope, receive: Receive) -> Reply:
        try:
            reply = await endpoint(scope, receive)
        except Exception:
            count(500)
            raise
        count(reply[0])
        return reply

    return counted


def instrument(application: Application, recorded: Metrics) -> None:
    """Time every command and query ``application``'s buses dispatch (HTTP or in process), by type; once per
    application."""
    if application in _instrumented:
        return
    _instrumented.add(application)
    application.commands.add_middleware(_timing(application, recorded.command_duration))
    application.queries.add_middleware(_timing(application, recorded.query_duration))


def _timing(application: Application, histogram: Histogram) -> Middleware:
    """Bus middleware observing each dispatch's seconds in ``histogram``, labelled by the message's stable name
    (a type without a module is not labelled: it fails as unknown anyway)."""
    children: dict[type, Any] = {}
    clock = time.perf_counter

    async def timed(message: Message, context: DispatchContext, call_next: CallNext) -> Any:
        started = clock()
        try:
            return await call_next(message, context)
        finally:
            kind = type(message)
            child = children.get(kind)
            if child is None:
                child = _child(application, histogram, kind)
                if child is not None:
                    children[kind] = child
            if child is not None:
                child.observe(clock() - started)

    return timed


def _child(application: Application, histogram: Histogram, kind: type) -> Any:
    try:
        module = application.owner_of(kind)
    except Exception:
        return None
    return histogram.labels(module.message_name(kind))
