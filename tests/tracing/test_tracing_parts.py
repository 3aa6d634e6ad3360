"""The tracing parts on their own: context carried as a ``traceparent`` (hostile values start a new trace),
spans named and described after OpenTelemetry's conventions, and nothing at all recorded until a provider is
installed. The spans go to the SDK's in-memory exporter."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode

from citadel.errors import ConfigurationError
from citadel.tracing import (
    batch_span,
    command_span,
    configure_tracing,
    context_from,
    current_link,
    enabled,
    end_batch,
    handler_span,
    http_server_span,
    in_span,
    link_from,
    process_span,
    projection_span,
    send_span,
    start_batch,
    traceparent,
    tracer,
)
from citadel.tracing.carriers import stored_traceparent
from citadel.tracing.provider import use_provider
from citadel.tracing.spans import record_status

VALID = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_nothing_is_recorded_before_a_provider_is_installed() -> None:
    assert not enabled()
    with http_server_span("GET", "/x", path="/x", scheme="http") as span:
        assert span is None
    assert traceparent() is None
    assert current_link() is None


def test_a_request_continues_the_callers_trace(spans: InMemorySpanExporter) -> None:
    with http_server_span(
        "POST", "/orders/create-order", path="/orders/create-order", scheme="https", parent=context_from(VALID)
    ) as span:
        record_status(span, 200)
    (served,) = spans.get_finished_spans()
    assert served.name == "POST /orders/create-order"
    assert served.kind is SpanKind.SERVER
    assert served.context is not None
    assert served.parent is not None
    assert f"{served.context.trace_id:032x}" == VALID.split("-")[1]
    assert f"{served.parent.span_id:016x}" == VALID.split("-")[2]
    assert dict(served.attributes or {}) == {
        "http.request.method": "POST",
        "url.path": "/orders/create-order",
        "url.scheme": "https",
        "http.route": "/orders/create-order",
        "http.response.status_code": 200,
    }
    assert served.status.status_code is StatusCode.UNSET


def test_only_a_server_error_marks_the_request_failed(spans: InMemorySpanExporter) -> None:
    for status in (404, 503):
        with http_server_span("GET", None, path="/nowhere", scheme="http") as span:
            record_status(span, status)
    client_error, server_error = spans.get_finished_spans()
    assert client_error.name == "GET"  # no route matched: the method alone, names stay few
    assert client_error.status.status_code is StatusCode.UNSET
    assert server_error.status.status_code is StatusCode.ERROR


@pytest.mark.parametrize(
    "hostile",
    [
        "",
        "garbage",
        VALID.upper(),
        VALID + "00",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # an all-zero trace id is invalid
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # version ff is forbidden
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0\u0661",
        "x" * 100_000,
    ],
)
def test_a_hostile_traceparent_starts_a_new_trace(hostile: str) -> None:
    assert context_from(hostile) is None
    assert context_from({"traceparent": hostile}) is None
    assert link_from(hostile) is None


def test_a_stored_traceparent_round_trips(spans: InMemorySpanExporter) -> None:
    with command_span("command", "orders.CreateOrder") as span:
        stored = traceparent()
        assert span is not None
        assert stored == traceparent(span)
    assert stored is not None
    assert context_from(stored) is not None
    link = link_from(stored)
    (dispatched,) = spans.get_finished_spans()
    assert link is not None
    assert dispatched.context is not None
    assert link.context.span_id == dispatched.context.span_id
    assert dispatched.name == "dispatch orders.CreateOrder"


def test_a_batch_is_a_root_linked_to_each_of_its_commands(spans: InMemorySpanExporter) -> None:
    links = []
    for name in ("orders.CreateOrder", "billing.PayInvoice"):
        with command_span("command", name):
            link = current_link()
            assert link is not None
            links.append(link)
    with command_span("command", "outer"), batch_span(2, links, "sqlite"):
        pass
    commit = next(s for s in spans.get_finished_spans() if s.name == "commit")
    assert commit.parent is None  # a batch serves many requests: it belongs to none of their traces
    assert [link.context.span_id for link in commit.links] == [link.context.span_id for link in links]
    assert dict(commit.attributes or {})["citadel.batch.size"] == 2


def test_messaging_spans_follow_the_conventions(spans: InMemorySpanExporter) -> None:
    subject = "shop.events.orders.OrderCreated"
    with send_span(subject):
        sent = traceparent()
    with process_span(subject, consumer="billing", links=[link for link in [link_from(sent)] if link]):
        pass
    send, process = spans.get_finished_spans()
    assert (send.name, send.kind) == (f"send {subject}", SpanKind.PRODUCER)
    assert (process.name, process.kind) == (f"process {subject}", SpanKind.CONSUMER)
    assert dict(process.attributes or {}) == {
        "messaging.system": "nats",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": subject,
        "messaging.consumer.group.name": "billing",
    }
    assert process.parent is None
    assert send.context is not None
    assert [link.context.span_id for link in process.links] == [send.context.span_id]


def test_the_tracing_setting_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="tracing must be one of off, otlp, console"):
        configure_tracing("jaeger")
    configure_tracing("console")
    try:
        assert enabled()
    finally:
        configure_tracing("off")
    assert not enabled()


def test_a_batch_started_apart_holds_its_projections_and_ends_failed_with_its_error(
    spans: InMemorySpanExporter,
) -> None:
    with command_span("command", "orders.CreateOrder"):
        link = current_link()
    assert link is not None
    assert start_batch(1, [], "sqlite") is None  # no job of the batch was traced: nothing to link it to
    span = start_batch(1, [link], "sqlite")
    with in_span(span), projection_span("orders.OrderSummaries", 1):
        pass
    end_batch(span, RuntimeError("disk full"))
    projected, commit = spans.get_finished_spans()[1:]
    assert commit.name == "commit"
    assert commit.status.status_code is StatusCode.ERROR
    assert commit.context is not None
    assert projected.parent is not None
    assert projected.parent.span_id == commit.context.span_id


def test_a_batch_of_events_links_each_command_once_and_counts_its_events(spans: InMemorySpanExporter) -> None:
    with command_span("command", "orders.CreateOrder"):
        stored = traceparent()
    links = [link_from(stored), link_from(stored), None, link_from("garbage")]
    with process_span("events", consumer="analytics.Revenue", system="citadel", links=links, count=3):
        pass
    dispatched, processed = spans.get_finished_spans()
    assert dispatched.context is not None
    assert [link.context.span_id for link in processed.links] == [dispatched.context.span_id]
    assert dict(processed.attributes or {})["messaging.batch.message_count"] == 3


def test_a_method_outside_the_standard_ones_is_named_http_whatever_the_client_sent(
    spans: InMemorySpanExporter,
) -> None:
    with http_server_span("BREW", "/orders/create-order", path="/orders/create-order", scheme="http"):
        pass
    (served,) = spans.get_finished_spans()
    assert served.name == "HTTP"
    assert dict(served.attributes or {})["http.request.method"] == "_OTHER"
    assert "http.route" not in (served.attributes or {})


def test_configuring_the_same_tracing_twice_keeps_the_first_provider() -> None:
    configure_tracing("console", service_name="shop")
    try:
        first = tracer()
        configure_tracing("console", service_name="shop")
        assert tracer() is first
    finally:
        configure_tracing("off")


def test_nothing_starts_inside_a_request_the_sampler_dropped() -> None:
    """A sampled-out request costs its root span alone: the bus, handler and projection spans inside it are not
    started, and its events store no traceparent (no consumer span would be kept to link to)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    use_provider(provider)
    try:
        with http_server_span("POST", "/orders/create-order", path="/orders/create-order", scheme="http") as root:
            assert root is not None
            assert not root.is_recording()
            with command_span("command", "orders.CreateOrder") as dispatched:
                assert dispatched is None
            with (
                handler_span("orders.CreateOrder", "orders") as handled,
                projection_span("orders.Orders", 1) as projected,
            ):
                assert handled is None
                assert projected is None
            assert stored_traceparent() is None
            assert traceparent() is not None  # still sent on, so a service called keeps the decision
    finally:
        use_provider(None)
    assert exporter.get_finished_spans() == ()


def test_inside_a_recorded_request_the_inner_spans_start(spans: InMemorySpanExporter) -> None:
    with http_server_span("POST", "/x", path="/x", scheme="http"), command_span("command", "x.X") as dispatched:
        assert dispatched is not None
        assert stored_traceparent() == traceparent(dispatched)
    assert [s.name for s in spans.get_finished_spans()] == ["dispatch x.X", "POST /x"]
