"""The ASGI application any Citadel application gets for free, generated from its modules' contracts.

* every public command: ``POST /{module}/{command-in-kebab-case}``, JSON body of its fields; 200 with the
  handler's result and ``Citadel-Position``; ``Idempotency-Key`` makes retries safe;
* every public query: ``GET /{module}/{query-in-kebab-case}`` with its fields as query parameters, and
  ``min_position`` to wait (bounded) until the module's read models have caught up with a write;
* ``GET /health``, ``GET /ready``, ``GET /schema/openapi.json`` and the docs page ``GET /docs``;
* errors as RFC 9457 problem documents (see ``problems``).

The result is a Starlette application: mount it inside FastAPI or Starlette (then start and stop the
``Application`` in the parent's lifespan, or pass ``manage_lifecycle=False`` and do it yourself). Its own
routes skip Starlette's middleware and routing: found with one dictionary lookup, they read the ASGI scope and
answer ASGI messages directly (see ``routing``); unknown routes, wrong methods and the lifespan go through
Starlette.
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
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Message as ASGIMessage
from starlette.types import Receive, Scope

from citadel.app import Application
from citadel.context import ANONYMOUS, Actor, DispatchContext
from citadel.errors import CitadelError, InvalidMessage, RateLimited
from citadel.http.docs import docs_page
from citadel.http.naming import command_path, query_path
from citadel.http.openapi import openapi_document
from citadel.http.problems import from_exception, problem, problem_response, validation_problem
from citadel.http.raw import (
    JSON,
    RawHeaders,
    Reply,
    encode_headers,
    header_map,
    json_reply,
    problem_reply,
    query_pairs,
)
from citadel.http.routing import Endpoint, constant, exact_app
from citadel.messages import Command, Message, Query
from citadel.security.ratelimit import RateLimiter, RateRule, rate_limit_headers, rate_limit_raw_headers
from citadel.topology import parse_position

__all__ = ["Authenticator", "create_asgi"]

Authenticator = Callable[[Request], Awaitable[Actor]]
"""Turns a request into the actor it speaks for (raise ``AccessDenied`` to refuse it)."""

_encoder = msgspec.json.Encoder()
_EMPTY_OBJECT = b"{}"


async def _anonymous(request: Request) -> Actor:
    return ANONYMOUS


def _replay(body: bytes, receive: Receive) -> Receive:
    """Return a receive channel that gives ``body`` again (for an authenticator that reads it), then ``receive``'s."""
    replayed = False

    async def replay() -> ASGIMessage:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _failure(exc: BaseException, limits: RawHeaders) -> Reply:
    found, extra = from_exception(exc)
    if not extra:
        return problem_reply(found, limits)
    raw = encode_headers(extra)
    replaced = {name for name, _ in raw}  # the error's headers win over the rate limit's of the same name
    return problem_reply(found, [*(h for h in limits if h[0] not in replaced), *raw])


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
        self.too_big = problem_reply(
            problem(413, "too-large", "Request too large", f"the body may be at most {max_body} bytes")
        )

    async def _admit(self, scope: Scope, actor: Actor, rule: RateRule) -> RawHeaders:
        """Take a token from the caller's bucket; return the rate-limit headers for the response.

        Raises:
            RateLimited: the bucket is empty (HTTP 429 with ``Retry-After``).
        """
        if self.limiter is None:
            return []
        if actor.subject != "anonymous":
            caller = f"subject:{actor.subject}"
        else:
            client = scope.get("client")
            caller = f"address:{client[0] if client else 'unknown'}"
        decision = await self.limiter.check(caller, rule)
        if not decision.allowed:
            raise RateLimited(rate_limit_headers(decision))
        return rate_limit_raw_headers(decision)

    def command(self, command_type: type[Command]) -> Endpoint:
        decoder = msgspec.json.Decoder(command_type)
        name = command_type.__name__
        application = self.application
        rule = self.rate_rules.get(command_type, self.rate_rule)

        async def endpoint(scope: Scope, receive: Receive) -> Reply:
            headers = header_map(scope)
            body = await self._body(headers, receive)
            if body is None:
                return self.too_big
            try:
                command = decoder.decode(body or _EMPTY_OBJECT)
            except msgspec.ValidationError as exc:
                return problem_reply(validation_problem(exc, name))
            except msgspec.DecodeError as exc:
                return problem_reply(problem(400, "malformed-json", "Malformed JSON", str(exc)))
            raw_key = headers.get(b"idempotency-key")
            key = None if raw_key is None else raw_key.decode("latin-1")
            if key is not None and not (0 < len(key) <= 255 and key.isprintable()):
                detail = "Idempotency-Key must be 1 to 255 printable characters"
                return problem_reply(problem(400, "bad-idempotency-key", "Bad Idempotency-Key", detail))
            limits: RawHeaders = []
            try:
                actor = await self.authenticate(Request(scope, _replay(body, receive)))
                limits = await self._admit(scope, actor, rule)
                context = DispatchContext(
                    actor=actor,
                    idempotency_key=None if key is None else f"http:{actor.subject}:{key}",
                    correlation_id=headers.get(b"x-correlation-id", b"").decode("latin-1"),
                )
                outcome = await application.execute(command, context)
            except Exception as exc:
                return _failure(exc, limits)
            result = outcome.result
            content = _EMPTY_OBJECT if result is None else _encoder.encode(result)
            return 200, content, JSON, [*limits, (b"citadel-position", outcome.token.encode("latin-1"))]

        return endpoint

    async def _body(self, headers: dict[bytes, bytes], receive: Receive) -> bytes | None:
        """Read the request's body; None when it is larger than ``max_body``.

        Raises:
            ClientDisconnect: the client went away before sending it all.
        """
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            return None
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def query(self, module: str, query_type: type[Query]) -> Endpoint:
        name = query_type.__name__
        fields = {f.encode_name: _is_list(f.type) for f in msgspec.structs.fields(query_type)}
        application = self.application
        modules = list(application.modules)
        rule = self.rate_rules.get(query_type, self.rate_rule)

        async def endpoint(scope: Scope, receive: Receive) -> Reply:
            pairs = query_pairs(scope["query_string"])
            params = dict(pairs)  # the last value of a repeated parameter, in order of first appearance
            data: dict[str, Any] = {}
            min_position, position_of = 0, ""
            for key, value in params.items():
                if key == "min_position":
                    try:
                        position_of, min_position = parse_position(value, modules)
                    except InvalidMessage as exc:
                        return problem_reply(validation_problem(msgspec.ValidationError(str(exc)), name))
                elif key in fields:
                    data[key] = [v for k, v in pairs if k == key] if fields[key] else value
                else:
                    error = msgspec.ValidationError(f"Unknown parameter - at `$.{key}`")
                    return problem_reply(validation_problem(error, name))
            try:
                query = msgspec.convert(data, query_type, strict=False)
            except msgspec.ValidationError as exc:
                return problem_reply(validation_problem(exc, name))
            limits: RawHeaders = []
            try:
                actor = await self.authenticate(Request(scope, receive))
                limits = await self._admit(scope, actor, rule)
                context = DispatchContext(
                    actor=actor, min_position=min_position, position_of=position_of, wait=self._wait(scope)
                )
                result = await application.query(query, context)
            except Exception as exc:
                return _failure(exc, limits)
            return 200, _encoder.encode(result), JSON, limits

        return endpoint

    def _wait(self, scope: Scope) -> float:
        raw = None
        for header, value in scope["headers"]:
            if header == b"citadel-wait":
                raw = value
                break
        try:
            wait = float(raw) if raw is not None else self.default_wait
        except ValueError:
            wait = self.default_wait
        return max(0.0, min(wait, self.max_wait))

    async def ready(self, scope: Scope, receive: Receive) -> Reply:
        application = self.application
        try:
            head = await application.store.head_position()
            projections = await application.projection_status()
        except CitadelError as exc:
            return json_reply({"status": "unavailable", "detail": str(exc)}, 503, [(b"retry-after", b"1")])
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
        return json_reply(report, 200 if healthy else 503)


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
    routes: list[tuple[str, str, Endpoint]] = []
    for module in application.modules.values():
        for command_type in module.commands:
            if module.is_exposed(command_type):
                path = command_path(module.name, command_type.__name__)
                routes.append(("POST", path, endpoints.command(command_type)))
        for query_type in module.queries:
            if module.is_exposed(query_type):
                path = query_path(module.name, query_type.__name__)
                routes.append(("GET", path, endpoints.query(module.name, query_type)))
    openapi = constant((200, _encoder.encode(openapi_document(application, title=title)), JSON, []))
    docs = constant((200, docs_page(title).encode(), b"text/html; charset=utf-8", []))
    routes += [
        ("GET", "/health", constant(json_reply({"status": "ok"}))),
        ("GET", "/ready", endpoints.ready),
        ("GET", "/schema/openapi.json", openapi),
        ("GET", "/docs", docs),
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

    return exact_app(routes, exception_handlers={HTTPException: http_error}, lifespan=lifespan)
