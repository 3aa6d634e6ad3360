"""The spans Citadel records, named and described after OpenTelemetry's semantic conventions.

HTTP: a SERVER span ``{method} {route}`` with ``http.request.method``, ``url.path``, ``url.scheme``,
``http.route`` and ``http.response.status_code`` (an error status only for 5xx: a 4xx is the client's).
Messaging: a PRODUCER span ``send {destination}`` where a message leaves for NATS, and a CONSUMER span
``process {destination}`` where a NATS message or a logged event is handled, with ``messaging.system``,
``messaging.operation.type`` and ``messaging.destination.name``. Inside a process: ``dispatch`` for the bus,
``handle`` for a handler, ``commit`` for a group-commit batch (linked to every command it holds) and
``project`` for an inline projection.

Every helper returns a context manager; while ``enabled()`` is False it is a shared do-nothing one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from citadel.tracing.provider import enabled, tracer

__all__ = [
    "batch_span",
    "command_span",
    "current_link",
    "handler_span",
    "http_server_span",
    "process_span",
    "projection_span",
    "record_status",
    "send_span",
]

_NOTHING: AbstractContextManager[None] = contextlib.nullcontext()


def _span(
    name: str,
    kind: SpanKind,
    attributes: dict[str, Any],
    *,
    context: Context | None = None,
    links: Sequence[Link] = (),
) -> AbstractContextManager[Span | None]:
    if not enabled():
        return _NOTHING
    return tracer().start_as_current_span(
        name, context=context, kind=kind, attributes=attributes, links=links, record_exception=True
    )


def http_server_span(
    method: str, route: str | None, *, path: str, scheme: str, parent: Context | None = None
) -> AbstractContextManager[Span | None]:
    """A request as the server saw it; ``route`` is the matched template (None: no route matched, and the
    span is named by the method alone, as the conventions ask, to keep names few)."""
    attributes: dict[str, Any] = {"http.request.method": method, "url.path": path, "url.scheme": scheme}
    if route is not None:
        attributes["http.route"] = route
    name = f"{method} {route}" if route is not None else method
    return _span(name, SpanKind.SERVER, attributes, context=parent)


def record_status(span: Span | None, status: int) -> None:
    """Note the response ``status`` on a server span; 5xx marks it failed, 4xx does not (the client's error)."""
    if span is None:
        return
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))


def command_span(kind: str, message_type: str) -> AbstractContextManager[Span | None]:
    """A command or query (``kind``) through the bus: authorization, idempotency, the handler, the commit."""
    return _span(
        f"dispatch {message_type}",
        SpanKind.INTERNAL,
        {"citadel.message.kind": kind, "citadel.message.type": message_type},
    )


def handler_span(message_type: str, module: str) -> AbstractContextManager[Span | None]:
    """The module's handler deciding on a message."""
    return _span(
        f"handle {message_type}", SpanKind.INTERNAL, {"citadel.message.type": message_type, "citadel.module": module}
    )


def batch_span(size: int, links: Sequence[Link], backend: str) -> AbstractContextManager[Span | None]:
    """One group-commit batch: a root of its own (it serves many requests), linked to each command in it."""
    attributes = {"citadel.batch.size": size, "db.system.name": backend, "db.operation.name": "commit"}
    return _span("commit", SpanKind.INTERNAL, attributes, context=Context(), links=links)


def projection_span(projection: str, events: int) -> AbstractContextManager[Span | None]:
    """An inline projection applying a batch's events, inside the batch's transaction."""
    return _span(
        f"project {projection}", SpanKind.INTERNAL, {"citadel.projection": projection, "citadel.batch.size": events}
    )


def send_span(destination: str, *, system: str = "nats") -> AbstractContextManager[Span | None]:
    """A message leaving for the broker (an event published, a command or query sent to another service)."""
    attributes = {
        "messaging.system": system,
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": destination,
    }
    return _span(f"send {destination}", SpanKind.PRODUCER, attributes)


def process_span(
    destination: str,
    *,
    consumer: str,
    system: str = "nats",
    parent: Context | None = None,
    links: Sequence[Link] = (),
) -> AbstractContextManager[Span | None]:
    """A message or logged event handled by ``consumer``: a child of the sender's span when the sender waits
    for it (``parent``, a request over NATS), linked to it when it runs later on its own (``links``)."""
    attributes = {
        "messaging.system": system,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": destination,
        "messaging.consumer.group.name": consumer,
    }
    return _span(f"process {destination}", SpanKind.CONSUMER, attributes, context=parent, links=links)


def current_link() -> Link | None:
    """A link to the span current here (a command submitted to the writer), for its batch's span; None if none."""
    if not enabled():
        return None
    context = trace.get_current_span().get_span_context()
    return Link(context) if context.is_valid else None
