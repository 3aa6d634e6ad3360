"""The docs page: Swagger UI served whole by the application, from an allow-list of files, under a strict
content security policy."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

import httpx
import msgspec
import pytest

from citadel import Application
from citadel.http import create_asgi

ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "index.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "init.js": "text/javascript; charset=utf-8",
}


def linked(page: str) -> list[str]:
    """Every URL the page loads or links to."""
    return re.findall(r'(?:src|href)="([^"]*)"', page)


async def test_the_page_loads_every_asset_from_the_application_itself(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "http://" not in page.text
    assert "https://" not in page.text
    assert "//" not in "".join(linked(page.text))
    names = {re.sub(r"^docs/assets/([\w.-]+)\?v=[0-9a-f]+$", r"\1", url) for url in linked(page.text)}
    assert names == {*ASSETS, "schema/openapi.json"}


async def test_the_page_runs_no_inline_script(client: httpx.AsyncClient) -> None:
    page = (await client.get("/docs")).text
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert len(scripts) == 2
    assert all(' src="docs/assets/' in attributes and not body.strip() for attributes, body in scripts)
    assert not re.search(r"\son\w+=", page)  # no inline event handler either


@pytest.mark.parametrize(("name", "content_type"), ASSETS.items())
async def test_each_asset_is_served_with_its_content_type(
    client: httpx.AsyncClient, name: str, content_type: str
) -> None:
    response = await client.get(f"/docs/assets/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert len(response.content) > 100


async def test_the_start_script_points_swagger_ui_at_the_document_of_the_same_origin(
    client: httpx.AsyncClient,
) -> None:
    script = (await client.get("/docs/assets/init.js")).text
    assert 'new URL("schema/openapi.json", document.baseURI)' in script
    assert "validatorUrl: null" in script  # the validator badge would send the document elsewhere
    assert "SwaggerUIBundle" in (await client.get("/docs/assets/swagger-ui-bundle.js")).text


async def test_an_asset_is_cached_for_long_under_a_url_that_changes_with_its_content(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get("/docs")).text
    (url,) = (u for u in linked(page) if "swagger-ui-bundle.js" in u)
    response = await client.get(url)
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "no-store" not in response.headers.get_list("cache-control")
    etag = response.headers["etag"]
    assert etag == f'"{url.rsplit("?v=", 1)[1]}"'
    again = await client.get(url, headers={"if-none-match": etag})
    assert again.status_code == 304
    assert again.content == b""
    stale = await client.get(url, headers={"if-none-match": '"0123"'})
    assert stale.status_code == 200
    assert stale.content == response.content


async def test_the_page_itself_is_revalidated_and_not_stored_as_an_asset(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.headers["cache-control"] == "no-cache"


async def test_the_page_may_run_only_the_applications_scripts(client: httpx.AsyncClient) -> None:
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in (await client.get("/docs")).headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["img-src"] == "'self' data:"
    assert policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"


async def asgi_get(app: Any, raw_path: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
    """GET ``raw_path`` as a server would pass it on (percent-escapes decoded in ``path``, dot segments kept),
    which an HTTP client would have normalised first."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(raw_path.decode("ascii")),
        "raw_path": raw_path,
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"shop")],
        "client": ("127.0.0.1", 50000),
        "server": ("shop", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    headers = dict(sent[0]["headers"])
    return sent[0]["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.parametrize(
    "raw_path",
    [
        b"/docs/assets/swagger-ui.js",  # in the package, but not served
        b"/docs/assets/swagger-ui-bundle.js.map",
        b"/docs/assets/index.html",
        b"/docs/assets/",
        b"/docs/assets/../../pyproject.toml",
        b"/docs/assets/..%2f..%2fpyproject.toml",
        b"/docs/assets/%2e%2e/%2e%2e/pyproject.toml",
        b"/docs/assets//etc/passwd",
        b"/docs/assets/%2fetc%2fpasswd",
        b"/docs/assets/INIT.JS",
    ],
)
async def test_a_file_outside_the_allow_list_is_not_found(application: Application, raw_path: bytes) -> None:
    app = create_asgi(application, manage_lifecycle=False)
    status, headers, body = await asgi_get(app, raw_path)
    assert status == 404
    assert headers[b"content-type"] == b"application/problem+json"
    assert msgspec.json.decode(body)["status"] == 404
    assert b"[tool" not in body
    assert b"root:" not in body
    status, _, body = await asgi_get(app, b"/docs/assets/init.js")  # the next good request is served
    assert status == 200
    assert b"SwaggerUIBundle" in body
