"""Which tracer provider Citadel's spans go to, and whether any is listening.

Without an SDK, OpenTelemetry's API hands out no-op spans; they still cost a context switch per span, so the
call sites first ask ``enabled()``, which is True only once a provider is installed here (``configure_tracing``
from settings, or ``use_provider`` from a test or a program that set up its own SDK).
"""

from __future__ import annotations

from typing import Any, Literal

from opentelemetry import trace

from citadel.errors import ConfigurationError
from citadel.extras import require

__all__ = ["TRACERS", "configure_tracing", "enabled", "tracer", "use_provider"]

TRACERS = ("off", "otlp", "console")
"""The values of the ``tracing`` setting: no spans; spans to an OTLP collector; spans printed to stdout."""

Tracing = Literal["off", "otlp", "console"]

_state: dict[str, Any] = {"tracer": trace.NoOpTracer(), "enabled": False, "configured": None}


def enabled() -> bool:
    """True when spans are recorded somewhere; call sites skip tracing entirely otherwise."""
    return bool(_state["enabled"])


def tracer() -> trace.Tracer:
    """Citadel's tracer on the installed provider (a no-op tracer before one is installed)."""
    found: trace.Tracer = _state["tracer"]
    return found


def use_provider(provider: trace.TracerProvider | None) -> None:
    """Send Citadel's spans to ``provider`` (None: stop tracing). Tests install an in-memory exporter's."""
    if provider is None:
        _state.update(tracer=trace.NoOpTracer(), enabled=False, configured=None)
        return
    _state.update(tracer=provider.get_tracer("citadel"), enabled=True, configured=None)


def configure_tracing(tracing: str, *, service_name: str = "citadel") -> None:
    """Install the OpenTelemetry SDK as ``tracing`` says: ``otlp`` exports in batches to the collector named by
    the standard ``OTEL_EXPORTER_OTLP_*`` variables, ``console`` prints each span, ``off`` records nothing.

    Raises:
        ConfigurationError: an unknown value, or the ``otel`` extra is not installed.
    """
    if tracing not in TRACERS:
        raise ConfigurationError(f"tracing must be one of {', '.join(TRACERS)}, not {tracing!r}")
    if tracing == "off":
        use_provider(None)
        return
    if _state["configured"] == (tracing, service_name):
        return  # configured once already in this process (a worker configures its application once per start)
    sdk = require("opentelemetry.sdk.trace", "otel", "tracing")
    export = require("opentelemetry.sdk.trace.export", "otel", "tracing")
    resources = require("opentelemetry.sdk.resources", "otel", "tracing")
    provider = sdk.TracerProvider(resource=resources.Resource.create({"service.name": service_name}))
    if tracing == "otlp":
        otlp = require("opentelemetry.exporter.otlp.proto.http.trace_exporter", "otel", "tracing")
        provider.add_span_processor(export.BatchSpanProcessor(otlp.OTLPSpanExporter()))
    else:
        provider.add_span_processor(export.SimpleSpanProcessor(export.ConsoleSpanExporter()))
    use_provider(provider)
    _state["configured"] = (tracing, service_name)
