"""What the generated app does at its edge, where it reads ASGI messages and answers them itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

import httpx
import msgspec
import pytest
from starlette.requests import ClientDisconnect, Request

from citadel import Actor, Application, Module, Query, QueryContext
from citadel.http import create_asgi
from citadel.http.raw import query_pairs
from citadel.testing import running


async def test_answers_over_https_carry_hsts_and_answers_over_http_do_not(application: Application) -> None:
    asgi = create_asgi(application, manage_lifecycle=False)
    for base, hsts in (("https://shop", True), ("http://shop", False)):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(asgi), base_url=base) as client:
            for path in ("/health", "/docs", "/nowhere"):
                response = await client.get(path)
                assert ("strict-transport-security" in response.headers) is hsts, (base, path)
                assert response.headers["x-content-type-options"] == "nosniff"


async def test_only_the_docs_page_may_run_its_script(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in docs.headers["content-security-policy"]
    assert "script-src" not in (await client.get("/health")).headers["content-security-policy"]


async def test_a_wrong_method_is_405_with_the_security_headers(client: httpx.AsyncClient) -> None:
    response = await client.delete("/health")
    assert response.status_code == 405
    assert response.headers["x-frame-options"] == "DENY"


async def test_a_client_gone_before_its_body_arrived_gets_a_500_problem_with_the_headers(
    application: Application,
) -> None:
    asgi = create_asgi(application, manage_lifecycle=False)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/orders/place-order",
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "scheme": "http",
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with pytest.raises(ClientDisconnect):
        await asgi(scope, receive, send)
    start = sent[0]
    assert start["status"] == 500
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"application/problem+json"
    assert headers[b"x-content-type-options"] == b"nosniff"


class Tag:
    """A host's own middleware: tags every response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def tagged(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], (b"x-tag", b"seen")]
            await send(message)

        await self.app(scope, receive, tagged)


async def test_middleware_added_to_the_app_sees_every_request(application: Application) -> None:
    asgi = create_asgi(application, manage_lifecycle=False)
    asgi.add_middleware(Tag)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(asgi), base_url="http://shop") as client:
        for response in (await client.get("/health"), await client.get("/nowhere")):
            assert response.headers["x-tag"] == "seen"
            assert response.headers["x-content-type-options"] == "nosniff"


async def test_an_authenticator_may_read_the_body_of_a_command(application: Application) -> None:
    seen: list[bytes] = []

    async def by_body(request: Request) -> Actor:
        seen.append(await request.body())
        return Actor("anonymous")

    asgi = create_asgi(application, manage_lifecycle=False, authenticate=by_body)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(asgi), base_url="http://shop") as client:
        response = await client.post("/orders/place-order", content=b'{"customer": "ann", "amount": 2}')
    assert response.status_code == 200
    assert seen == [b'{"customer": "ann", "amount": 2}']


class FindNotes(Query, name="notes.FindNotes"):
    author: str
    tags: list[str] = msgspec.field(default_factory=list)


class Found(msgspec.Struct):
    author: str
    tags: list[str]


async def find_notes(query: FindNotes, ctx: QueryContext) -> Found:
    return Found(query.author, query.tags)


@pytest.fixture
async def notes(store_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = Application([Module("notes", queries={FindNotes: find_notes}, contract=[FindNotes])])
    async with running(app, store=store_url):
        asgi = create_asgi(app, manage_lifecycle=False)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(asgi), base_url="http://h") as client:
            yield client


async def test_a_repeated_parameter_fills_a_list_field_and_a_single_field_takes_the_last(
    notes: httpx.AsyncClient,
) -> None:
    response = await notes.get("/notes/find-notes?author=ann&tags=a&author=bob&tags=b%20c&tags=d+e")
    assert response.json() == {"author": "bob", "tags": ["a", "b c", "d e"]}


@pytest.mark.parametrize(
    "query",
    [b"", b"a=1", b"a=1&a=2&b", b"a=&=x&&b=%20c", b"a+b=c+d", b"x=%E2%82%AC", b"x=\xe2\x82\xac", b"k=v=w;z"],
)
def test_parameters_are_read_as_starlette_reads_them(query: bytes) -> None:
    assert query_pairs(query) == parse_qsl(query.decode("latin-1"), keep_blank_values=True)
