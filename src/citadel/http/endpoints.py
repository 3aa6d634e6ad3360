"""The endpoints of an application's commands and queries: each reads the ASGI scope, checks what the request
carries, and answers a ``Reply`` (see ``raw``).

What comes from the client is checked before any work: the body's size and shape, the query's parameters and
``min_position``, the ``Citadel-Wait``, ``Idempotency-Key`` and ``X-Correlation-Id`` headers. Bad input is a
problem document (400 or 422), never a 500.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message as ASGIMessage
from starlette.types import Receive, Scope

from citadel.app import Application
from citadel.context import ANONYMOUS, Actor, DispatchContext
from citadel.errors import InvalidMessage, RateLimited
from citadel.http.access_log import noted
from citadel.http.admission import caller_address
from citadel.http.problems import field_problem, problem, validation_problem
from citadel.http.raw import (
    JSON,
    RawHeaders,
    Reply,
    failure_reply,
    header_map,
    malformed_url,
    problem_reply,
    query_pairs,
    safe_id,
)
from citadel.http.routing import Endpoint
from citadel.messages import Command, Message, Query
from citadel.security.ratelimit import RateLimiter, RateRule, rate_limit_headers, rate_limit_raw_headers
from citadel.topology import parse_position

if TYPE_CHECKING:
    from citadel.metrics.registry import Metrics

__all__ = ["Authenticator", "Endpoints", "anonymous", "replay"]

Authenticator = Callable[[Request], Awaitable[Actor]]
"""Turns a request into the actor it speaks for (raise ``AccessDenied`` to refuse it)."""

_encoder = msgspec.json.Encoder()
_EMPTY_OBJECT = b"{}"
_BAD_KEY = problem_reply(
    problem(
        400,
        "bad-idempotency-key",
        "Bad Idempotency-Key",
        "Idempotency-Key must be 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'",
    )
)


async def anonymous(request: Request) -> Actor:
    """The default authenticator: every request is anonymous."""
    return ANONYMOUS


def replay(body: bytes, receive: Receive) -> Receive:
    """Return a receive channel that gives ``body`` again (for an authenticator that reads it), then ``receive``'s."""
    replayed = False

    async def channel() -> ASGIMessage:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return channel


class Endpoints:
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
        recorded: Metrics | None = None,
    ) -> None:
        self.application = application
        self.authenticate = authenticate
        self.max_body = max_body
        self.default_wait = default_wait
        self.max_wait = max_wait
        self.limiter = limiter
        self.rate_rule = rate_rule or RateRule(rate=50, burst=100)
        self.rate_rules = dict(rate_rules or {})
        self.refusals = None if recorded is None else recorded.rate_limit_refusals.labels("caller")
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
        caller = f"subject:{actor.subject}" if actor.subject != "anonymous" else caller_address(scope)
        decision = await self.limiter.check(caller, rule)
        if not decision.allowed:
            if self.refusals is not None:
                self.refusals.inc()
            raise RateLimited(rate_limit_headers(decision))
        return rate_limit_raw_headers(decision)

    def command(self, command_type: type[Command]) -> Endpoint:
        """Return the endpoint of ``command_type``: its JSON body in, the handler's result and position out."""
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
            key = safe_id(raw_key)
            if key is None and raw_key is not None:  # refused, not dropped: the client relies on it
                return _BAD_KEY
            limits: RawHeaders = []
            try:
                actor = await self.authenticate(Request(scope, replay(body, receive)))
                limits = await self._admit(scope, actor, rule)
                context = noted(
                    DispatchContext(
                        actor=actor,
                        idempotency_key=None if key is None else f"http:{actor.subject}:{key}",
                        correlation_id=safe_id(headers.get(b"x-correlation-id")) or "",  # "": a new one
                    )
                )
                outcome = await application.execute(command, context)
            except Exception as exc:
                return failure_reply(exc, limits)
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
        if declared is not None and declared.isdigit():
            digits = declared.lstrip(b"0")  # counted before int(), which refuses thousands of digits
            if len(digits) > len(str(self.max_body)) or int(digits or b"0") > self.max_body:
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
        """Return the endpoint of ``query_type``: its fields as query parameters in, the handler's result out."""
        name = query_type.__name__
        fields = {f.encode_name: _is_list(f.type) for f in msgspec.structs.fields(query_type)}
        application = self.application
        modules = list(application.modules)
        rule = self.rate_rules.get(query_type, self.rate_rule)
        bad_wait = problem_reply(
            field_problem("Citadel-Wait", f"Expected a number of seconds from 0 to {self.max_wait:g}", name)
        )

        async def endpoint(scope: Scope, receive: Receive) -> Reply:
            try:
                pairs = query_pairs(scope["query_string"])
            except ValueError as exc:
                return malformed_url(str(exc))
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
            wait = self._wait(scope)
            if wait is None:
                return bad_wait
            try:
                query = msgspec.convert(data, query_type, strict=False)
            except msgspec.ValidationError as exc:
                return problem_reply(validation_problem(exc, name))
            limits: RawHeaders = []
            try:
                actor = await self.authenticate(Request(scope, receive))
                limits = await self._admit(scope, actor, rule)
                context = noted(
                    DispatchContext(
                        actor=actor,
                        min_position=min_position,
                        position_of=position_of,
                        wait=wait,
                        correlation_id=_correlation_id(scope),
                    )
                )
                result = await application.query(query, context)
            except Exception as exc:
                return failure_reply(exc, limits)
            return 200, _encoder.encode(result), JSON, limits

        return endpoint

    def _wait(self, scope: Scope) -> float | None:
        """The seconds a query may wait for its ``min_position``: header ``Citadel-Wait``, else the default; None
        when the header is not a finite number from 0 to ``max_wait``."""
        raw: bytes | None = None
        for header, value in scope["headers"]:
            if header == b"citadel-wait":
                raw = value
                break
        if raw is None:
            return self.default_wait
        if not raw.isascii():
            return None
        try:
            wait = float(raw)
        except ValueError:
            return None
        return wait if 0.0 <= wait <= self.max_wait else None  # NaN fails both comparisons; inf the second


def _correlation_id(scope: Scope) -> str:
    """The request's ``X-Correlation-Id`` if ``safe_id`` allows it, else "" (the dispatch gets a new one)."""
    for header, value in scope["headers"]:
        if header == b"x-correlation-id":
            return safe_id(value) or ""
    return ""


def _is_list(annotation: Any) -> bool:
    """Whether a field of this type is an array (its query parameter may repeat; one value is a list of one)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:  # constraints (msgspec.Meta) around the type
        return _is_list(typing.get_args(annotation)[0])
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple, set, frozenset):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_is_list(arg) for arg in typing.get_args(annotation))
    return False
