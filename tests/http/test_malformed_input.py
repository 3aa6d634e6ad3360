"""Hostile URLs and numbers: a malformed path or query string is 400, a number out of range 422, never a 500."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from mini import unprocessed_position

from citadel import Application
from citadel.http import create_asgi
from citadel.http.raw import query_pairs
from citadel.topology import MAX_POSITION

Decode = Callable[[bytes], str]

DECODERS: dict[str, Decode] = {
    # What servers put in the scope's ``path`` for a raw path they cannot decode cleanly.
    "keeps surrogates": lambda raw: unquote(raw.decode("latin-1"), errors="surrogateescape"),
    "replaces bytes": lambda raw: unquote(raw.decode("latin-1")),
}


async def call(
    application: Application,
    raw_path: bytes,
    decode: Decode,
    *,
    query: bytes = b"",
    raw: bool = True,
    method: str = "GET",
    headers: tuple[tuple[bytes, bytes], ...] = (),
    body: bytes = b"",
) -> tuple[int, dict[bytes, bytes], bytes]:
    """Send one request straight to the generated app, with the scope a server would build; return its answer."""
    scope: dict[str, Any] = {
        "type": "http",
        "method": method,
        "path": decode(raw_path),
        "root_path": "",
        "query_string": query,
        "headers": [(b"host", b"shop"), *headers],
        "scheme": "http",
    }
    if raw:
        scope["raw_path"] = raw_path
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await create_asgi(application, manage_lifecycle=False)(scope, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


def malformed(status: int, headers: dict[bytes, bytes], body: bytes) -> bool:
    return (
        status == 400
        and headers[b"content-type"] == b"application/problem+json"
        and b'"type":"urn:citadel:problem:malformed-url"' in body
        and headers[b"x-content-type-options"] == b"nosniff"
    )


@pytest.mark.parametrize("decode", DECODERS.values(), ids=DECODERS.keys())
@pytest.mark.parametrize("raw_path", [b"/%ff", b"/orders/%c3%28", b"/%zz", b"/orders/order%f", b"/%"])
async def test_a_path_with_a_malformed_escape_or_bytes_that_are_not_utf8_is_400(
    application: Application, raw_path: bytes, decode: Decode
) -> None:
    assert malformed(*await call(application, raw_path, decode))


async def test_a_path_that_is_not_utf8_is_400_even_without_the_raw_path(application: Application) -> None:
    assert malformed(*await call(application, b"/%ff", DECODERS["keeps surrogates"], raw=False))


@pytest.mark.parametrize("decode", DECODERS.values(), ids=DECODERS.keys())
async def test_a_percent_encoded_utf8_path_is_read_as_text_and_answered_404(
    application: Application, decode: Decode
) -> None:
    status, _, body = await call(application, b"/caf%C3%A9", decode)
    assert status == 404
    assert "no route GET /café" in body.decode()


async def test_a_route_spelt_with_escapes_is_still_that_route(application: Application) -> None:
    status, _, _ = await call(application, b"/%68ealth", lambda raw: unquote(raw.decode()))
    assert status == 200


@pytest.mark.parametrize(
    "query",
    [
        b"order_id=%zz",
        b"order_id=%f",
        b"order_id=abc%",
        b"order_id=%ff",
        b"%ff=1",
        b"order_id=%c3%28",
        b"order_id=a+%e2",
    ],
)
async def test_a_query_string_with_a_malformed_escape_or_bytes_that_are_not_utf8_is_400(
    application: Application, query: bytes
) -> None:
    assert malformed(*await call(application, b"/orders/order", DECODERS["replaces bytes"], query=query))


@pytest.mark.parametrize("query", [b"a=%zz", b"a=%f", b"a=%ff", b"%c3=b"])
def test_query_pairs_refuse_escapes_instead_of_keeping_or_replacing_them(query: bytes) -> None:
    with pytest.raises(ValueError, match="query string"):
        query_pairs(query)


async def test_a_good_request_after_malformed_urls_answers_as_before(client: httpx.AsyncClient) -> None:
    for url in ("/%ff", "/orders/order?order_id=%ff", "/%zz"):
        assert (await client.get(url)).status_code == 400
    placed = await client.post("/orders/place-order", json={"customer": "ann", "amount": 2})
    response = await client.get("/orders/order", params={"order_id": placed.json()["order_id"]})
    assert response.json()["amount"] == 2


def position_problem(response: httpx.Response) -> str:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    (error,) = response.json()["errors"]
    assert error["loc"] == "$.min_position"
    return str(error["message"])


@pytest.mark.parametrize(
    "position",
    ["9" * 5000, "orders:" + "9" * 5000, str(MAX_POSITION + 1), f"orders:{MAX_POSITION + 1}", "1" + "0" * 19],
    ids=["5000 digits", "module and 5000 digits", "2**63", "module and 2**63", "20 digits"],
)
async def test_a_min_position_beyond_a_signed_64_bit_integer_is_422_naming_it(
    client: httpx.AsyncClient, position: str
) -> None:
    response = await client.get("/analytics/revenue", params={"min_position": position})
    assert str(MAX_POSITION) in position_problem(response)


@pytest.mark.parametrize("position", [str(MAX_POSITION), "0" * 40 + "7", f"orders:{MAX_POSITION}"])
async def test_a_min_position_up_to_the_largest_is_read_as_a_position(client: httpx.AsyncClient, position: str) -> None:
    response = await client.get("/analytics/revenue", params={"min_position": position}, headers={"citadel-wait": "0"})
    assert response.json()["type"] == "urn:citadel:problem:position-not-written"  # a position, just not written


@pytest.mark.parametrize("wait", ["soon", "nan", "inf", "-inf", "-1", "30.5", "1e400", "", "٣"])
async def test_a_citadel_wait_that_is_not_a_number_from_0_to_the_maximum_is_422_naming_it(
    client: httpx.AsyncClient, wait: str
) -> None:
    response = await client.get(
        "/analytics/revenue", params={"min_position": "1"}, headers={"citadel-wait": wait.encode()}
    )
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error["loc"] == "Citadel-Wait"
    assert "from 0 to 30" in error["message"]


async def test_the_largest_citadel_wait_follows_max_wait(application: Application) -> None:
    asgi = create_asgi(application, manage_lifecycle=False, max_wait=2)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(asgi), base_url="http://shop") as client:
        params = {"min_position": str(await unprocessed_position(application))}
        refused = await client.get("/analytics/revenue", params=params, headers={"citadel-wait": "2.5"})
        allowed = await client.get("/analytics/revenue", params=params, headers={"citadel-wait": "0.1"})
    assert refused.status_code == 422
    assert allowed.status_code == 503


async def test_without_citadel_wait_a_query_waits_the_default_before_answering_503(
    client: httpx.AsyncClient, application: Application
) -> None:
    position = await unprocessed_position(application)
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await client.get("/analytics/revenue", params={"min_position": position})
    assert response.json()["type"] == "urn:citadel:problem:not-caught-up"
    assert loop.time() - started >= 0.9  # the client fixture's default_wait is 1 s


@pytest.mark.parametrize(
    ("length", "status"),
    [(b"9" * 5000, 413), (b"0" * 5000 + b"36", 200), (b"1" + b"0" * 7, 413)],
    ids=["5000 digits", "leading zeros", "beyond max_body"],
)
async def test_a_content_length_is_compared_to_max_body_however_many_digits_it_has(
    application: Application, length: bytes, status: int
) -> None:
    body = b'{"customer": "ann", "amount": 12345}'  # 36 bytes
    found, _, _ = await call(
        application,
        b"/orders/place-order",
        bytes.decode,
        method="POST",
        headers=((b"content-length", length),),
        body=body,
    )
    assert found == status
