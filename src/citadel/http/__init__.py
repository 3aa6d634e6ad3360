"""HTTP: the ASGI application generated from module contracts, with problem details and OpenAPI."""

from __future__ import annotations

from citadel.http.asgi import Authenticator, create_asgi
from citadel.http.naming import command_path, query_path

__all__ = ["Authenticator", "command_path", "create_asgi", "query_path"]
