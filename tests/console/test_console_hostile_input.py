"""Hostile input to the console: bad numbers, long or binary text, malformed query strings and forms, unknown ids,
and markup in what the store holds. Each is a clear 4xx (or shown as text), never a 500."""

from __future__ import annotations

import pytest

from tests.e2e.shopper import ok

from .conftest import ADMIN, SAME_ORIGIN, Shop

SCRIPT = "<script>alert(1)</script>"
BAD_NUMBERS = ["-1", "abc", "1e9", "1.5", " ", "99999999999999999999999999", "9" * 5000, "١٢", "0x10"]


@pytest.mark.parametrize("value", BAD_NUMBERS)
async def test_an_event_position_that_is_no_whole_number_is_400(shop: Shop, value: str) -> None:
    response = await shop.client.get("/console/event", params={"position": value}, headers=ADMIN)

    assert response.status_code == 400, response.text
    assert "position must be a whole number" in response.text


@pytest.mark.parametrize("position", ["0", "9223372036854775807", "0009223372036854775807"])
async def test_a_position_without_an_event_is_404(shop: Shop, position: str) -> None:
    response = await shop.client.get("/console/event", params={"position": position}, headers=ADMIN)

    assert response.status_code == 404
    assert "there is no event at position" in response.text


async def test_a_position_beyond_the_largest_one_is_400(shop: Shop) -> None:
    response = await shop.client.get("/console/event", params={"position": "9223372036854775808"}, headers=ADMIN)

    assert response.status_code == 400


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "201"},
        {"limit": "-5"},
        {"from": "-1"},
        {"from": "1" * 40},
        {"since": "yesterday"},
        {"until": "2025-13-45"},
        {"stream": "a" * 513},
        {"stream": "order-\x00"},
        {"type": "orders.\x1b[31mOrderCreated"},
        {"chain_from": "x"},
    ],
)
async def test_a_search_with_a_bad_parameter_is_400(shop: Shop, params: dict[str, str]) -> None:
    path = "/console/event" if "chain_from" in params else "/console/streams"
    params = {"position": "1", **params} if "chain_from" in params else params

    response = await shop.client.get(path, params=params, headers=ADMIN)

    assert response.status_code == 400, response.text


@pytest.mark.parametrize("query", ["stream=%zz", "type=%C3%28", "limit=%", "stream=%E2%82"])
async def test_a_malformed_query_string_is_400(shop: Shop, query: str) -> None:
    response = await shop.client.get(f"/console/streams?{query}", headers=ADMIN)

    assert response.status_code == 400


async def test_a_searched_stream_name_is_shown_back_as_text(shop: Shop) -> None:
    response = await shop.client.get("/console/streams", params={"stream": SCRIPT + '"'}, headers=ADMIN)

    assert response.status_code == 200
    assert SCRIPT not in response.text
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;&#34;"' in response.text


async def test_markup_in_a_stored_payload_is_escaped_on_the_event_page(shop: Shop) -> None:
    ok(await shop.client.post("/users/register-user", json={"email": "m@example.com", "name": SCRIPT}, headers=ADMIN))
    records = await shop.app.store.read_all(1, 1000)
    (event,) = [r for r in records if r.type == "users.UserRegistered" and b"m@example" in r.data]

    response = await shop.client.get("/console/event", params={"position": event.position}, headers=ADMIN)

    assert response.status_code == 200
    assert SCRIPT not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


async def test_markup_in_a_dead_letters_error_is_escaped(shop: Shop) -> None:
    (record,) = await shop.app.store.read_all(1, 1)
    await shop.app.store.add_dead_letter("billing.invoicing", record, f"ValueError: {SCRIPT}", 5)

    response = await shop.client.get("/console/dead-letters", headers=ADMIN)

    assert response.status_code == 200
    assert SCRIPT not in response.text
    assert "ValueError: &lt;script&gt;alert(1)&lt;/script&gt;" in response.text


@pytest.mark.parametrize("name", ["nope.Nothing", SCRIPT, "x" * 600])
async def test_rebuilding_an_unknown_projection_is_refused_and_shown_as_text(shop: Shop, name: str) -> None:
    started = await shop.client.post("/console/rebuild", data={"projection": name}, headers={**ADMIN, **SAME_ORIGIN})
    progress = await shop.client.get("/console/rebuild.json", params={"projection": name}, headers=ADMIN)

    assert started.status_code in (400, 404)
    assert progress.status_code in (400, 404)
    assert progress.headers["content-type"] == "application/problem+json"
    assert SCRIPT not in started.text


@pytest.mark.parametrize(
    ("form", "status"),
    [
        ({"action": "retry", "letter": "abc"}, 400),
        ({"action": "retry", "letter": "-3"}, 400),
        ({"action": "retry", "letter": "9" * 30}, 400),
        ({"action": "retry"}, 400),
        ({"action": "explode", "letter": "1"}, 400),
        ({"action": "retry", "letter": "424242"}, 409),
        ({"action": "discard", "letter": "424242"}, 409),
    ],
)
async def test_a_bad_dead_letter_form_is_refused(shop: Shop, form: dict[str, str], status: int) -> None:
    response = await shop.client.post("/console/dead-letters", data=form, headers={**ADMIN, **SAME_ORIGIN})

    assert response.status_code == status, response.text


async def test_a_form_naming_too_many_letters_is_413(shop: Shop) -> None:
    body = "action=retry&" + "&".join(f"letter={n}" for n in range(1, 1100))

    response = await shop.client.post(
        "/console/dead-letters",
        content=body,
        headers={**ADMIN, **SAME_ORIGIN, "content-type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 413


async def test_a_form_body_beyond_the_limit_is_413(shop: Shop) -> None:
    response = await shop.client.post(
        "/console/login", content=b"token=" + b"a" * 70_000, headers={**SAME_ORIGIN, "content-type": FORM}
    )

    assert response.status_code == 413


FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b'{"projection": "users.Users"}', "application/json", 415),
        (b"projection=%zz", FORM, 400),
        (b"projection=%ff%fe", FORM, 400),
        (b"\xff\xfe\x00", FORM, 404),  # read as latin-1: an unknown projection
    ],
)
async def test_a_malformed_form_is_refused(shop: Shop, body: bytes, content_type: str, status: int) -> None:
    response = await shop.client.post(
        "/console/rebuild", content=body, headers={**ADMIN, **SAME_ORIGIN, "content-type": content_type}
    )

    assert response.status_code == status


async def test_a_program_with_the_bearer_header_may_post_without_an_origin(shop: Shop) -> None:
    response = await shop.client.post("/console/rebuild", data={"projection": "users.Users"}, headers=ADMIN)

    assert response.status_code == 303
