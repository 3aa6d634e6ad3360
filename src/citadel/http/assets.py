"""Static files the application serves itself (the docs page's, the console's): each named in its page's URL
with a digest of its content, so browsers keep it for a year and a new release is fetched at once, and answered
304 to a revalidation that names its ``ETag``."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

from starlette.types import Receive, Scope

from citadel.http.raw import Reply, header_map
from citadel.http.routing import Endpoint

__all__ = ["Asset", "serve_asset"]

_CACHED = b"public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Asset:
    """One served file: its name, content and content type."""

    name: str
    body: bytes
    content_type: bytes

    @functools.cached_property
    def digest(self) -> str:
        """A short digest of the content, for the URL's version and the ``ETag``."""
        return hashlib.sha256(self.body).hexdigest()[:20]


def serve_asset(asset: Asset) -> Endpoint:
    """The endpoint of ``asset``: its content, or 304 to a request that names its ``ETag``."""
    etag = b'"%s"' % asset.digest.encode()
    headers = [(b"cache-control", _CACHED), (b"etag", etag)]
    fresh: Reply = (200, asset.body, asset.content_type, headers)
    unchanged: Reply = (304, b"", asset.content_type, headers)

    async def endpoint(scope: Scope, receive: Receive) -> Reply:
        return unchanged if etag in header_map(scope).get(b"if-none-match", b"") else fresh

    return endpoint
