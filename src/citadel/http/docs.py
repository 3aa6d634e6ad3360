"""The docs page, ``GET /docs``: Swagger UI on the application's ``schema/openapi.json``, every file of it served
by the application itself.

Swagger UI's script and stylesheet come from the ``swagger-ui-py`` package (its ``static`` folder, located without
importing the package, which would import its adapters for other web frameworks), read once per process and
served at ``/docs/assets/{name}`` from an allow-list of names (exact routes: any other name is a 404). The page
runs no inline script: a small file of ours, ``init.js``, starts Swagger UI, so the page's content security
policy allows scripts from the application only (see ``headers``). Each asset's URL carries a digest of its
content, so browsers may keep it long (``immutable``), and a revalidation with its ``ETag`` is answered 304.
"""

from __future__ import annotations

import functools
import html
import importlib.util
from pathlib import Path

from citadel.http.assets import Asset, serve_asset
from citadel.http.routing import Endpoint, constant

__all__ = ["ASSETS_PATH", "DOCS_PATH", "docs_page", "docs_routes"]

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets/"

_HTML = b"text/html; charset=utf-8"
_VENDORED = {
    "swagger-ui-bundle.js": b"text/javascript; charset=utf-8",
    "swagger-ui.css": b"text/css; charset=utf-8",
    "index.css": b"text/css; charset=utf-8",
    "favicon-32x32.png": b"image/png",
}
# Relative URLs, so that the page works wherever the application is mounted. The validator would send the
# document to another origin: it is off.
_INIT = b"""window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({
    url: new URL("schema/openapi.json", document.baseURI).href,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
"""
_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" type="image/png" href="{favicon-32x32.png}">
<link rel="stylesheet" href="{swagger-ui.css}">
<link rel="stylesheet" href="{index.css}">
</head>
<body>
<div id="swagger-ui"><noscript>The docs need JavaScript; the raw document is
<a href="schema/openapi.json">schema/openapi.json</a>.</noscript></div>
<script src="{swagger-ui-bundle.js}"></script>
<script src="{init.js}"></script>
</body>
</html>
"""


def _static() -> Path:
    """The folder of Swagger UI's files in the ``swagger-ui-py`` package."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the docs page needs the swagger-ui-py package: pip install swagger-ui-py")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@functools.cache
def _assets() -> tuple[Asset, ...]:
    """Return the served files, read from the package the first time."""
    static = _static()
    vendored = [Asset(name, (static / name).read_bytes(), kind) for name, kind in _VENDORED.items()]
    return (*vendored, Asset("init.js", _INIT, b"text/javascript; charset=utf-8"))


def docs_page(title: str) -> str:
    """Return the docs page's HTML for an application titled ``title``."""
    page = _PAGE.replace("{title}", html.escape(title))
    for asset in _assets():
        page = page.replace(f"{{{asset.name}}}", html.escape(f"docs/assets/{asset.name}?v={asset.digest}"))
    return page


def docs_routes(title: str) -> list[tuple[str, str, Endpoint]]:
    """Return the routes (method, path, endpoint) of the docs page of an application titled ``title`` and of
    each of its assets."""
    page = constant((200, docs_page(title).encode(), _HTML, [(b"cache-control", b"no-cache")]))
    return [("GET", DOCS_PATH, page), *(("GET", ASSETS_PATH + asset.name, serve_asset(asset)) for asset in _assets())]
