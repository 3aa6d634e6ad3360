"""The OpenAPI document is exact: what it allows the endpoints accept, what it refuses they refuse, and it says
what every route can answer. Each fix that schemathesis asked for has its own test here (the whole run against a
served shop is ``tests/e2e/test_openapi_schemathesis.py``)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from mini import build

from citadel import Application, Module, Query, QueryContext
from citadel.context import is_safe_id
from citadel.http import create_asgi
from citadel.http.docstrings import markdown, summary_and_description
from citadel.http.openapi import IDEMPOTENCY_KEY, decimal_at_most, openapi_document, position_schema
from citadel.topology import MAX_POSITION
from examples.shop import build_app

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


class GetShelf(Query, name="shelf.GetShelf"):
    """The known items among ``item_ids``, as :class:`~shelf.Item` rows."""

    item_ids: Annotated[list[Annotated[str, msgspec.Meta(min_length=1)]], msgspec.Meta(max_length=10)]


async def get_shelf(query: GetShelf, ctx: QueryContext) -> list[str]:
    return query.item_ids


def shelf(tmp_path: Path, **options: Any) -> Application:
    module = Module("shelf", contract=[GetShelf], queries={GetShelf: get_shelf})
    return Application([module], store=f"sqlite:///{tmp_path / 'shelf.db'}", **options)


@pytest.fixture
async def shelf_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = shelf(tmp_path)
    async with app:
        transport = httpx.ASGITransport(create_asgi(app, manage_lifecycle=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://shelf") as http:
            yield http


def shop_document() -> dict[str, Any]:
    return openapi_document(build_app(store="sqlite:///never-opened.db"))


def descriptions(node: Any) -> list[str]:
    """Every ``description`` text in a schema tree."""
    if isinstance(node, list):
        return [text for item in node for text in descriptions(item)]
    if not isinstance(node, dict):
        return []
    found = [node["description"]] if isinstance(node.get("description"), str) else []
    return found + [text for value in node.values() for text in descriptions(value)]


def operations(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(method, operation) for item in document["paths"].values() for method, operation in item.items()]


# -- 405 -------------------------------------------------------------------------------------------------


async def test_a_wrong_method_answers_405_with_the_allowed_methods(client: httpx.AsyncClient) -> None:
    on_command = await client.get("/orders/place-order")
    on_query = await client.request("TRACE", "/orders/order")
    assert (on_command.status_code, on_command.headers["allow"]) == (405, "POST")
    assert on_query.status_code == 405
    assert set(on_query.headers["allow"].split(", ")) == {"GET", "HEAD"}
    assert on_query.headers["content-type"] == "application/problem+json"


async def test_an_unknown_path_answers_404_without_allow(client: httpx.AsyncClient) -> None:
    response = await client.get("/orders/no-such-route")
    assert response.status_code == 404
    assert "allow" not in response.headers


# -- array parameters ------------------------------------------------------------------------------------


async def test_one_value_of_an_array_parameter_is_a_list_of_one(shelf_client: httpx.AsyncClient) -> None:
    response = await shelf_client.get("/shelf/shelf", params={"item_ids": "a"})
    assert (response.status_code, response.json()) == (200, ["a"])


async def test_repeated_values_of_an_array_parameter_keep_their_order(shelf_client: httpx.AsyncClient) -> None:
    response = await shelf_client.get("/shelf/shelf?item_ids=b&item_ids=a")
    assert (response.status_code, response.json()) == (200, ["b", "a"])


async def test_an_array_parameter_still_checks_its_items(shelf_client: httpx.AsyncClient) -> None:
    too_many = await shelf_client.get("/shelf/shelf", params={"item_ids": [str(n) for n in range(11)]})
    empty_item = await shelf_client.get("/shelf/shelf?item_ids=")
    assert (too_many.status_code, empty_item.status_code) == (422, 422)


# -- constraints -----------------------------------------------------------------------------------------


def test_min_position_is_documented_as_a_position_from_0_to_the_largest() -> None:
    document = shop_document()
    for method, operation in operations(document):
        if method == "get":
            (parameter,) = [p for p in operation["parameters"] if p["name"] == "min_position"]
            number, token = parameter["schema"]["anyOf"]
            assert number == {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
            assert token["type"] == "string"


def test_a_module_position_is_documented_for_the_applications_modules_only() -> None:
    pattern = re.compile(position_schema(["orders", "users"])["anyOf"][1]["pattern"])
    assert pattern.match("orders:57")
    assert pattern.match(f"users:{MAX_POSITION}")
    assert not pattern.match("billing:57")
    assert not pattern.match(f"orders:{MAX_POSITION + 1}")
    assert not pattern.match("orders:-1")
    assert not pattern.match("57")  # a plain number is the integer branch


@given(st.integers(min_value=0, max_value=2 * MAX_POSITION), st.integers(min_value=0, max_value=25))
def test_the_position_pattern_takes_exactly_the_numbers_parse_position_takes(number: int, zeros: int) -> None:
    text = "0" * zeros + str(number)
    assert bool(re.fullmatch(decimal_at_most(MAX_POSITION), text)) == (number <= MAX_POSITION)


@pytest.mark.parametrize("limit", [0, 7, 10, 99, 100, 305, 1000])
def test_decimal_at_most_draws_its_line_at_the_limit(limit: int) -> None:
    pattern = re.compile(decimal_at_most(limit))
    assert [n for n in range(limit + 50) if pattern.fullmatch(str(n))] == list(range(limit + 1))


def test_the_idempotency_key_is_documented_with_its_length_and_characters() -> None:
    for method, operation in operations(shop_document()):
        if method == "post":
            (key,) = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
            assert key["schema"] == {
                "type": "string",
                "minLength": 1,
                "maxLength": 128,
                "pattern": "^[A-Za-z0-9._:-]+$",
            }


@given(st.text(alphabet=st.sampled_from("Az09._:- é%/"), max_size=130))
def test_the_documented_idempotency_key_is_what_the_endpoints_accept(key: str) -> None:
    documented = (
        IDEMPOTENCY_KEY["minLength"] <= len(key) <= IDEMPOTENCY_KEY["maxLength"]
        and re.search(IDEMPOTENCY_KEY["pattern"], key) is not None
    )
    assert documented == is_safe_id(key)


async def test_the_citadel_position_header_matches_its_documented_schema(client: httpx.AsyncClient) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    header = document["paths"]["/orders/place-order"]["post"]["responses"]["200"]["headers"]["Citadel-Position"]
    response = await client.post("/orders/place-order", json={"customer": "ann", "amount": 5})
    assert header["required"] is True
    assert re.search(header["schema"]["pattern"], response.headers["citadel-position"])
    assert re.search(header["schema"]["pattern"], "orders:12")


# -- responses -------------------------------------------------------------------------------------------


def test_every_route_documents_its_problems_as_problem_documents() -> None:
    for method, operation in operations(shop_document()):
        responses = operation["responses"]
        expected = {"400", "401", "403", "404", "409", "422", "429", "503"} | ({"413"} if method == "post" else set())
        assert expected <= set(responses), operation["operationId"]
        for status in expected:
            assert responses[status]["content"] == {"application/problem+json": {"schema": PROBLEM_REF}}


def test_the_headers_a_problem_always_carries_are_documented_as_required() -> None:
    for _, operation in operations(shop_document()):
        responses = operation["responses"]
        assert responses["401"]["headers"]["WWW-Authenticate"]["required"] is True
        assert responses["429"]["headers"]["Retry-After"]["required"] is True
        assert responses["503"]["headers"]["Retry-After"]["required"] is True


def test_a_query_documents_position_not_written_as_422() -> None:
    for method, operation in operations(shop_document()):
        if method == "get":
            assert "position-not-written" in operation["responses"]["422"]["description"]


# -- info and text ---------------------------------------------------------------------------------------


def test_the_info_is_settable_on_the_application(tmp_path: Path) -> None:
    app = shelf(tmp_path, title="Shelf", version="2.1.0", description="Items on **one** shelf.")
    assert openapi_document(app)["info"] == {
        "title": "Shelf",
        "version": "2.1.0",
        "description": "Items on **one** shelf.",
    }


async def test_the_default_title_is_the_servers(tmp_path: Path) -> None:
    app = shelf(tmp_path)
    assert openapi_document(app)["info"] == {"title": "Citadel application", "version": "1"}
    transport = httpx.ASGITransport(create_asgi(app, manage_lifecycle=False, title="From the CLI"))
    async with httpx.AsyncClient(transport=transport, base_url="http://shelf") as http:
        assert (await http.get("/schema/openapi.json")).json()["info"]["title"] == "From the CLI"


async def test_the_applications_title_names_the_document_and_the_docs_page(tmp_path: Path) -> None:
    transport = httpx.ASGITransport(create_asgi(shelf(tmp_path, title="Shelf <1>"), manage_lifecycle=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://shelf") as http:
        assert (await http.get("/schema/openapi.json")).json()["info"]["title"] == "Shelf <1>"
        assert "<title>Shelf &lt;1&gt;</title>" in (await http.get("/docs")).text


def test_no_summary_or_description_of_the_shop_is_restructured_text() -> None:
    document = shop_document()
    texts = [operation.get(key, "") for _, operation in operations(document) for key in ("summary", "description")]
    texts += descriptions(document["components"])
    assert len(texts) > 20
    assert not [text for text in texts if "``" in text or ":class:`" in text]
    assert any("`" in text for text in texts)  # the literals are still there, as Markdown code


def test_a_summary_is_the_first_paragraph_in_markdown(tmp_path: Path) -> None:
    (operation,) = [op for _, op in operations(openapi_document(shelf(tmp_path)))]
    assert operation["summary"] == "The known items among `item_ids`, as `Item` rows."
    assert "description" not in operation


def test_restructured_text_becomes_markdown() -> None:
    text = """Read ``a`b`` and ``x``, see :func:`citadel.app.start`, `the RFC <https://www.rfc-editor.org>`_.

    Example::

        app.start()

    .. note:: It waits.
    """
    assert markdown(text).splitlines() == [
        "Read `` a`b `` and `x`, see `citadel.app.start`, [the RFC](https://www.rfc-editor.org).",
        "",
        "Example:",
        "",
        "    app.start()",
        "",
        "**Note:** It waits.",
    ]


def test_a_docstring_splits_into_a_one_line_summary_and_the_rest() -> None:
    summary, description = summary_and_description("Place an order\n    for ``customer``.\n\n    It is paid later.\n")
    assert (summary, description) == ("Place an order for `customer`.", "It is paid later.")


def test_the_mini_applications_document_keeps_its_routes() -> None:
    document = openapi_document(build(store="sqlite:///never-opened.db"))
    assert "/orders/place-order" in document["paths"]
    assert document["openapi"] == "3.1.0"


async def test_the_servers_limits_are_in_the_document(tmp_path: Path) -> None:
    app = build(store=f"sqlite:///{tmp_path / 'never-opened.db'}")
    transport = httpx.ASGITransport(create_asgi(app, manage_lifecycle=False, max_body=4096, max_wait=7.5))
    async with httpx.AsyncClient(transport=transport, base_url="http://mini") as http:
        document = (await http.get("/schema/openapi.json")).json()
    (wait,) = [p for p in document["paths"]["/orders/order"]["get"]["parameters"] if p["name"] == "Citadel-Wait"]
    assert (wait["in"], wait["schema"]) == ("header", {"type": "number", "minimum": 0, "maximum": 7.5})
    assert "4096 bytes" in document["paths"]["/orders/place-order"]["post"]["requestBody"]["description"]


class GetLabel(Query, name="shelf.GetLabel"):
    """A label of anything."""

    item_id: str


async def get_label(query: GetLabel, ctx: QueryContext) -> dict[str, object]:
    return {"item_id": query.item_id}


def test_a_result_type_without_a_json_schema_is_documented_as_any_json_not_a_crash() -> None:
    module = Module("shelf", contract=[GetLabel], queries={GetLabel: get_label})
    document = openapi_document(Application([module], store="sqlite:///never-opened.db"))
    ok = document["paths"]["/shelf/label"]["get"]["responses"]["200"]
    assert ok == {"description": "OK"}
