"""The console's pages from Jinja2 templates, and its stylesheet and script, all package data of ``citadel.console``.

Autoescaping is on for every template, so what the store holds (stream names, payloads, error messages) is shown
as text, never as markup. The pages carry no inline script or style: ``console.css`` and ``console.js`` are
files, served at ``/console/assets/{name}`` with a digest of their content in the URL (kept long by browsers,
answered 304 to a revalidation), so the page's content security policy may allow the application's own files
and nothing else.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.resources
from typing import Any

import jinja2

from citadel.console.web import HTML
from citadel.http.assets import Asset, serve_asset
from citadel.http.raw import Reply

__all__ = ["Asset", "assets", "page", "serve_asset"]

_TYPES = {
    ".css": b"text/css; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".svg": b"image/svg+xml",
}


@functools.cache
def assets() -> dict[str, Asset]:
    """The console's static files by name, read from the package the first time."""
    folder = importlib.resources.files("citadel.console") / "static"
    found = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if suffix in _TYPES:
            found[entry.name] = Asset(entry.name, entry.read_bytes(), _TYPES[suffix])
    return found


def _when(seconds: float) -> str:
    """A stored time as UTC ISO 8601, to the millisecond."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="milliseconds")


@functools.cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("citadel.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["when"] = _when
    return environment


def page(name: str, base: str, status: int = 200, **values: Any) -> Reply:
    """Render template ``name`` with ``values`` (and ``base``, the console's URL, with its assets' URLs)."""
    urls = {asset.name: f"{base}/assets/{asset.name}?v={asset.digest}" for asset in assets().values()}
    body = _environment().get_template(name).render(base=base, asset=urls, **values)
    return status, body.encode(), HTML, []
