"""Fuzz every operation of the shop's generated OpenAPI document with Schemathesis, in process (ASGI).

Schemathesis reads ``/schema/openapi.json`` from the ASGI app and generates requests for each operation, ones
that fit the schema and ones that do not, a bounded and reproducible number per operation. Whatever it sends,
the server never fails (no 5xx) and every client error is an RFC 9457 problem document.

Each operation gets a fresh application on its own store, started by the ASGI lifespan, which Schemathesis
drives on an event loop of its own. Every request speaks for an administrator, so routes that require a role
are fuzzed past the authorization check, into their validation and handlers.

The operations are parametrized here rather than with ``schema.parametrize()``: under pytest 9 Schemathesis
gives all its items the same node id, and its fixture-based schema loader fails.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode, Response
from schemathesis.python.asgi import shutdown_lifespans
from starlette.applications import Starlette
from starlette.requests import Request

from citadel import Actor
from citadel.http import create_asgi
from examples.shop import build_app

pytestmark = pytest.mark.slow

ADMIN = Actor("fuzz-admin", frozenset({"admin"}))
PROBLEM = "application/problem+json"
EXAMPLES = 25
"""Generated requests per operation."""

Operation = APIOperation[Any, Any, Any, Any]


async def as_admin(request: Request) -> Actor:
    return ADMIN


def shop_asgi(store: str, *, manage_lifecycle: bool = True) -> Starlette:
    # No waiting for read models: a `min_position` ahead of the log is answered at once (503, not caught up).
    return create_asgi(
        build_app(store=store), authenticate=as_admin, manage_lifecycle=manage_lifecycle, title="shop", default_wait=0
    )


# The document and the routes come from the modules' contracts, so they are read at collection from an app that
# is never started: building one opens nothing, and without a managed lifecycle its lifespan starts nothing.
schema = schemathesis.openapi.from_asgi("/schema/openapi.json", shop_asgi("sqlite:///never.db", manage_lifecycle=False))
OPERATIONS: list[Operation] = [operation for methods in schema.values() for operation in methods.values()]


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Starlette]:
    """The shop's ASGI app on a fresh SQLite store; Schemathesis starts its lifespan at the first request."""
    try:
        yield shop_asgi(f"sqlite:///{tmp_path}/fuzz.db")
    finally:
        shutdown_lifespans()  # stops the application (and Schemathesis' own teardown would too)


def describe(case: Case[Any]) -> str:
    """The request as a curl command, to reproduce it against ``citadel serve``."""
    return case.as_curl_command()


def problem_of(response: Response) -> dict[str, Any]:
    """The response's problem document, checked for the fields RFC 9457 clients rely on."""
    content_type = ", ".join(response.headers.get("content-type", []))
    assert content_type.split(";")[0].strip() == PROBLEM, f"content-type {content_type!r}: {response.text[:300]}"
    document = json.loads(response.content)
    assert isinstance(document, dict), document
    for field in ("type", "title", "status"):
        assert field in document, f"no {field!r} in the problem document {document}"
    assert document["status"] == response.status_code, document
    return document


def is_not_caught_up(case: Case[Any], response: Response) -> bool:
    """The documented 503 of a query asked to wait for a log position that its read models have not reached."""
    if response.status_code != 503 or "min_position" not in (case.query or {}):
        return False
    return str(problem_of(response)["type"]).endswith("not-caught-up") and "retry-after" in response.headers


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_no_generated_request_gets_a_server_error_and_every_client_error_is_a_problem(
    operation: Operation, shop: Starlette
) -> None:
    @given(
        case=st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))
    )
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,  # the same requests on every run
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def answers(case: Case[Any]) -> None:
        response = case.call(app=shop)
        try:
            if response.status_code >= 500:
                assert is_not_caught_up(case, response), f"server error: {response.text[:500]}"
            elif response.status_code >= 400:
                problem_of(response)
        except AssertionError as exc:
            raise AssertionError(f"{describe(case)}\n-> {response.status_code}: {exc}") from exc

    answers()


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_a_method_that_an_operation_does_not_accept_is_a_405_problem(
    operation: Operation, method: str, tmp_path: Path
) -> None:
    app = shop_asgi(f"sqlite:///{tmp_path}/fuzz.db", manage_lifecycle=False)  # the router answers, nothing starts
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client:
        response = await client.request(method, operation.path, json={})

    assert response.status_code == 405
    assert response.headers["content-type"].split(";")[0] == PROBLEM
    assert response.json()["status"] == 405
    assert {"type", "title"} <= response.json().keys()
