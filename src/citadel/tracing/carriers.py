"""A span's context carried across a boundary as a W3C ``traceparent``: in HTTP headers, in an event's
metadata (so a consumer reading the log later links to the command that wrote it) and in NATS headers.

Only ``traceparent`` travels: ``tracestate`` and baggage are not stored in the log, where they would outlive
the request they describe.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["TRACEPARENT_LENGTH", "context_from", "link_from", "stored_traceparent", "traceparent"]

TRACEPARENT_LENGTH = 55
"""The length of every valid ``traceparent`` (version 00): anything longer or shorter is not even parsed."""
_PROPAGATOR = TraceContextTextMapPropagator()
_TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


def traceparent(span: trace.Span | None = None) -> str | None:
    """The ``traceparent`` of ``span`` (the current span by default); None when it is not a recorded one."""
    found = span if span is not None else trace.get_current_span()
    context = found.get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def stored_traceparent() -> str | None:
    """The ``traceparent`` to store with events a command writes: the current span's while it is recorded; None
    inside a request the sampler dropped (no consumer span would be kept to link to it)."""
    span = trace.get_current_span()
    return traceparent(span) if span.is_recording() else None


def context_from(value: str | Mapping[str, str] | None) -> Context | None:
    """The remote parent that ``value`` (a ``traceparent``, or headers holding one) names; None when absent or
    malformed (a hostile or broken header starts a new trace rather than failing the request)."""
    header = value.get("traceparent") if isinstance(value, Mapping) else value
    if not header or len(header) != TRACEPARENT_LENGTH or not _TRACEPARENT.match(header):
        return None
    context = _PROPAGATOR.extract({"traceparent": header})
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def link_from(value: str | None) -> trace.Link | None:
    """A span link to the span a stored ``traceparent`` names (a consumer's span links to the command that
    wrote its event: they are causally related but not one call); None when there is none."""
    context = context_from(value)
    if context is None:
        return None
    return trace.Link(trace.get_current_span(context).get_span_context())
