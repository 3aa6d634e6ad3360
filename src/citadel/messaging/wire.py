"""Messages on the wire: how a command, a query, their answer and an integration event travel between services.

A request is the message's JSON and headers naming its type and its dispatch context (actor, correlation,
causation, idempotency key, and for queries the position to wait for). An answer is either the handler's
result as JSON with the position it wrote, or an error: its class name and message, turned back into the same
exception on the caller's side, so a remote module fails as a local one would. An unexpected error (a bug, a
driver failure) travels without its text, which may hold what the caller must not see: it is logged where it
happened, with the correlation id both sides log.

Every message is signed (``citadel.messaging.signing``): ``Citadel-Signature: <key id>:<tag>`` and
``Citadel-Timestamp`` (milliseconds since the epoch). The tag covers the kind (``request``, ``reply``,
``event``, ``published``), the NATS subject, the body's SHA-256 and these fields, in this order: type, actor,
roles (sorted), correlation, causation, message id (an event's ``Nats-Msg-Id``), idempotency key, min position,
position of, wait, schema version, timestamp, and for a reply the request's message id, position, replayed flag
and error name; a message that carries ``Citadel-Stream`` (an event sealed with its subject's key) ends with that
stream id and ``Citadel-Version``. A receiver verifies before it reads anything else: ``context_from`` only takes
what ``verify`` returned.

While tracing is on (``citadel.tracing``), a request carries the W3C ``traceparent`` of its ``send`` span and an
event the one stored with it, tagged apart in ``Citadel-Trace-Tag`` (kind ``trace``, bound to the message's
signature): ``verify`` keeps it only when that tag verifies, and drops it otherwise, so a forged or altered one
starts a new trace and never gets a message refused.

Besides those kinds, ``key`` asks the service of a module for a data subject's key (``citadel.messaging.keyshare``)
and ``forgotten`` announces that a service forgot subjects (``citadel.messaging.forgetting``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, NewType

from citadel import errors
from citadel.context import Actor, DispatchContext
from citadel.errors import UnverifiedMessage
from citadel.messaging.signing import ServiceKeys, canonical
from citadel.tracing import context_from as trace_context
from citadel.tracing import enabled, process_span, traceparent

__all__ = [
    "EVENT",
    "FORGOTTEN",
    "KEY",
    "PUBLISHED",
    "REPLY",
    "REQUEST",
    "TRACEPARENT",
    "Verified",
    "context_from",
    "error_answer",
    "error_from",
    "error_headers",
    "headers_of",
    "is_unexpected",
    "served_span",
    "sign",
    "verify",
]

_ERRORS: dict[str, type[Exception]] = {
    name: value
    for name in errors.__all__
    if isinstance(value := getattr(errors, name), type) and issubclass(value, Exception)
}
_FOR_CALLER = (
    errors.DomainError,
    errors.InvalidMessage,
    errors.UnknownMessage,
    errors.IdempotencyConflict,
    errors.ConcurrencyError,
    errors.AccessDenied,
    errors.ServiceUnavailable,
)
"""Errors whose message is meant for the caller; any other error's text stays in the service that raised it."""
_CALLER_NAMES = frozenset(name for name, cls in _ERRORS.items() if issubclass(cls, _FOR_CALLER))

REQUEST, REPLY, EVENT, PUBLISHED = "request", "reply", "event", "published"
KEY, FORGOTTEN = "key", "forgotten"
KEPT = frozenset({EVENT, FORGOTTEN})
"""Kinds JetStream keeps: named by their ``Nats-Msg-Id``, and not refused for their age."""
FUTURE = 5.0
"""Seconds a timestamp may lie ahead of this clock (the services' clocks differ a little)."""

TYPE = "Citadel-Type"
ACTOR = "Citadel-Actor"
ROLES = "Citadel-Roles"
CORRELATION = "Citadel-Correlation"
CAUSATION = "Citadel-Causation"
MESSAGE_ID = "Citadel-Message-Id"
EVENT_ID = "Nats-Msg-Id"
IDEMPOTENCY = "Citadel-Idempotency-Key"
MIN_POSITION = "Citadel-Min-Position"
POSITION_OF = "Citadel-Position-Of"
WAIT = "Citadel-Wait"
SCHEMA_VERSION = "Citadel-Schema-Version"
TIMESTAMP = "Citadel-Timestamp"
IN_REPLY_TO = "Citadel-In-Reply-To"
POSITION = "Citadel-Position"
REPLAYED = "Citadel-Replayed"
ERROR = "Citadel-Error"
SIGNATURE = "Citadel-Signature"
STREAM = "Citadel-Stream"
VERSION = "Citadel-Version"
TRACEPARENT = "traceparent"
TRACE_TAG = "Citadel-Trace-Tag"
_TRACE = "trace"

_BEFORE_ROLES = (TYPE, ACTOR)
_AFTER_ROLES = (CORRELATION, CAUSATION)
_AFTER_ID = (IDEMPOTENCY, MIN_POSITION, POSITION_OF, WAIT, SCHEMA_VERSION, TIMESTAMP, IN_REPLY_TO, POSITION, REPLAYED)
_NEWLINES = str.maketrans({"\r": " ", "\n": " "})

Verified = NewType("Verified", dict[str, str])
"""Headers whose signature verified: the only headers a context is built from."""


def headers_of(name: str, context: DispatchContext) -> dict[str, str]:
    """The headers of a request for message ``name`` dispatched in ``context`` (unsigned yet)."""
    headers = {
        TYPE: name,
        ACTOR: context.actor.subject,
        ROLES: ",".join(sorted(context.actor.roles)),
        CORRELATION: context.correlation_id,
        MESSAGE_ID: context.message_id,
    }
    if context.causation_id:
        headers[CAUSATION] = context.causation_id
    if context.idempotency_key:
        headers[IDEMPOTENCY] = context.idempotency_key
    if context.min_position:
        headers[MIN_POSITION] = str(context.min_position)
        headers[POSITION_OF] = context.position_of
        headers[WAIT] = str(context.wait)
    if enabled() and (parent := traceparent()) is not None:  # the ``send`` span: the serving side's parent
        headers[TRACEPARENT] = parent
    return headers


def _covered(kind: str, headers: Mapping[str, str]) -> list[str | bytes]:
    """The signed fields of a message, in their fixed order; a missing header counts as empty, as it is read."""
    roles = sorted(r for r in headers.get(ROLES, "").split(",") if r)
    # A sealed event's stream and version come last, and only when present: messages without them sign as before.
    sealed = [headers[STREAM], headers.get(VERSION, "")] if headers.get(STREAM) else []
    return [
        *(headers.get(h, "") for h in _BEFORE_ROLES),
        canonical(*roles),
        *(headers.get(h, "") for h in _AFTER_ROLES),
        headers.get(EVENT_ID if kind in KEPT else MESSAGE_ID, ""),
        *(headers.get(h, "") for h in _AFTER_ID),
        headers.get(ERROR, ""),
        *sealed,
    ]


def sign(
    keys: ServiceKeys, kind: str, subject: str, body: bytes, headers: Mapping[str, str], *, now: float | None = None
) -> dict[str, str]:
    """``headers`` with the timestamp (``now``, default the current time) and the signature of the message, its
    values as NATS carries them (trimmed, line breaks as spaces), so that the receiver verifies what was signed."""
    signed = {name: value.strip().translate(_NEWLINES) for name, value in headers.items()}
    signed[TIMESTAMP] = str(int((time.time() if now is None else now) * 1000))
    signed[SIGNATURE] = keys.sign(kind, subject, body, _covered(kind, signed))
    trace = signed.get(TRACEPARENT)
    if trace:  # tagged apart, bound to this signature: one altered on the way is dropped, the message still read
        signed[TRACE_TAG] = keys.sign(_TRACE, signed[SIGNATURE], trace.encode(), ())
    return signed


def verify(
    keys: ServiceKeys, kind: str, subject: str, body: bytes, headers: Mapping[str, str], *, max_age: float | None
) -> Verified:
    """Check the signature of a message received on ``subject``, then, unless ``max_age`` is None, its age.

    Returns the headers, now trustworthy. Raises:
        UnverifiedMessage: the message is unsigned, its signature or timestamp is malformed, its key id unknown,
            its tag wrong, or it is older than ``max_age`` seconds or from more than ``FUTURE`` seconds ahead.
    """
    signature = headers.get(SIGNATURE, "")
    if not signature:
        raise UnverifiedMessage("the message is not signed", reason="unsigned")
    stamp = headers.get(TIMESTAMP, "")
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 15):
        raise UnverifiedMessage("the message has no valid timestamp", reason="malformed")
    key_id = keys.verify(kind, subject, body, _covered(kind, headers), signature)
    if max_age is not None:
        age = time.time() - int(stamp) / 1000
        if age > max_age:
            raise UnverifiedMessage(f"the message is {age:.0f} s old", reason="stale", key_id=key_id)
        if age < -FUTURE:
            raise UnverifiedMessage(f"the message is dated {-age:.0f} s ahead", reason="future", key_id=key_id)
    found = dict(headers)
    trace, tag = found.pop(TRACEPARENT, None), found.pop(TRACE_TAG, None)
    if trace and tag and enabled() and _trace_verifies(keys, signature, trace, tag):
        found[TRACEPARENT] = trace
    return Verified(found)


def _trace_verifies(keys: ServiceKeys, signature: str, trace: str, tag: str) -> bool:
    """Whether ``tag`` is the service keys' tag of ``trace`` for the message signed ``signature``."""
    try:
        keys.verify(_TRACE, signature, trace.encode(), (), tag)
    except UnverifiedMessage:
        return False
    return True


def served_span(subject: str, module: str, headers: Verified) -> AbstractContextManager[Any]:
    """The CONSUMER span of a request served here for ``module``: a child of the caller's ``send`` span when its
    ``traceparent`` verified, else the root of a new trace."""
    if not enabled():
        return contextlib.nullcontext()
    return process_span(subject, consumer=module, parent=trace_context(headers.get(TRACEPARENT)))


def context_from(headers: Verified) -> DispatchContext:
    """The dispatch context a verified request carries (a missing and an empty header read alike, as signed)."""
    roles = frozenset(r for r in headers.get(ROLES, "").split(",") if r)
    return DispatchContext(
        actor=Actor(headers.get(ACTOR) or "anonymous", roles),
        message_id=headers.get(MESSAGE_ID) or DispatchContext().message_id,
        correlation_id=headers.get(CORRELATION, ""),
        causation_id=headers.get(CAUSATION) or None,
        idempotency_key=headers.get(IDEMPOTENCY) or None,
        min_position=int(headers.get(MIN_POSITION) or 0),
        position_of=headers.get(POSITION_OF, ""),
        wait=float(headers.get(WAIT) or 0),
    )


def _known_name(exc: BaseException) -> str:
    """The name of the nearest class of ``exc`` that the caller can rebuild (``CitadelError`` at worst)."""
    for cls in type(exc).__mro__:
        if _ERRORS.get(cls.__name__) is cls:
            return cls.__name__
    return "CitadelError"


def error_headers(exc: BaseException) -> dict[str, str]:
    """The headers of an answer that reports ``exc``."""
    return {ERROR: _known_name(exc)}


def error_answer(exc: BaseException, correlation: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers of an answer that reports ``exc``: its message if it is meant for the caller (a
    refused command, a missing entity, invalid input, ...), else a generic text naming ``correlation``."""
    if isinstance(exc, _FOR_CALLER):
        return str(exc).encode(), error_headers(exc)
    text = f"an unexpected error occurred in the service that answered; it was logged with correlation id {correlation}"
    return text.encode(), error_headers(exc)


def is_unexpected(name: str) -> bool:
    """Whether an answer's error ``name`` reports an unexpected error (its text was withheld)."""
    return name not in _CALLER_NAMES


def error_from(name: str, message: str) -> Exception:
    """Rebuild the exception an answer reports (same class, same message)."""
    cls = _ERRORS.get(name, errors.CitadelError)
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    return error
