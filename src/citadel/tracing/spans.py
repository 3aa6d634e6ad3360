"""The spans Citadel records, named and described after OpenTelemetry's semantic conventions.

HTTP: a SERVER span ``{method} {route}`` with ``http.request.method``, ``url.path``, ``url.scheme``,
``http.route`` and ``http.response.status_code`` (an error status only for 5xx: a 4xx is the client's).
Messaging: a PRODUCER span ``send {destination}`` where a message leaves for NATS, and a CONSUMER span
``process {destination}`` where a NATS message or a logged event is handled, with ``messaging.system``,
``messaging.operation.type`` and ``messaging.destination.name``. Inside a process: ``dispatch`` for the bus,
``handle`` for a handler, ``commit`` for a group-commit batch (linked to every command it holds) and
``project`` for an inline projection.

Every helper returns a context manager; while ``enabled()`` is False it is a shared do-nothing one (call sites
on hot paths ask ``enabled()`` first and skip even that).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
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
    "end_batch",
    "handler_span",
    "http_server_span",
    "in_span",
    "process_span",
    "projection_span",
    "record_status",
    "send_span",
    "start_batch",
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


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})


def http_server_span(
    method: str, route: str | None, *, path: str, scheme: str, parent: Context | None = None
) -> AbstractContextManager[Span | None]:
    """A request as the server saw it; ``route`` is the matched template (None: no route matched, and the
    span is named by the method alone, as the conventions ask, to keep names few). A method outside HTTP's
    standard ones is ``_OTHER`` and the span ``HTTP``: a client cannot make up names."""
    if method not in _METHODS:
        method, route = "_OTHER", None
    attributes: dict[str, Any] = {"http.request.method": method, "url.path": path, "url.scheme": scheme}
    if route is not None:
        attributes["http.route"] = route
    shown = "HTTP" if method == "_OTHER" else method
    name = f"{shown} {route}" if route is not None else shown
    return _span(name, SpanKind.SERVER, attributes, context=parent)


def record_status(span: Span | None, status: int) -> None:
    """Note the response ``status`` on a server span; 5xx marks it failed, 4xx does not (the client's error)."""
    if span is None:
        return
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))


def _unsampled() -> bool:
    """True when no span should start inside the current one: tracing is off, or the current span is one the
    sampler dropped (a request sampled out). Its children would be dropped too, as the default parent-based
    sampler decides, so they are not even started: a sampled-out request costs its root span alone."""
    if not enabled():
        return True
    current = trace.get_current_span()
    return current.get_span_context().is_valid and not current.is_recording()


def command_span(kind: str, message_type: str) -> AbstractContextManager[Span | None]:
    """A command or query (``kind``) through the bus: authorization, idempotency, the handler, the commit."""
    if _unsampled():
        return _NOTHING
    return _span(
        f"dispatch {message_type}",
        SpanKind.INTERNAL,
        {"citadel.message.kind": kind, "citadel.message.type": message_type},
    )


def handler_span(message_type: str, module: str) -> AbstractContextManager[Span | None]:
    """The module's handler deciding on a message."""
    if _unsampled():
        return _NOTHING
    return _span(
        f"handle {message_type}", SpanKind.INTERNAL, {"citadel.message.type": message_type, "citadel.module": module}
    )


def batch_span(size: int, links: Sequence[Link], backend: str) -> AbstractContextManager[Span | None]:
    """One group-commit batch run in one place: a root of its own (it serves many requests), linked to each
    command in it, current while it runs (its inline projections are its children)."""
    span = start_batch(size, links, backend)
    if span is None:
        return _NOTHING
    return trace.use_span(span, end_on_exit=True, record_exception=True, set_status_on_exception=True)


def start_batch(size: int, links: Sequence[Link], backend: str) -> Span | None:
    """Start a group-commit batch's span (see ``batch_span``) for a writer whose commit ends elsewhere (on
    another thread, or in a later callback); end it with ``end_batch``. None when tracing is off or no job
    of the batch was submitted inside a span (nothing to link it to)."""
    if not enabled() or not links:
        return None
    attributes: dict[str, Any] = {"citadel.batch.size": size, "db.system.name": backend, "db.operation.name": "commit"}
    return tracer().start_span("commit", Context(), SpanKind.INTERNAL, attributes, links)


def in_span(span: Span | None) -> AbstractContextManager[Any]:
    """Make ``span`` current while a block runs, without ending it (the inline projections' parent)."""
    return _NOTHING if span is None else trace.use_span(span, end_on_exit=False)


def end_batch(span: Span | None, error: BaseException | None = None) -> None:
    """End a batch's span started by ``start_batch``; ``error``: the batch failed with it."""
    if span is None:
        return
    if error is not None:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    span.end()


def projection_span(projection: str, events: int) -> AbstractContextManager[Span | None]:
    """An inline projection applying events, inside the batch's transaction."""
    if _unsampled():
        return _NOTHING
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
    links: Iterable[Link | None] = (),
    count: int = 1,
) -> AbstractContextManager[Span | None]:
    """A message or logged event handled by ``consumer``: a child of the sender's span when the sender waits
    for it (``parent``, a request over NATS), linked to it when it runs later on its own (``links``; None
    entries, events stored without a trace, are left out). ``count`` > 1: a batch of that many."""
    if not enabled():
        return _NOTHING
    attributes: dict[str, Any] = {
        "messaging.system": system,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": destination,
        "messaging.consumer.group.name": consumer,
    }
    if count > 1:
        attributes["messaging.batch.message_count"] = count
    found: dict[tuple[int, int], Link] = {}  # one link per span, however many of its events a batch holds
    for link in links:
        if link is not None:
            found.setdefault((link.context.trace_id, link.context.span_id), link)
    context = parent or Context()  # no parent: a trace of its own, not the consumer task's surroundings
    return _span(f"process {destination}", SpanKind.CONSUMER, attributes, context=context, links=list(found.values()))


def current_link() -> Link | None:
    """A link to the span current here (a command submitted to the writer), for its batch's span; None if none."""
    if not enabled():
        return None
    context = trace.get_current_span().get_span_context()
    return Link(context) if context.is_valid else None
