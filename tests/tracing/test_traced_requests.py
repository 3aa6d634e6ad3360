"""Requests over HTTP in their SERVER spans: named by the route template, continuing a valid ``traceparent``, and
starting a new trace (never failing) on a malformed, oversized or invalid one; nothing recorded with tracing off."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from citadel import Application
from citadel.http import create_asgi
from examples.shop import build_app

VALID = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(store=f"sqlite:///{tmp_path / 'shop.db'}", secure=False)
    asgi = create_asgi(app, manage_lifecycle=False)
    transport = httpx.ASGITransport(asgi, raise_app_exceptions=False)
    async with app, httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


def client_app(client: httpx.AsyncClient) -> Application:
    app: Application = client.app  # type: ignore[attr-defined]
    return app


async def register(client: httpx.AsyncClient, **headers: str) -> httpx.Response:
    return await client.post("/users/register-user", json={"email": "ada@example.com", "name": "Ada"}, headers=headers)


def trace_of(span_context: object) -> str:
    return f"{span_context.trace_id:032x}"  # type: ignore[attr-defined]


async def test_a_request_is_a_server_span_of_its_route_that_continues_the_callers_trace(
    spans: InMemorySpanExporter, client: httpx.AsyncClient
) -> None:
    assert (await register(client, traceparent=VALID)).status_code == 200
    finished = {s.name: s for s in spans.get_finished_spans()}
    served = finished["POST /users/register-user"]
    assert served.kind is SpanKind.SERVER
    assert served.context is not None
    assert served.parent is not None
    assert (trace_of(served.context), f"{served.parent.span_id:016x}") == tuple(VALID.split("-")[1:3])
    assert dict(served.attributes or {}) == {
        "http.request.method": "POST",
        "url.path": "/users/register-user",
        "url.scheme": "http",
        "http.route": "/users/register-user",
        "http.response.status_code": 200,
    }
    dispatched = finished["dispatch users.RegisterUser"]
    handled = finished["handle users.RegisterUser"]
    assert dispatched.parent is not None
    assert dispatched.parent.span_id == served.context.span_id
    assert dispatched.context is not None
    assert handled.parent is not None
    assert handled.parent.span_id == dispatched.context.span_id


@pytest.mark.parametrize(
    "hostile",
    [
        "garbage",
        VALID.upper(),
        VALID + "-00",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0\xe9",  # of the valid length, not ASCII
        "00-" + "a" * 8000,
    ],
)
async def test_a_hostile_traceparent_starts_a_new_trace_and_the_next_good_one_is_continued(
    hostile: str, spans: InMemorySpanExporter, client: httpx.AsyncClient
) -> None:
    header = {"traceparent": hostile.encode("latin-1")}
    refused = await client.get("/users/user", params={"user_id": "nobody"}, headers=header)
    assert refused.status_code == 404  # answered as without the header
    (served,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert served.parent is None
    assert served.context is not None
    assert trace_of(served.context) != VALID.split("-")[1]
    assert served.status.status_code is StatusCode.UNSET  # a 4xx is the client's
    spans.clear()

    assert (await register(client, traceparent=VALID)).status_code == 200
    (served,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert served.context is not None
    assert trace_of(served.context) == VALID.split("-")[1]


async def test_requests_without_a_route_are_named_by_their_method_and_odd_methods_as_http(
    spans: InMemorySpanExporter, client: httpx.AsyncClient
) -> None:
    assert (await client.get("/no/such/route")).status_code == 404
    assert (await client.request("FROBNICATE", "/users/register-user")).status_code == 405
    unrouted, odd = spans.get_finished_spans()
    assert (unrouted.name, dict(unrouted.attributes or {})["http.response.status_code"]) == ("GET", 404)
    assert "http.route" not in (unrouted.attributes or {})
    assert (odd.name, dict(odd.attributes or {})["http.request.method"]) == ("HTTP", "_OTHER")


async def test_with_tracing_off_a_command_stores_no_traceparent_even_when_the_caller_sends_one(
    client: httpx.AsyncClient,
) -> None:
    assert (await register(client, traceparent=VALID)).status_code == 200
    (recorded,) = await client_app(client).store.read_all()
    assert recorded.traceparent is None


async def test_a_traced_command_stores_the_traceparent_of_its_dispatch_span_with_its_events(
    spans: InMemorySpanExporter, client: httpx.AsyncClient
) -> None:
    assert (await register(client, traceparent=VALID)).status_code == 200
    (recorded,) = await client_app(client).store.read_all()
    (dispatched,) = [s for s in spans.get_finished_spans() if s.name == "dispatch users.RegisterUser"]
    assert dispatched.context is not None
    assert recorded.traceparent == f"00-{dispatched.context.trace_id:032x}-{dispatched.context.span_id:016x}-01"
