"""The ASGI application any Citadel application gets for free, generated from its modules' contracts.

* every public command: ``POST /{module}/{command-in-kebab-case}``, JSON body of its fields; 200 with the
  handler's result and ``Citadel-Position``; ``Idempotency-Key`` makes retries safe;
* every public query: ``GET /{module}/{query-in-kebab-case}`` with its fields as query parameters, and
  ``min_position`` to wait (bounded) until the module's read models have caught up with a write;
* ``GET /health``, ``GET /ready`` (its details for administrators only, see ``readiness``),
  ``GET /schema/openapi.json``, the docs page ``GET /docs`` and ``GET /metrics`` (Prometheus, for
  administrators and the scraper, see ``citadel.metrics.scrape``);
* errors as RFC 9457 problem documents (see ``problems``); bad input, a malformed URL included, is never a 500.

The result is a Starlette application: mount it inside FastAPI or Starlette (then start and stop the
``Application`` in the parent's lifespan, or pass ``manage_lifecycle=False`` and do it yourself). Its own
routes skip Starlette's middleware and routing: found with one dictionary lookup, they read the ASGI scope and
answer ASGI messages directly (see ``routing``); unknown routes, wrong methods and the lifespan go through
Starlette.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from citadel.app import Application
from citadel.console import console_routes
from citadel.http.access_log import log_request
from citadel.http.access_log import log_requests as logged
from citadel.http.admission import Admission
from citadel.http.docs import docs_routes
from citadel.http.endpoints import Authenticator, Endpoints, anonymous
from citadel.http.naming import command_path, query_path
from citadel.http.openapi import openapi_document
from citadel.http.problems import problem, problem_response
from citadel.http.raw import JSON, json_reply
from citadel.http.readiness import readiness
from citadel.http.routing import Endpoint, constant, exact_app
from citadel.http.scrape import metrics_endpoint
from citadel.messages import Message
from citadel.metrics.instrument import OTHER_ROUTE, count_requests, instrument, method_label, status_counter
from citadel.metrics.registry import metrics as process_metrics
from citadel.metrics.scrape import ConsumerWatch
from citadel.security.ratelimit import RateLimiter, RateRule

__all__ = ["Authenticator", "create_asgi"]

_encoder = msgspec.json.Encoder()


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
    address_limiter: RateLimiter | None = None,
    address_rule: RateRule | None = None,
    trusted_proxies: Iterable[str] = (),
    metrics: bool = True,
    metrics_token: str | None = None,
    log_requests: bool = True,
) -> Starlette:
    """Return the ASGI application serving ``application``'s contracts over HTTP.

    Args:
        authenticate: maps a request to its actor (default: everyone is anonymous). Only an identified actor
            holding one of the policy's superuser roles (``admin`` without a policy) sees ``/ready``'s details.
        manage_lifecycle: start and stop ``application`` with the ASGI lifespan.
        title: the title of the OpenAPI document and the docs page, unless the application has its own.
        max_body: largest accepted request body in bytes (413 beyond).
        default_wait: how long ``min_position`` waits by default, in seconds (header ``Citadel-Wait``
            asks for another wait, from 0 to ``max_wait``; any other value is refused with 422).
        limiter: token buckets per caller (subject, or client address when anonymous); None: no limits.
        rate_rule: the bucket of every command and query, unless ``rate_rules`` names one for its type.
        address_limiter, address_rule: the bucket of each client address, taken by every request before
            authentication (``citadel.http.admission``); none without a rule.
        trusted_proxies: addresses or networks of reverse proxies whose ``Forwarded`` or ``X-Forwarded-For``
            headers name the client (for the buckets and the logs).
        metrics: serve ``GET /metrics`` and record requests, dispatches and commits (``citadel.metrics``).
        metrics_token: the bearer token a scraper sends to ``/metrics``; administrators may read it too.
        log_requests: log one line per request on ``citadel.http.access`` (see ``access_log``); failures are
            logged either way.

    Raises:
        ConfigurationError: a trusted proxy is not an address or network.
    """
    recorded = process_metrics() if metrics else None
    admission = Admission(
        trusted_proxies=trusted_proxies, limiter=address_limiter, rule=address_rule, recorded=recorded
    )
    authenticate = authenticate or anonymous
    endpoints = Endpoints(
        application,
        authenticate,
        max_body=max_body,
        default_wait=default_wait,
        max_wait=max_wait,
        limiter=limiter,
        rate_rule=rate_rule,
        rate_rules=rate_rules,
        recorded=recorded,
    )
    admins = {"admin"} if application.policy is None else application.policy.superusers
    routes: list[tuple[str, str, Endpoint]] = []
    message_types: dict[str, str] = {}  # a route's message's stable name, for its log lines
    for module in application.modules.values():
        for command_type in module.commands:
            if module.is_exposed(command_type):
                path = command_path(module.name, command_type.__name__)
                routes.append(("POST", path, endpoints.command(command_type)))
                message_types[path] = module.message_name(command_type)
        for query_type in module.queries:
            if module.is_exposed(query_type):
                path = query_path(module.name, query_type.__name__)
                routes.append(("GET", path, endpoints.query(module.name, query_type)))
                message_types[path] = module.message_name(query_type)
    title = application.title or title
    document = openapi_document(application, title=title, max_body=max_body, max_wait=max_wait)
    openapi = constant((200, _encoder.encode(document), JSON, []))
    routes += [
        ("GET", "/health", constant(json_reply({"status": "ok"}))),
        ("GET", "/ready", readiness(application, authenticate, admins)),
        ("GET", "/schema/openapi.json", openapi),
        *docs_routes(title),
    ]
    routes += console_routes(application, authenticate, admins, taken=routes)  # /console, for administrators
    watch = None
    unrouted: dict[str, Callable[[int], None]] = {}
    if recorded is not None:
        instrument(application, recorded)
        watch = ConsumerWatch(application, recorded)
        routes.append(("GET", "/metrics", metrics_endpoint(watch, authenticate, admins, metrics_token)))
        routes = [(method, path, count_requests(e, recorded, path, method)) for method, path, e in routes]
    routes = [
        (method, path, logged(e, path, method, message_types.get(path), lines=log_requests))
        for method, path, e in routes
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        headers = exc.headers if isinstance(exc, HTTPException) else None  # a 405's ``Allow`` (RFC 9110)
        if status == 404:
            found = problem(404, "not-found", "Not found", f"no route {request.method} {request.url.path}")
        elif status == 405:
            found = problem(
                405, "method-not-allowed", "Method not allowed", f"{request.url.path} does not accept {request.method}"
            )
        else:
            found = problem(status, "http-error", "HTTP error", str(getattr(exc, "detail", "")))
        if recorded is not None:
            method = method_label(request.method)
            count = unrouted.get(method)
            if count is None:
                count = unrouted[method] = status_counter(recorded, OTHER_ROUTE, method)
            count(status)
        if log_requests:
            log_request(method_label(request.method), OTHER_ROUTE, status, {"problem": found.type})
        return problem_response(found, dict(headers) if headers else None)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            async with contextlib.AsyncExitStack() as stack:
                if manage_lifecycle:
                    await stack.enter_async_context(application)
                if watch is not None:
                    await stack.enter_async_context(watch.syncing(1.0))
                yield
        finally:
            if limiter is not None:
                await limiter.close()
            await admission.close()

    return exact_app(routes, admission=admission, exception_handlers={HTTPException: http_error}, lifespan=lifespan)
