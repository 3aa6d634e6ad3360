"""Traces of what Citadel does, through OpenTelemetry's API.

The API (``opentelemetry-api``) is all the core needs: until an SDK is configured, every span is a no-op and
``enabled()`` is False, so the hot paths skip even the no-op. ``configure_tracing`` (the ``tracing`` setting)
installs the SDK from the ``otel`` extra with an OTLP or console exporter; tests install their own provider.

``carriers`` moves a span's context through what crosses a boundary (HTTP headers, event metadata, NATS
headers); ``spans`` names and describes the spans after OpenTelemetry's HTTP and messaging conventions.
"""

from __future__ import annotations

from citadel.tracing.carriers import context_from, link_from, traceparent
from citadel.tracing.provider import TRACERS, configure_tracing, enabled, tracer, use_provider
from citadel.tracing.spans import (
    batch_span,
    command_span,
    current_link,
    end_batch,
    handler_span,
    http_server_span,
    in_span,
    process_span,
    projection_span,
    record_status,
    send_span,
    start_batch,
)

__all__ = [
    "TRACERS",
    "batch_span",
    "command_span",
    "configure_tracing",
    "context_from",
    "current_link",
    "enabled",
    "end_batch",
    "handler_span",
    "http_server_span",
    "in_span",
    "link_from",
    "process_span",
    "projection_span",
    "record_status",
    "send_span",
    "start_batch",
    "traceparent",
    "tracer",
    "use_provider",
]
