"""The trace context between services over the real NATS server: a request carries its ``send`` span's
``traceparent``, tagged with the service keys apart from the message, and the serving side continues it. A forged,
altered or untagged one never gets a request refused: the request is answered in a new trace."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from citadel import Application
from citadel.messaging import wire
from citadel.messaging.signing import ServiceKeys
from tests.broker.test_signed_messages import NATS, answered, get_user, prefix_of, registered, users_service

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
FORGED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
async def service(tmp_path: Path, broker_url: str, keys: ServiceKeys) -> AsyncIterator[Application]:
    app = await users_service(tmp_path, broker_url, keys)
    try:
        yield app
    finally:
        await app.stop()


@pytest.fixture
async def plain(broker_url: str) -> AsyncIterator[Any]:
    """A plain NATS client: whoever can reach the server."""
    connection = await nats.connect(NATS)
    try:
        yield connection
    finally:
        await connection.close()


def served(spans: InMemorySpanExporter, subject: str) -> ReadableSpan:
    """The one span of a request served on ``subject`` (and forget every span recorded so far)."""
    (found,) = [s for s in spans.get_finished_spans() if s.name == f"process {subject}"]
    spans.clear()
    assert found.kind is SpanKind.CONSUMER
    return found


def ids(traceparent: str) -> tuple[str, str]:
    return traceparent.split("-")[1], traceparent.split("-")[2]


def parent_ids(span: ReadableSpan) -> tuple[str, str] | None:
    if span.parent is None:
        return None
    return f"{span.parent.trace_id:032x}", f"{span.parent.span_id:016x}"


def test_a_traceparent_is_tagged_apart_and_kept_only_while_its_tag_verifies(
    spans: InMemorySpanExporter, keys: ServiceKeys
) -> None:
    subject, body, headers = get_user("shop", keys, "u-1", extra={wire.TRACEPARENT: CALLER})
    assert wire.verify(keys, wire.REQUEST, subject, body, headers, max_age=60)[wire.TRACEPARENT] == CALLER
    altered = {**headers, wire.TRACEPARENT: FORGED}
    untagged = {k: v for k, v in headers.items() if k != wire.TRACE_TAG}
    moved = {**get_user("shop", keys, "u-2")[2], wire.TRACEPARENT: CALLER, wire.TRACE_TAG: headers[wire.TRACE_TAG]}
    for hostile in (altered, untagged):
        assert wire.TRACEPARENT not in wire.verify(keys, wire.REQUEST, subject, body, hostile, max_age=60)
    other_subject, other_body, _ = get_user("shop", keys, "u-2")
    assert wire.TRACEPARENT not in wire.verify(keys, wire.REQUEST, other_subject, other_body, moved, max_age=60)


def test_with_tracing_off_a_tagged_traceparent_is_not_even_checked(keys: ServiceKeys) -> None:
    subject, body, headers = get_user("shop", keys, "u-1", extra={wire.TRACEPARENT: CALLER})
    assert wire.TRACEPARENT not in wire.verify(keys, wire.REQUEST, subject, body, headers, max_age=60)


async def test_a_request_with_a_forged_traceparent_is_answered_in_a_new_trace_and_a_good_one_continues(
    spans: InMemorySpanExporter, service: Application, plain: Any, broker_url: str, keys: ServiceKeys
) -> None:
    user_id = await registered(service)
    spans.clear()

    def signed() -> tuple[str, bytes, dict[str, str]]:  # each request anew: a second one would be a replay
        return get_user(prefix_of(broker_url), keys, user_id, extra={wire.TRACEPARENT: CALLER})

    for forged in (FORGED, "x" * 4000, ""):
        subject, body, headers = signed()
        headers = {**headers, wire.TRACEPARENT: forged}
        assert answered(await plain.request(subject, body, headers=headers, timeout=5))["email"] == "ada@example.com"
        span = served(spans, subject)
        assert span.parent is None
        assert span.context is not None
        assert f"{span.context.trace_id:032x}" not in (ids(FORGED)[0], ids(CALLER)[0])

    subject, body, headers = signed()
    assert answered(await plain.request(subject, body, headers=headers, timeout=5))["email"] == "ada@example.com"
    assert parent_ids(served(spans, subject)) == ids(CALLER)
    assert dict(service.topology.broker.refusals) == {}  # type: ignore[union-attr]
