"""The ASGI application any Citadel application gets for free, generated from its modules' contracts.

* every public command: ``POST /{module}/{command-in-kebab-case}``, JSON body of its fields; 200 with the
  handler's result and ``Citadel-Position``; ``Idempotency-Key`` makes retries safe;
* every public query: ``GET /{module}/{query-in-kebab-case}`` with its fields as query parameters, and
  ``min_position`` to wait (bounded) until the module's read models have caught up with a write;
* ``GET /health``, ``GET /ready``, ``GET /schema/openapi.json`` and the docs page ``GET /docs``;
* errors as RFC 9457 problem documents (see ``problems``).

The result is a plain Starlette application: mount it inside FastAPI or Starlette (then start and stop the
``Application`` in the parent's lifespan, or pass ``manage_lifecycle=False`` and do it yourself).
"""

from __future__ import annotations

import contextlib
import types
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route, Router

from citadel.app import Application
from citadel.context import ANONYMOUS, Actor, DispatchContext
from citadel.errors import CitadelError, InvalidMessage, RateLimited
from citadel.http.docs import docs_page
from citadel.http.headers import SecurityHeaders
from citadel.http.naming import command_path, query_path
from citadel.http.openapi import openapi_document
from citadel.http.problems import from_exception, problem, problem_response, validation_problem
from citadel.messages import Command, Message, Query
from citadel.security.ratelimit import RateLimiter, RateRule, rate_limit_headers
from citadel.topology import parse_position

__all__ = ["Authenticator", "create_asgi"]

Authenticator = Callable[[Request], Awaitable[Actor]]
"""Turns a request into the actor it speaks for (raise ``AccessDenied`` to refuse it)."""

_JSON = "application/json"
_encoder = msgspec.json.Encoder()
_EMPTY_OBJECT = b"{}"


async def _anonymous(request: Request) -> Actor:
    return ANONYMOUS


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_encoder.encode(value), status, headers=headers, media_type=_JSON)


def _failure(exc: BaseException, headers: dict[str, str] | None = None) -> Response:
    found, extra = from_exception(exc)
    return problem_response(found, {**headers, **extra} if headers else extra)


class _Endpoints:
    """Builds the endpoints of one application (kept together: they share settings)."""

    def __init__(
        self,
        application: Application,
        authenticate: Authenticator,
        *,
        max_body: int,
        default_wait: float,
        max_wait: float,
        limiter: RateLimiter | None = None,
        rate_rule: RateRule | None = None,
        rate_rules: Mapping[type[Message], RateRule] | None = None,
    ) -> None:
        self.application = application
        self.authenticate = authenticate
        self.max_body = max_body
        self.default_wait = default_wait
        self.max_wait = max_wait
        self.limiter = limiter
        self.rate_rule = rate_rule or RateRule(rate=50, burst=100)
        self.rate_rules = dict(rate_rules or {})

    async def _admit(self, request: Request, actor: Actor, message_type: type[Message]) -> dict[str, str]:
        """Take a token from the caller's bucket; return the rate-limit headers for the response.

        Raises:
            RateLimited: the bucket is empty (HTTP 429 with ``Retry-After``).
        """
        if self.limiter is None:
            return {}
        if actor.subject != "anonymous":
            caller = f"subject:{actor.subject}"
        else:
            caller = f"address:{request.client.host if request.client else 'unknown'}"
        decision = await self.limiter.check(caller, self.rate_rules.get(message_type, self.rate_rule))
        headers = rate_limit_headers(decision)
        if not decision.allowed:
            raise RateLimited(headers)
        return headers

    def command(self, command_type: type[Command]) -> Callable[[Request], Awaitable[Response]]:
        decoder = msgspec.json.Decoder(command_type)
        name = command_type.__name__
        application = self.application

        async def endpoint(request: Request) -> Response:
            body = await self._body(request)
            if isinstance(body, Response):
                return body
            try:
                command = decoder.decode(body or _EMPTY_OBJECT)
            except msgspec.ValidationError as exc:
                return problem_response(validation_problem(exc, name))
            except msgspec.DecodeError as exc:
                return problem_response(problem(400, "malformed-json", "Malformed JSON", str(exc)))
            key = request.headers.get("idempotency-key")
            if key is not None and not (0 < len(key) <= 255 and key.isprintable()):
                detail = "Idempotency-Key must be 1 to 255 printable characters"
                return problem_response(problem(400, "bad-idempotency-key", "Bad Idempotency-Key", detail))
            limits: dict[str, str] = {}
            try:
                actor = await self.authenticate(request)
                limits = await self._admit(request, actor, command_type)
                context = DispatchContext(
                    actor=actor,
                    idempotency_key=None if key is None else f"http:{actor.subject}:{key}",
                    correlation_id=request.headers.get("x-correlation-id", ""),
                )
                outcome = await application.execute(command, context)
            except Exception as exc:
                return _failure(exc, limits)
            result = outcome.result
            content = _EMPTY_OBJECT if result is None else _encoder.encode(result)
            limits["Citadel-Position"] = outcome.token
            return Response(content, 200, headers=limits, media_type=_JSON)

        return endpoint

    async def _body(self, request: Request) -> bytes | Response:
        declared = request.headers.get("content-length")
        too_big = problem(413, "too-large", "Request too large", f"the body may be at most {self.max_body} bytes")
        if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > self.max_body:
            return problem_response(too_big)
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                return problem_response(too_big)
            chunks.append(chunk)
        return b"".join(chunks)

    def query(self, module: str, query_type: type[Query]) -> Callable[[Request], Awaitable[Response]]:
        name = query_type.__name__
        fields = {f.encode_name: _is_list(f.type) for f in msgspec.structs.fields(query_type)}
        application = self.application
        modules = list(application.modules)

        async def endpoint(request: Request) -> Response:
            params = request.query_params
            data: dict[str, Any] = {}
            min_position, position_of = 0, ""
            for key in params:
                if key == "min_position":
                    try:
                        position_of, min_position = parse_position(params[key], modules)
                    except InvalidMessage as exc:
                        return problem_response(validation_problem(msgspec.ValidationError(str(exc)), name))
                elif key in fields:
                    data[key] = params.getlist(key) if fields[key] else params[key]
                else:
                    error = msgspec.ValidationError(f"Unknown parameter - at `$.{key}`")
                    return problem_response(validation_problem(error, name))
            try:
                query = msgspec.convert(data, query_type, strict=False)
            except msgspec.ValidationError as exc:
                return problem_response(validation_problem(exc, name))
            limits: dict[str, str] = {}
            try:
                actor = await self.authenticate(request)
                limits = await self._admit(request, actor, query_type)
                context = DispatchContext(
                    actor=actor, min_position=min_position, position_of=position_of, wait=self._wait(request)
                )
                result = await application.query(query, context)
            except Exception as exc:
                return _failure(exc, limits)
            return _json(result, headers=limits)

        return endpoint

    def _wait(self, request: Request) -> float:
        raw = request.headers.get("citadel-wait")
        try:
            wait = float(raw) if raw is not None else self.default_wait
        except ValueError:
            wait = self.default_wait
        return max(0.0, min(wait, self.max_wait))

    async def health(self, request: Request) -> Response:
        return _json({"status": "ok"})

    async def ready(self, request: Request) -> Response:
        application = self.application
        try:
            head = await application.store.head_position()
            projections = await application.projection_status()
        except CitadelError as exc:
            return _json({"status": "unavailable", "detail": str(exc)}, 503, {"Retry-After": "1"})
        consumers = application.consumers
        report: dict[str, Any] = {"status": "ready", "head": head}
        report["projections"] = [
            {
                "name": s.name,
                "module": s.module,
                "mode": s.mode,
                "position": s.position,
                "lag": s.lag,
                "running": s.running,
                "error": s.error,
            }
            for s in projections
        ]
        parked: dict[str, int] = {}
        for letter in await application.store.dead_letters():
            parked[letter.consumer] = parked.get(letter.consumer, 0) + 1
        report["dead_letters"] = parked  # events a consumer gave up on: each is missing from a read model
        report["process_managers"] = [
            {
                "name": name,
                "position": c.position,
                "lag": max(0, head - c.position),
                "running": c.running,
                "error": c.last_error,
            }
            for name, c in consumers.items()
            if name not in application.projections
        ]
        healthy = all(c.running for c in consumers.values())
        inbox = application.topology.inbox
        if inbox is not None:  # events of other services that this one's consumers have yet to import
            try:
                report["inbox"] = {"name": inbox.durable, "pending": await inbox.pending(), "running": inbox.running}
            except Exception as exc:
                report["inbox"] = {"name": inbox.durable, "pending": None, "running": False, "error": str(exc)}
                healthy = False
        if not healthy:
            report["status"] = "degraded"
        return _json(report, 200 if healthy else 503)


def _is_list(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_is_list(arg) for arg in typing.get_args(annotation))
    return False


def create_asgi(
    application: Application,
    *,
    authenticate: Authenticator | None = None,
    manage_lifecycle: bool = True,
    title: str = "Citadel application",
    max_body: int = 1 << 20,
    default_wait: float = 5.0,
    max_wait: float = 30.0,
    limiter: RateLimiter | None = None,
    rate_rule: RateRule | None = None,
    rate_rules: Mapping[type[Message], RateRule] | None = None,
) -> Starlette:
    """Return the ASGI application serving ``application``'s contracts over HTTP.

    Args:
        authenticate: maps a request to its actor (default: everyone is anonymous).
        manage_lifecycle: start and stop ``application`` with the ASGI lifespan.
        max_body: largest accepted request body in bytes (413 beyond).
        default_wait: how long ``min_position`` waits by default, in seconds (header ``Citadel-Wait``
            asks for another wait, up to ``max_wait``).
        limiter: token buckets per caller (subject, or client address when anonymous); None: no limits.
        rate_rule: the bucket of every command and query, unless ``rate_rules`` names one for its type.
    """
    endpoints = _Endpoints(
        application,
        authenticate or _anonymous,
        max_body=max_body,
        default_wait=default_wait,
        max_wait=max_wait,
        limiter=limiter,
        rate_rule=rate_rule,
        rate_rules=rate_rules,
    )
    routes: list[Route] = []
    for module in application.modules.values():
        for command_type in module.commands:
            if module.is_exposed(command_type):
                path = command_path(module.name, command_type.__name__)
                routes.append(Route(path, endpoints.command(command_type), methods=["POST"]))
        for query_type in module.queries:
            if module.is_exposed(query_type):
                path = query_path(module.name, query_type.__name__)
                routes.append(Route(path, endpoints.query(module.name, query_type), methods=["GET"]))
    document = openapi_document(application, title=title)
    document_bytes = _encoder.encode(document)

    async def openapi(request: Request) -> Response:
        return Response(document_bytes, media_type=_JSON)

    async def docs(request: Request) -> Response:
        return HTMLResponse(docs_page(title))

    routes += [
        Route("/health", endpoints.health, methods=["GET"]),
        Route("/ready", endpoints.ready, methods=["GET"]),
        Route("/schema/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            found = problem(404, "not-found", "Not found", f"no route {request.method} {request.url.path}")
        elif status == 405:
            found = problem(
                405, "method-not-allowed", "Method not allowed", f"{request.url.path} does not accept {request.method}"
            )
        else:
            found = problem(status, "http-error", "HTTP error", str(getattr(exc, "detail", "")))
        return problem_response(found)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            if manage_lifecycle:
                async with application:
                    yield
            else:
                yield
        finally:
            if limiter is not None:
                await limiter.close()

    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
        middleware=[Middleware(SecurityHeaders)],
    )
    exact = {(method, route.path): route.endpoint for route in routes for method in route.methods or ()}
    app.router = _ExactRouter(routes, lifespan=lifespan, exact=exact)
    return app


class _ExactRouter(Router):
    """Starlette's router, but a request for one of the contract routes (all exact paths) is found with one
    dictionary lookup instead of a match against every route in turn."""

    def __init__(self, routes: list[Route], *, lifespan: Any, exact: dict[tuple[str, str], Any]) -> None:
        super().__init__(routes, lifespan=lifespan)
        self._exact = exact

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path, root = scope["path"], scope.get("root_path", "")
            if root and path.startswith(root):  # mounted: match what follows the mount point
                path = path[len(root) :]
            endpoint = self._exact.get((scope["method"], path))
            if endpoint is not None:
                scope.setdefault("router", self)
                response = await endpoint(Request(scope, receive))
                await response(scope, receive, send)
                return
        await super().app(scope, receive, send)
