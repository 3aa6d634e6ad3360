"""Serving exact routes straight from the ASGI scope, inside a Starlette application.

Every route of the generated app is an exact path, so a request is matched with one dictionary lookup on
``(method, path)`` and its endpoint answers the ASGI messages itself, security headers included: no middleware
stack, no ``Request`` or ``Response`` objects. Unknown routes, wrong methods and the lifespan go through
Starlette as usual (its ``Route`` objects stay, so 404 and 405 are told apart as before), once their path is
known to be readable (400 otherwise: a malformed percent-escape, or bytes that are not UTF-8).
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from citadel.http.admission import Admission
from citadel.http.headers import SecurityHeaders, security_headers
from citadel.http.problems import problem
from citadel.http.raw import malformed_url, problem_reply, respond, unreadable_path
from citadel.http.types import Endpoint, RawHeaders, Reply
from citadel.tracing import context_from, enabled, http_server_span, record_status
from citadel.tracing.carriers import TRACEPARENT_LENGTH

__all__ = ["Endpoint", "constant", "exact_app"]

_INTERNAL_ERROR = problem_reply(problem(500, "internal-error", "Internal error", "an unexpected error occurred"))


def constant(reply: Reply) -> Endpoint:
    """Return an endpoint that always answers ``reply``."""

    async def endpoint(scope: Scope, receive: Receive) -> Reply:
        return reply

    return endpoint


def exact_app(
    routes: Sequence[tuple[str, str, Endpoint]], *, admission: Admission | None = None, **options: Any
) -> Starlette:
    """Return a Starlette application serving ``routes`` (method, path, endpoint) directly.

    ``admission`` sees every HTTP request first (its client address, its address's bucket); ``options`` go to
    ``Starlette`` (exception handlers and lifespan for what is not one of the routes).
    """
    starlette_routes = [Route(path, _Routed(endpoint), methods=[method]) for method, path, endpoint in routes]
    exact = {
        (method, route.path): (endpoint, security_headers(route.path, "http"), security_headers(route.path, "https"))
        for route, (_, _, endpoint) in zip(starlette_routes, routes, strict=True)
        for method in route.methods or ()  # GET routes answer HEAD too, as Starlette's do
    }
    return _ExactStarlette(
        exact, admission or Admission(), routes=starlette_routes, middleware=[Middleware(SecurityHeaders)], **options
    )


async def _serve(endpoint: Endpoint, scope: Scope, receive: Receive, send: Send, extra: RawHeaders) -> None:
    try:
        reply = await endpoint(scope, receive)
    except Exception:  # a bug, or the client went away: answer (if it still listens), and let the server log it
        await respond(send, _INTERNAL_ERROR, extra)
        raise
    await respond(send, reply, extra)


def _traceparent_of(scope: Scope) -> str | None:
    """The request's first ``traceparent`` header, if it has the one length a valid one has (no other is read)."""
    for name, value in scope["headers"]:
        if name == b"traceparent":
            return value.decode("latin-1") if len(value) == TRACEPARENT_LENGTH else None
    return None


class _Routed:
    """An endpoint as the ASGI app of a Starlette route, where Starlette's middleware adds the security headers
    (reached only when ``_ExactStarlette`` does not find the route itself)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _serve(self.endpoint, scope, receive, send, [])


class _ExactStarlette(Starlette):
    """Starlette, but a request for one of its exact routes goes straight to the endpoint (unless middleware was
    added: then every request passes through it, as in any Starlette application)."""

    def __init__(
        self,
        exact: dict[tuple[str, str], tuple[Endpoint, RawHeaders, RawHeaders]],
        admission: Admission,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self._exact = exact
        self._admission = admission

    def add_middleware(self, middleware_class: Any, *args: Any, **kwargs: Any) -> None:
        super().add_middleware(middleware_class, *args, **kwargs)
        self._exact = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if enabled() and scope["type"] == "http":
            await self._traced(scope, receive, send)
        else:
            await self._answer(scope, receive, send)

    async def _traced(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a request inside its SERVER span: named by its route (when it is one of the exact ones), a child
        of the caller's span when a valid ``traceparent`` came with it, else the root of a new trace."""
        path, root = scope["path"], scope.get("root_path", "")
        routed = path[len(root) :] if root and path.startswith(root) else path
        route = routed if (scope["method"], routed) in self._exact else None
        status = 500  # unless an answer starts: the request failed before one

        async def noted(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        parent = context_from(_traceparent_of(scope))
        scheme = scope.get("scheme", "http")
        with http_server_span(scope["method"], route, path=path, scheme=scheme, parent=parent) as span:
            try:
                await self._answer(scope, receive, noted)
            finally:
                record_status(span, status)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refused = await self._admission.refusal(scope)
            if refused is not None:
                await respond(send, refused, security_headers(scope["path"], scope.get("scheme")))
                return
            path, root = scope["path"], scope.get("root_path", "")
            if root and path.startswith(root):  # mounted: match what follows the mount point
                path = path[len(root) :]
            found = self._exact.get((scope["method"], path))
            # A route is plain ASCII, so a request that found one has a readable path (but for the prefix of a
            # mount): only the others pay for the check, before Starlette's routing reads the path.
            if found is None or root:
                unreadable = unreadable_path(scope)
                if unreadable is not None:
                    extra = security_headers(path, scope.get("scheme"))
                    await respond(send, malformed_url(unreadable), extra)
                    return
            if found is not None:
                scope["app"] = self
                scope.setdefault("router", self.router)
                endpoint, plain, secure = found
                await _serve(endpoint, scope, receive, send, secure if scope.get("scheme") == "https" else plain)
                return
        await super().__call__(scope, receive, send)
